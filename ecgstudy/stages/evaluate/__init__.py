"""Evaluate stage: every interval, paired comparison and claim verdict, from the scores the training stages saved.

The training stages (pretrain's probe comparison, finetune, transfer) save each model's probabilities on
the records it is scored on, one array per training repeat (:mod:`ecgstudy.engine.scores`); this stage
computes the statistics, so a statistics setting reruns this stage and the report, never a training.

Statistics (docs/architecture.md, "Statistics"): patient-level cluster bootstrap with the training
repeats resampled jointly (:mod:`ecgstudy.engine.arms`), no redraw rule (a label without both classes in
a resample is skipped there and counted), a fixed label set per family decided from label counts
(``min_positives`` of each class in every evaluated split; its size beside every macro figure), AUPRC
beside AUROC, and Holm's adjustment over each family of comparisons (:mod:`ecgstudy.stages.evaluate.families`).

The claims table (:mod:`ecgstudy.stages.evaluate.claims`) puts one row per seed-paper claim with its
verdict; it also reads the latent and saliency stages' metrics. ``reports/results.md`` holds the table a
reader sees; the README's results section is the same table (``python -m ecgstudy.stages.evaluate.readme``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ecgstudy.engine.scores import ScoreFile
from ecgstudy.plots import calibration as calibration_plots
from ecgstudy.plots import training as training_plots
from ecgstudy.stages import artifacts
from ecgstudy.stages.evaluate import claims as claims_
from ecgstudy.stages.evaluate.config import Bootstrap, EvaluateConfig
from ecgstudy.stages.evaluate.families import TRANSFER_FOUNDATIONS, Family, finetune_family, pretrain_family, transfer_family
from ecgstudy.stages.evaluate.reliability import kept_reliability
from ecgstudy.stages.outputs import stage_outputs

__all__ = ["Bootstrap", "EvaluateConfig", "EvaluateResult", "TRANSFER_FOUNDATIONS", "evaluate_scores", "finetune_statistics",
           "probe_statistics", "run", "transfer_statistics"]

#: The results page a reader sees (also the README's results section).
RESULTS_FILE = "reports/results.md"


@dataclass
class EvaluateResult:
    """Tables, metrics and figures of :func:`run`."""

    probe: pd.DataFrame  # per pretraining run: probe AUROC / AUPRC vs random init, gain with its adjusted interval
    probe_comparisons: pd.DataFrame  # every run vs its twin and vs each other run (Holm within the family)
    finetune: pd.DataFrame  # strategy x fraction x split: macro AUROC / AUPRC with intervals and the repeat spread
    finetune_per_label: pd.DataFrame  # per-label AUROC / AUPRC (mean over repeats) on the fixed label set
    finetune_comparisons: pd.DataFrame  # every pair of strategies per fraction x split (Holm within the family)
    transfer: pd.DataFrame  # condition x n_cases x strategy
    transfer_comparisons: pd.DataFrame  # foundation(-probe) - scratch, per condition and mean over conditions
    claims: pd.DataFrame  # one row per seed-paper claim, with its verdict
    metrics: dict[str, Any]  # reports/metrics/evaluate.json
    figures: dict[str, Path] = field(default_factory=dict)


def _arm_metrics(row: Any) -> dict[str, Any]:
    keys = ("auroc", "auroc_low", "auroc_high", "auroc_sd_repeats", "auprc", "auprc_low", "auprc_high",
            "n_labels", "repeats")
    return {k: row.get(k) for k in keys}


def _comparison_metrics(row: Any) -> dict[str, Any]:
    keys = ("diff", "low", "high", "level", "p_holm", "low_unadj", "high_unadj", "diff_sd_repeats", "n_labels", "repeats")
    return {k: row.get(k) for k in keys}


def _headline(pretrain: Family, finetune: Family, transfer: Family, metas: dict[str, dict]) -> dict[str, Any]:
    """Per family: arms and AUROC comparisons (each with its label-set size, repeats and interval), the
    label sets, skipped draws and the training stages' tuning records."""
    out: dict[str, Any] = {}
    probe = {}
    for row in pretrain.results.to_dict("records"):
        probe[row["run"]] = {**_arm_metrics(row), "random_auroc": row.get("random_auroc"),
                             "gain": row.get("diff"), "gain_low": row.get("low"), "gain_high": row.get("high"),
                             "gain_p_holm": row.get("p_holm")}
    out["pretrain"] = probe
    ft: dict[str, Any] = {}
    for row in finetune.results.to_dict("records"):
        ft.setdefault(row["split"], {})[f"{row['strategy']}_{row['fraction']:g}"] = _arm_metrics(row)
    comps = finetune.comparisons
    for row in comps[comps["metric"] == "auroc"].to_dict("records") if len(comps) else []:
        ft.setdefault("auroc_diff", {}).setdefault(row["split"], {})[f"{row['a']}-{row['b']}_{row['fraction']:g}"] = \
            _comparison_metrics(row)
    out["finetune"] = ft
    tr: dict[str, Any] = {}
    for row in transfer.results.to_dict("records"):
        tr.setdefault(row["condition"], {})[f"{row['strategy']}_n{row['n_cases']}"] = _arm_metrics(row)
    comps = transfer.comparisons
    for row in comps[comps["metric"] == "auroc"].to_dict("records") if len(comps) else []:
        tr.setdefault(f"{row['a']}_minus_scratch", {})[f"{row['condition']}_n{row['n_cases']}"] = _comparison_metrics(row)
    out["transfer"] = tr if tr else {"status": "no rare-disease sets"}
    out["label_sets"] = {"pretrain": pretrain.label_sets, "finetune": finetune.label_sets, "transfer": transfer.label_sets}
    out["skipped_label_draws"] = {"pretrain": pretrain.skipped, "finetune": finetune.skipped, "transfer": transfer.skipped}
    out["tuning"] = {name: meta.get("tuning") for name, meta in metas.items()}
    out["repeats"] = {name: meta.get("repeats") for name, meta in metas.items()}
    return out


