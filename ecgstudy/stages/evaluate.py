"""Evaluate stage: the intervals and paired comparisons of the training stages, from the scores they saved.

The training stages (pretrain's probe comparison, finetune, transfer) save each model's probabilities on
the records it is scored on (:mod:`ecgstudy.engine.scores`); this stage computes the statistics from them,
so a statistics setting (bootstrap resamples, interval level) reruns this stage and the report, never a
training. Three families:

- ``pretrain``: linear-probe macro AUROC on the validation split, pretrained encoder minus the same
  architecture at random initialisation: paired bootstrap of validation records.
- ``finetune``: macro AUROC / AUPRC per strategy, label fraction and evaluation split with bootstrap
  intervals (resamples shared by all models of a split), per-label values, and the paired differences of
  :data:`FINETUNE_COMPARISONS`.
- ``transfer``: per rare condition and training-set size, the mean test AUROC over repeats with a
  bootstrap interval over test records (each resample scores every repeat), and foundation(-probe) minus
  scratch on the same resamples.

Every bootstrap is seeded by the study seed (:func:`ecgstudy.engine.evaluate.bootstrap_indices`). The latent
and saliency stages, which train no model worth sparing, keep their own (cheap) intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.engine import evaluate
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.plots import training as training_plots
from ecgstudy.stages import artifacts
from ecgstudy.stages.outputs import stage_outputs

#: Paired fine-tuning comparisons reported (A minus B), when both strategies were trained.
FINETUNE_COMPARISONS = (("pretrained", "scratch"), ("linear_probe", "random_probe"), ("pretrained", "linear_probe"))
#: Transfer strategies compared with scratch.
TRANSFER_FOUNDATIONS = ("foundation", "foundation_probe")


@dataclass(frozen=True)
class Bootstrap:
    """Resampling settings of one family of comparisons."""

    n_boot: int = 200  # bootstrap resamples
    ci: float = 0.95  # confidence level of the percentile intervals

    def validate(self) -> None:
        if self.n_boot < 1 or not 0 < self.ci < 1:
            raise ValueError(f"n_boot must be >= 1 and ci in (0, 1), got n_boot={self.n_boot}, ci={self.ci}")


@dataclass(frozen=True)
class EvaluateConfig:
    """params.yaml ``evaluate`` section."""

    pretrain: Bootstrap = field(default_factory=Bootstrap)  # probe gain over random init: resamples of validation records
    finetune: Bootstrap = field(default_factory=Bootstrap)  # fine-tuning intervals and paired differences: resamples of each evaluation split
    transfer: Bootstrap = field(default_factory=lambda: Bootstrap(n_boot=500))  # rare-disease intervals: resamples of each test part (UCSF reports 95%)


@dataclass
class EvaluateResult:
    """Tables, metrics and figures of :func:`run`."""

    probe: pd.DataFrame  # per pretraining run: probe AUROC, random-init AUROC, gain with its interval
    finetune: pd.DataFrame  # strategy x fraction x split: macro AUROC / AUPRC with intervals
    finetune_per_label: pd.DataFrame  # per-label AUROC / AUPRC of every model and split
    finetune_comparisons: pd.DataFrame  # paired differences A - B
    transfer: pd.DataFrame  # condition x n_cases x strategy: mean AUROC over repeats with interval
    transfer_comparisons: pd.DataFrame  # foundation(-probe) - scratch
    metrics: dict[str, Any]  # reports/metrics/evaluate.json
    figures: dict[str, Path] = field(default_factory=dict)


# ----------------------------------------------------------------------------- pretrain: probe gain


def probe_statistics(scores: ScoreFile, cfg: Bootstrap, seed: int) -> pd.DataFrame:
    """The probe comparison with the paired bootstrap interval of each run's gain over its random-init twin.

    ``scores`` is ``models/pretrain/probe_scores.npz``: group ``val`` (N_val, L), keys ``(run,)`` and
    ``("random_init", arch-preset)``; its meta holds the comparison rows (run, objective, encoder, ...).
    """
    y = scores.y["val"]
    rows = []
    for row in scores.meta.get("comparison", []):
        gain = evaluate.paired_bootstrap(y, scores.get(row["run"], "val"), scores.get("random_init", row["encoder"], "val"),
                                         "auroc", n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
        rows.append({**row, "diff": gain["diff"], "low": gain["low"], "high": gain["high"], "p_value": gain["p_value"]})
    columns = ["run", "objective", "encoder", "auroc", "random_auroc", "diff", "low", "high", "p_value", "n_labels", "n_val"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------------- finetune


def finetune_statistics(scores: ScoreFile, cfg: Bootstrap, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(results, per-label table, paired comparisons) of the fine-tuned models' scores.

    ``scores`` is ``models/finetune/scores.npz``: one group per evaluation split (N, L), keys
    ``(strategy, fraction)``; meta lists the strategies and fractions in training order.
    """
    rows, per_label = [], []
    for key, p in scores.scores.items():
        strategy, fraction, split = key
        y = scores.y[split]
        summary = evaluate.summarize(y, p, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
        rows.append({"strategy": strategy, "fraction": float(fraction), "split": split, **summary})
        table = evaluate.per_label_table(y, p, scores.labels[split])
        per_label.append(table.assign(strategy=strategy, fraction=float(fraction), split=split))
    comparisons = []
    strategies, fractions = scores.meta["strategies"], scores.meta["fractions"]
    for a, b in FINETUNE_COMPARISONS:
        if a not in strategies or b not in strategies:
            continue
        for fraction in fractions:
            for split, y in scores.y.items():
                for metric in evaluate.METRICS:
                    res = evaluate.paired_bootstrap(y, scores.get(a, f"{fraction:g}", split), scores.get(b, f"{fraction:g}", split),
                                                    metric, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
                    comparisons.append({"a": a, "b": b, "fraction": fraction, "split": split, "metric": metric, **res})
    columns = ["a", "b", "fraction", "split", "metric", "diff", "low", "high", "p_value", "n_boot"]
    per_label_table = pd.concat(per_label, ignore_index=True) if per_label else pd.DataFrame()
    return pd.DataFrame(rows), per_label_table, pd.DataFrame(comparisons, columns=columns)


def _finetune_headline(results: pd.DataFrame, comparisons: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """Task, label count, protocol; macro AUROC (+ CI) / AUPRC per split and model; AUROC differences."""
    metrics: dict[str, Any] = {"task": meta.get("task"), "n_labels": meta.get("n_labels"), "protocol": meta.get("protocol")}
    for row in results.itertuples():
        metrics.setdefault(row.split, {})[f"{row.strategy}_{row.fraction:g}"] = {
            "auroc": row.auroc, "auroc_low": row.auroc_low, "auroc_high": row.auroc_high, "auprc": row.auprc,
        }
    for row in comparisons[comparisons["metric"] == "auroc"].itertuples():
        metrics.setdefault("auroc_diff", {}).setdefault(row.split, {})[f"{row.a}-{row.b}_{row.fraction:g}"] = {
            "diff": row.diff, "low": row.low, "high": row.high,
        }
    return metrics


# ----------------------------------------------------------------------------- transfer


def transfer_statistics(scores: ScoreFile, cfg: Bootstrap, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, comparisons) of the rare-disease runs' test-part scores.

    ``scores`` is ``models/transfer/scores.npz``: one group per condition (test part, (N, 1)), keys
    ``("n<cases>", strategy, "r<repeat>")``: the repeats of a (size, strategy) are scored together.
    """
    result_rows, comp_rows = [], []
    for cond, y in scores.y.items():
        runs: dict[tuple[int, str], list[np.ndarray]] = {}
        for (size, strategy, _repeat, group), p in scores.scores.items():
            if group == cond:
                runs.setdefault((int(size.removeprefix("n")), strategy), []).append(p)
        for (n_cases, strategy), sets in runs.items():
            res = evaluate.bootstrap_ci(y, sets, "auroc", n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
            result_rows.append({"condition": cond, "n_cases": n_cases, "strategy": strategy, "auroc": res["point"],
                                "auroc_low": res["low"], "auroc_high": res["high"], "repeats": len(sets), "n_test": len(y)})
            for other in TRANSFER_FOUNDATIONS:
                if strategy == "scratch" and (n_cases, other) in runs:
                    comp = evaluate.paired_bootstrap(y, runs[(n_cases, other)], sets, "auroc", n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
                    comp_rows.append({"condition": cond, "n_cases": n_cases, "a": other, "b": "scratch", **comp})
    results = pd.DataFrame(result_rows, columns=["condition", "n_cases", "strategy", "auroc", "auroc_low", "auroc_high",
                                                 "repeats", "n_test"])
    comparisons = pd.DataFrame(comp_rows, columns=["condition", "n_cases", "a", "b", "diff", "low", "high", "p_value", "n_boot"])
    return results, comparisons


def _transfer_headline(results: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, Any]:
    """{condition: {"<strategy>_n<cases>": {auroc, low, high}}, "<foundation>_minus_scratch": {...}}."""
    metrics: dict[str, Any] = {}
    for row in results.itertuples():
        metrics.setdefault(row.condition, {})[f"{row.strategy}_n{row.n_cases}"] = {
            "auroc": row.auroc, "low": row.auroc_low, "high": row.auroc_high,
        }
    for row in comparisons.itertuples():
        metrics.setdefault(f"{row.a}_minus_scratch", {})[f"{row.condition}_n{row.n_cases}"] = {
            "diff": row.diff, "low": row.low, "high": row.high,
        }
    return metrics


# ----------------------------------------------------------------------------- the stage


def evaluate_scores(cfg: EvaluateConfig, probe: ScoreFile, finetune: ScoreFile, transfer: ScoreFile, *,
                    seed: int) -> EvaluateResult:
    """Every family's statistics and the metrics (no file written)."""
    probe_table = probe_statistics(probe, cfg.pretrain, seed)
    results, per_label, comparisons = finetune_statistics(finetune, cfg.finetune, seed)
    transfer_results, transfer_comparisons = transfer_statistics(transfer, cfg.transfer, seed)
    metrics = {
        "pretrain": {row.run: {"probe_gain": row.diff, "probe_gain_low": row.low, "probe_gain_high": row.high}
                     for row in probe_table.itertuples()},
        "finetune": _finetune_headline(results, comparisons, finetune.meta),
        "transfer": _transfer_headline(transfer_results, transfer_comparisons),
    }
    if not transfer.y:
        metrics["transfer"] = {"status": "no rare-disease sets"}
    return EvaluateResult(probe_table, results, per_label, comparisons, transfer_results, transfer_comparisons, metrics)


def run(cfg, root: Path | None = None) -> EvaluateResult:
    """The evaluate stage: read the saved scores, write every statistics table, figure and the metrics.

    ``cfg`` is ``ecgstudy.config.stage_config("evaluate", params)`` (``seed``, ``evaluate``). Outputs:
    ``reports/tables/evaluate/*.csv``, ``reports/figures/evaluate/{probe_comparison,label_efficiency,transfer}.png``
    (the transfer figure only when rare-disease sets were run) and ``reports/metrics/evaluate.json``.
    """
    out = stage_outputs("evaluate", root)
    result = evaluate_scores(
        cfg.evaluate,
        ScoreFile.load(artifacts.require(artifacts.PROBE_SCORES, "pretrain", out.root)),
        ScoreFile.load(artifacts.require(artifacts.FINETUNE_SCORES, "finetune", out.root)),
        ScoreFile.load(artifacts.require(artifacts.TRANSFER_SCORES, "transfer", out.root)),
        seed=cfg.seed,
    )
    tables = {"probe_comparison": result.probe, "finetune_results": result.finetune,
              "finetune_per_label": result.finetune_per_label, "finetune_comparisons": result.finetune_comparisons,
              "transfer_results": result.transfer, "transfer_comparisons": result.transfer_comparisons}
    for name, table in tables.items():
        table.to_csv(out.tables / f"{name}.csv", index=False)
    out.write_metrics(result.metrics)
    result.figures = {
        "probe_comparison": training_plots.probe_comparison(result.probe, out.figure("probe_comparison")),
        "label_efficiency": training_plots.label_efficiency(result.finetune, out.figure("label_efficiency")),
    }
    transfer_figure = out.figure("transfer")
    transfer_figure.unlink(missing_ok=True)  # a figure of an earlier run must not outlive it
    if not result.transfer.empty:
        result.figures["transfer"] = training_plots.transfer_comparison(result.transfer, transfer_figure)
    return result
