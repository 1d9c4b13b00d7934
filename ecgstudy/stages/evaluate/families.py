"""The three families of comparisons, from the score files of pretrain, finetune and transfer.

Each family: a fixed label set decided from label counts (``min_positives`` of each class in every
evaluated split), arm summaries (macro AUROC / AUPRC with intervals and the spread over repeats), and
paired comparisons with Holm's adjustment over the family, per metric:

- ``pretrain`` (validation split of the downstream store): each run vs its random-init twin, and each
  pair of runs;
- ``finetune`` (every evaluation split but ``val``): every pair of strategies at each fraction x split;
- ``transfer`` (each rare condition's test part): foundation and foundation_probe vs scratch at each
  condition x training size, and their mean over the conditions at each size they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.engine import arms as arms_
from ecgstudy.engine import multiplicity, resample
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.stages.evaluate.config import Bootstrap

METRICS = resample.METRICS
#: Transfer strategies compared with scratch.
TRANSFER_FOUNDATIONS = ("foundation", "foundation_probe")
#: Columns of every comparison table (besides the family's own key columns).
COMPARISON_COLUMNS = ["metric", "diff", "low", "high", "level", "p_value", "p_holm", "low_unadj", "high_unadj",
                      "diff_sd_repeats", "diff_min_repeats", "diff_max_repeats", "repeats", "n_labels",
                      "n_boot_valid", "family_size"]


@dataclass
class Family:
    """Tables and label sets of one family."""

    results: pd.DataFrame  # one row per arm x evaluation set
    comparisons: pd.DataFrame  # one row per comparison x metric, Holm-adjusted within metric
    label_sets: dict[str, Any]  # {"k", "labels", "n_labels"} (transfer: per condition)
    skipped: dict[str, int] = field(default_factory=dict)  # evaluation set -> skipped (resample, label) pairs
    per_label: pd.DataFrame | None = None


def _summaries(sampler: arms_.Resampler, arm: arms_.Arm, level: float) -> dict[str, float]:
    out: dict[str, float] = {"repeats": arm.repeats}
    for metric in METRICS:
        out.update(sampler.summary(arm, metric, level))
    return out


def _adjust(rows: list[dict], diffs: list[np.ndarray], alpha: float) -> pd.DataFrame:
    """Holm within each metric of one family; returns the rows as a table."""
    for metric in METRICS:
        idx = [i for i, r in enumerate(rows) if r["metric"] == metric]
        arms_.adjust_family([rows[i] for i in idx], [diffs[i] for i in idx], alpha)
    return pd.DataFrame(rows)


def _label_set(groups: dict[str, np.ndarray], names: list[str], k: int) -> tuple[np.ndarray, dict[str, Any]]:
    labels = resample.fixed_label_set(groups, k)
    return labels, {"k": k, "n_labels": int(labels.size), "labels": [names[j] for j in labels],
                    "evaluated_splits": list(groups)}


# ----------------------------------------------------------------------------- pretrain


def pretrain_family(scores: ScoreFile, cfg: Bootstrap, seed: int) -> Family:
    """Probe comparison on ``val``: keys ``(run, "r<k>")`` and ``("random_init", run, "r<k>")``; meta
    ``comparison`` rows give each run's objective and encoder."""
    group = "val"
    if group not in scores.y:
        raise ValueError(f"probe scores have no {group!r} group; groups: {list(scores.y)}")
    y = scores.y[group]
    labels, label_set = _label_set({group: y}, scores.labels[group], cfg.min_positives)
    by_arm = scores.repeats(group)
    info = {row["run"]: row for row in scores.meta.get("comparison", [])}
    runs = list(info) or [k[0] for k in by_arm if k[0] != "random_init"]
    sampler = arms_.Resampler(y, scores.patients[group], labels, cfg.n_boot, resample.seed_for(seed, "pretrain", group))
    alpha = 1.0 - cfg.ci
    rows, comparisons, diffs, computed = [], [], [], {}
    for run in runs:
        twin_key = ("random_init", run)
        if (run,) not in by_arm or twin_key not in by_arm:
            raise ValueError(f"probe scores lack {(run,)} or {twin_key} (keys: {sorted(by_arm)})")
        computed[run] = sampler.arm(by_arm[(run,)]) if labels.size else None
        twin = sampler.arm(by_arm[twin_key]) if labels.size else None
        row = {"run": run, "objective": info.get(run, {}).get("objective", ""), "encoder": info.get(run, {}).get("encoder", ""),
               "n_labels": int(labels.size), "n_val": int(len(y)), "n_patients": sampler.n_patients}
        if labels.size:
            mine, theirs = _summaries(sampler, computed[run], cfg.ci), _summaries(sampler, twin, cfg.ci)
            row.update(mine)
            row.update({f"random_{k}": v for k, v in theirs.items() if k != "repeats"})
            for metric in METRICS:
                comp, d = sampler.difference(computed[run], twin, metric)
                comparisons.append({"a": run, "b": f"random_init({run})", "kind": "vs_random_init", "metric": metric,
                                    "repeats": computed[run].repeats, "n_labels": int(labels.size), **comp})
                diffs.append(d)
        rows.append(row)
    if labels.size:
        for a, b in combinations(runs, 2):
            for metric in METRICS:
                comp, d = sampler.difference(computed[a], computed[b], metric)
                comparisons.append({"a": a, "b": b, "kind": "between_runs", "metric": metric,
                                    "repeats": computed[a].repeats, "n_labels": int(labels.size), **comp})
                diffs.append(d)
    table = _adjust(comparisons, diffs, alpha) if comparisons else pd.DataFrame()
    table = table.reindex(columns=["a", "b", "kind", *COMPARISON_COLUMNS])
    results = pd.DataFrame(rows)
    gains = table[(table["kind"] == "vs_random_init") & (table["metric"] == "auroc")].set_index("a")
    for column, source in (("diff", "diff"), ("low", "low"), ("high", "high"), ("p_holm", "p_holm")):
        results[column] = results["run"].map(gains[source]) if len(gains) else np.nan
    return Family(results, table, label_set, {group: sampler.skipped_draws})