def evaluate_scores(cfg: EvaluateConfig, probe: ScoreFile, finetune: ScoreFile, transfer: ScoreFile, *, seed: int,
                    latent: dict | None = None, saliency: dict | None = None) -> EvaluateResult:
    """Every family's statistics, the claims and the metrics (no file written).

    ``latent`` and ``saliency`` are those stages' metrics dicts (None when absent: their claims are
    "not evaluated").
    """
    pre = pretrain_family(probe, cfg.pretrain, seed)
    ft = finetune_family(finetune, cfg.finetune, seed)
    tr = transfer_family(transfer, cfg.transfer, seed)
    claims = claims_.claim_rows(ft.comparisons, pre.comparisons, tr.comparisons, pre.results, latent, saliency,
                                cfg.min_effect)
    metrics = _headline(pre, ft, tr, {"pretrain": probe.meta, "finetune": finetune.meta, "transfer": transfer.meta})
    families = {"pretrain": cfg.pretrain, "finetune": cfg.finetune, "transfer": cfg.transfer}
    boots = {b.n_boot for b in families.values()}
    levels = {b.ci for b in families.values()}
    metrics["rule"] = {
        "min_effect": cfg.min_effect,
        "n_boot": boots.pop() if len(boots) == 1 else ", ".join(f"{k} {b.n_boot}" for k, b in families.items()),
        "family_level": levels.pop() if len(levels) == 1 else ", ".join(f"{k} {b.ci}" for k, b in families.items()),
        "families": {
            "pretrain": "every run vs its random-init twin and every pair of runs (validation split), per metric",
            "finetune": "every pair of strategies at each label fraction x evaluation split, per metric",
            "transfer": "foundation and foundation_probe vs scratch at each condition x size, and their mean over "
                        "conditions at each shared size, per metric",
            "latent": "latent stage: k-NN probe of the pretrained encoder - its random-init twin (one comparison, "
                      "patient resamples of the evaluation sample)",
            "saliency": "saliency stage: integrated gradients and gradient x input - the signal-magnitude |x| map over "
                        "the same (record, condition) pairs, Holm within each score (patient resamples)",
        },
    }
    metrics["claims"] = claims.to_dict("records")
    return EvaluateResult(pre.results, pre.comparisons, ft.results,
                          ft.per_label if ft.per_label is not None else pd.DataFrame(), ft.comparisons,
                          tr.results, tr.comparisons, claims, metrics)


def probe_statistics(scores: ScoreFile, cfg: Bootstrap, seed: int) -> pd.DataFrame:
    """Per pretraining run: probe AUROC / AUPRC, its twin's, and the Holm-adjusted gain (``diff``, ``low``, ``high``)."""
    return pretrain_family(scores, cfg, seed).results


def finetune_statistics(scores: ScoreFile, cfg: Bootstrap, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(results, per-label table, comparisons) of the fine-tuning scores (:func:`families.finetune_family`)."""
    family = finetune_family(scores, cfg, seed)
    return family.results, family.per_label, family.comparisons


def transfer_statistics(scores: ScoreFile, cfg: Bootstrap, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, comparisons) of the rare-disease scores (:func:`families.transfer_family`)."""
    family = transfer_family(scores, cfg, seed)
    return family.results, family.comparisons


def _optional_metrics(stage: str, root: Path) -> dict | None:
    path = artifacts.stage_metrics(stage, root)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{artifacts.shown(path)}: not valid JSON ({exc})") from exc


def run(cfg, root: Path | None = None) -> EvaluateResult:
    """The evaluate stage: read the saved scores (and the latent / saliency metrics), write every table,
    figure, the metrics and the results page.

    ``cfg`` is ``ecgstudy.config.stage_config("evaluate", params)`` (``seed``, ``evaluate``). Outputs:
    ``reports/tables/evaluate/*.csv`` (``claims.csv`` among them), ``reports/figures/evaluate/*.png`` (the
    transfer figure only when rare-disease sets were run; ``reliability.png``, the kept classifier's reliability
    diagram: :mod:`ecgstudy.stages.evaluate.reliability`), ``reports/metrics/evaluate.json`` and
    ``reports/results.md``.
    """
    out = stage_outputs("evaluate", root)
    finetune_scores = ScoreFile.load(artifacts.require(artifacts.FINETUNE_SCORES, "finetune", out.root))
    result = evaluate_scores(
        cfg.evaluate,
        ScoreFile.load(artifacts.require(artifacts.PROBE_SCORES, "pretrain", out.root)),
        finetune_scores,
        ScoreFile.load(artifacts.require(artifacts.TRANSFER_SCORES, "transfer", out.root)),
        seed=cfg.seed, latent=_optional_metrics("latent", out.root), saliency=_optional_metrics("saliency", out.root),
    )
    tables = {"probe_comparison": result.probe, "probe_comparisons": result.probe_comparisons,
              "finetune_results": result.finetune, "finetune_per_label": result.finetune_per_label,
              "finetune_comparisons": result.finetune_comparisons, "transfer_results": result.transfer,
              "transfer_comparisons": result.transfer_comparisons, "claims": result.claims}
    for name, table in tables.items():
        table.to_csv(out.tables / f"{name}.csv", index=False)
    out.write_metrics(result.metrics)
    written = json.loads(out.metrics_file.read_text())  # the rounded numbers, as the README shows them
    results_page = out.root / RESULTS_FILE
    results_page.write_text("# Results\n\n" + claims_.markdown(written))
    result.figures = {}
    drawn = {
        "probe_comparison": (result.probe, training_plots.probe_comparison),
        "label_efficiency": (result.finetune, training_plots.label_efficiency),
        "transfer": (result.transfer, training_plots.transfer_comparison),
    }
    for name, (table, draw) in drawn.items():
        path = out.figure(name)
        path.unlink(missing_ok=True)  # a figure of an earlier run must not outlive it
        if not table.empty and "auroc" in table:  # no rare-disease sets, or an empty label set: no figure
            result.figures[name] = draw(table, path)
    path = out.figure("reliability")
    path.unlink(missing_ok=True)
    kept = kept_reliability(finetune_scores)
    if kept is not None:  # a classifier with an evaluable label
        result.figures["reliability"] = calibration_plots.reliability_diagram(kept.bins, kept.ece, path, title=kept.title,
                                                                              positives=kept.positives)
    return result