# ----------------------------------------------------------------------------- finetune


def finetune_family(scores: ScoreFile, cfg: Bootstrap, seed: int) -> Family:
    """Strategies x fractions on every evaluation split but ``val`` (keys ``(strategy, fraction, "r<k>")``)."""
    splits = [g for g in scores.y if g != "val"] or list(scores.y)
    names = scores.labels[splits[0]]
    labels, label_set = _label_set({s: scores.y[s] for s in splits}, names, cfg.min_positives)
    strategies = list(scores.meta.get("strategies", []))
    alpha = 1.0 - cfg.ci
    rows, per_label, comparisons, diffs, skipped = [], [], [], [], {}
    for split in splits:
        by_arm = scores.repeats(split)
        order = strategies or list(dict.fromkeys(k[0] for k in by_arm))
        sampler = arms_.Resampler(scores.y[split], scores.patients[split], labels, cfg.n_boot,
                                  resample.seed_for(seed, "finetune", split))
        skipped[split] = sampler.skipped_draws
        computed: dict[tuple[str, str], arms_.Arm] = {}
        for (strategy, fraction), sets in by_arm.items():
            row = {"strategy": strategy, "fraction": float(fraction), "split": split, "n": int(len(scores.y[split])),
                   "n_patients": sampler.n_patients, "n_labels": int(labels.size), "repeats": len(sets)}
            if labels.size:
                computed[(strategy, fraction)] = arm = sampler.arm(sets)
                row.update(_summaries(sampler, arm, cfg.ci))
                per_label.append(pd.DataFrame({
                    "strategy": strategy, "fraction": float(fraction), "split": split,
                    "label": [names[j] for j in labels], "n_pos": scores.y[split][:, labels].sum(axis=0).astype(int),
                    **{m: arm.per_label[m].mean(axis=0) for m in METRICS},
                    **{f"{m}_sd_repeats": (arm.per_label[m].std(axis=0, ddof=1) if arm.repeats > 1 else np.nan)
                       for m in METRICS},
                }))
            rows.append(row)
        fractions = list(dict.fromkeys(f for _, f in by_arm))
        for fraction in fractions:
            present = [s for s in order if (s, fraction) in computed]
            for a, b in combinations(present, 2):
                for metric in METRICS:
                    comp, d = sampler.difference(computed[(a, fraction)], computed[(b, fraction)], metric)
                    comparisons.append({"a": a, "b": b, "fraction": float(fraction), "split": split, "metric": metric,
                                        "repeats": computed[(a, fraction)].repeats, "n_labels": int(labels.size), **comp})
                    diffs.append(d)
    table = _adjust(comparisons, diffs, alpha) if comparisons else pd.DataFrame()
    table = table.reindex(columns=["a", "b", "fraction", "split", *COMPARISON_COLUMNS])
    saved: dict[tuple, int] = {}  # the training stage's row order (first appearance of each arm x split)
    for i, key in enumerate(scores.scores):
        saved.setdefault((key[0], float(key[1]), key[-1]), i)
    rows.sort(key=lambda r: saved.get((r["strategy"], r["fraction"], r["split"]), len(saved)))
    per_label_table = pd.concat(per_label, ignore_index=True) if per_label else pd.DataFrame()
    return Family(pd.DataFrame(rows), table, label_set, skipped, per_label_table)


# ----------------------------------------------------------------------------- transfer


def transfer_family(scores: ScoreFile, cfg: Bootstrap, seed: int) -> Family:
    """Rare conditions: one group (test part, one label) per condition, keys ``("n<cases>", strategy, "r<k>")``."""
    alpha = 1.0 - cfg.ci
    rows, comparisons, diffs, label_sets, skipped = [], [], [], {}, {}
    pooled: dict[tuple[str, int], list[tuple[dict, np.ndarray]]] = {}
    for cond, y in scores.y.items():
        labels, label_sets[cond] = _label_set({cond: y}, scores.labels[cond], cfg.min_positives)
        by_arm = scores.repeats(cond)
        sampler = arms_.Resampler(y, scores.patients[cond], labels, cfg.n_boot, resample.seed_for(seed, "transfer", cond))
        skipped[cond] = sampler.skipped_draws
        computed: dict[tuple[int, str], arms_.Arm] = {}
        for (size, strategy), sets in by_arm.items():
            n_cases = int(size.removeprefix("n"))
            row = {"condition": cond, "n_cases": n_cases, "strategy": strategy, "n_test": int(len(y)),
                   "n_test_cases": int(y.sum()), "n_patients": sampler.n_patients, "n_labels": int(labels.size),
                   "repeats": len(sets)}
            if labels.size:
                computed[(n_cases, strategy)] = arm = sampler.arm(sets)
                row.update(_summaries(sampler, arm, cfg.ci))
            rows.append(row)
        for (n_cases, strategy), arm in computed.items():
            if strategy not in TRANSFER_FOUNDATIONS or (n_cases, "scratch") not in computed:
                continue
            for metric in METRICS:
                comp, d = sampler.difference(arm, computed[(n_cases, "scratch")], metric)
                row = {"condition": cond, "n_cases": n_cases, "a": strategy, "b": "scratch", "metric": metric,
                       "repeats": arm.repeats, "n_labels": int(labels.size), **comp}
                comparisons.append(row)
                diffs.append(d)
                pooled.setdefault((strategy, n_cases, metric), []).append((row, d))
    evaluable = [c for c, s in label_sets.items() if s["n_labels"]]
    for (strategy, n_cases, metric), parts in pooled.items():
        if len(evaluable) < 2 or len(parts) != len(evaluable):
            continue  # a mean over conditions only where every evaluable condition has this size
        d = np.mean([p[1] for p in parts], axis=0)  # conditions are resampled independently
        comparisons.append({
            "condition": "mean over conditions", "n_cases": n_cases, "a": strategy, "b": "scratch", "metric": metric,
            "repeats": min(p[0]["repeats"] for p in parts), "n_labels": len(parts),
            "diff": float(np.mean([p[0]["diff"] for p in parts])), "p_value": multiplicity.bootstrap_p(d),
            "n_boot_valid": int(np.isfinite(d).sum()),
        })
        diffs.append(d)
    table = _adjust(comparisons, diffs, alpha) if comparisons else pd.DataFrame()
    table = table.reindex(columns=["condition", "n_cases", "a", "b", *COMPARISON_COLUMNS])
    return Family(pd.DataFrame(rows), table, label_sets, skipped)
