"""Without ground truth (real data): explain the classifier and describe its maps per lead, score nothing.

A real dataset has no signature masks, so nothing can be scored (and nothing is: the metrics say
``ground_truth: false`` and carry no localisation score). The classifier is explained on a seeded sample
of the split's records reported positive for each condition, and each map is described by the share of
|attribution| each lead carries (:func:`ecgstudy.engine.attribution.lead_shares`), next to the share of
the signal magnitude (a reference that only knows where the ECG is large; with per-lead z-scored inputs it
is about 1/12 per present lead).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from ecgstudy.data.leads import LEADS
from ecgstudy.engine.attribution import (
    completeness_error, gradient_x_input, integrated_gradients, lead_shares, target_probability,
)
from ecgstudy.stages.saliency.check import synthetic_check, validity_metrics
from ecgstudy.stages.saliency.config import SaliencyConfig
from ecgstudy.stages.saliency.result import (
    SaliencyResult, label_for_code, make_example, model_inputs, pick_examples,
)


def select_positive_pairs(records: pd.DataFrame, targets: dict[str, np.ndarray], split_rows: np.ndarray,
                          labels: list[str], label_info: dict, cfg: SaliencyConfig,
                          rng: np.random.Generator) -> pd.DataFrame:
    """Choose the (record, condition) pairs to explain when there are no masks.

    Parameters
    ----------
    records : the store's records (``record_id``, ``y_<CODE>`` columns).
    targets : {classifier label: 0/1 target (N,)} of every store row (the classifier's label task).
    split_rows : store rows of the explained split.
    labels : the classifier's outputs.
    label_info : the store's ``meta["label_info"]`` (maps a code to a (sub)class output).
    cfg : ``codes`` (default every output) and ``records_per_condition``.
    rng : draws the records of each condition (conditions in order, each from its sorted positives).

    Returns
    -------
    DataFrame with row, record_id, code, label: for each condition with a positive record in the split,
    up to ``records_per_condition`` of them. A condition is an output itself (its target) or a store code
    explained through the output :func:`~ecgstudy.stages.saliency.result.label_for_code` gives (its ``y_``
    column).
    """
    codes = list(cfg.codes) or list(labels)
    rows = np.asarray(split_rows)
    pairs, unusable = [], []
    for code in codes:
        if code in targets:
            label, positive = code, targets[code][rows] > 0.5
        else:
            label = label_for_code(code, labels, label_info)
            if label is None or f"y_{code}" not in records.columns:
                unusable.append(code)
                continue
            positive = records[f"y_{code}"].to_numpy()[rows] == 1
        chosen = rows[positive]
        if len(chosen) > cfg.records_per_condition:
            chosen = np.sort(rng.choice(chosen, size=cfg.records_per_condition, replace=False))
        pairs += [{"row": int(r), "record_id": str(records.at[int(r), "record_id"]), "code": code, "label": label}
                  for r in chosen]
    if unusable and cfg.codes:
        raise ValueError(f"saliency.codes {unusable}: neither a classifier output nor a store code mapped to one "
                         f"(outputs: {labels})")
    return pd.DataFrame(pairs, columns=["row", "record_id", "code", "label"])


def explain_without_masks(cfg: SaliencyConfig, store, model: nn.Module, info: dict, classifier: str,
                          rng: np.random.Generator, seed: int) -> SaliencyResult:
    """The stage on a store without signature masks: explain, describe per lead, score nothing.

    Integrated gradients and gradient x input of each pair's output logit (:func:`select_positive_pairs`,
    the only draws from ``rng``), then each map's share of |attribution| per lead, next to the signal
    magnitude's share. ``store`` holds signals (N, 12, T) in mV at ``store.fs`` Hz; ``classifier`` is the
    name the metrics give the checkpoint; ``seed`` seeds the synthetic check.
    """
    from ecgstudy.data.labels import task_labels

    labels = list(info["labels"])
    task = task_labels(store, info.get("config", {}).get("task", "all"), min_positives=0)
    targets = {name: task.y[:, j] for j, name in enumerate(task.names) if name in labels}
    pairs = select_positive_pairs(store.records, targets, store.indices(cfg.split), labels,
                                  store.meta.get("label_info", {}), cfg, rng)
    if pairs.empty:
        raise ValueError(f"{store.path}: no record of split {cfg.split!r} is positive for any of the classifier's "
                         f"outputs {labels} (codes filter: {list(cfg.codes) or 'none'})")
    x, lead_mask, target = model_inputs(store, pairs, info)
    prob, gap = target_probability(model, x, lead_mask, target)
    maps = {  # no random reference: its lead shares are 1/12 by construction
        "integrated_gradients": integrated_gradients(model, x, lead_mask, target, cfg.n_steps, cfg.batch_size),
        "gradient_x_input": gradient_x_input(model, x, lead_mask, target, cfg.batch_size),
        "signal_magnitude": np.abs(x.numpy()).astype(np.float32),
    }
    completeness = completeness_error(maps["integrated_gradients"], gap)
    scores, summary, per_condition = describe_maps(maps, lead_mask.numpy(), pairs, prob, completeness)
    smooth = max(1, int(round(cfg.smooth_s * float(store.fs))))
    drawn = [make_example(store, pairs, p, float(prob[p]), maps["integrated_gradients"][p], smooth, None)
             for p in pick_examples(pairs, scores, cfg.n_examples)]
    validity = synthetic_check(seed) if cfg.validity_check else None
    metrics = described_metrics(summary, per_condition, pairs, completeness, validity, classifier)
    return SaliencyResult(scores, summary, per_condition, drawn, validity, metrics, ground_truth=False)


def describe_maps(maps: dict[str, np.ndarray], lead_mask: np.ndarray, pairs: pd.DataFrame, prob: np.ndarray,
                  completeness: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Lead shares of every map: per pair, per condition, per method.

    Parameters
    ----------
    maps : {method: (P, 12, T) attribution}, integrated gradients first.
    lead_mask : (P, 12) bool, True where a lead is present (absent leads get share 0).
    pairs : the P explained pairs (record_id, code, label).
    prob, completeness : (P,) the model's probability of each pair's output and integrated gradients'
        completeness error.

    Returns
    -------
    (scores, summary, per_condition): one row per (method, pair) with the lead shares (columns I ... V6);
    the mean shares per method; the mean shares per (method, code, label) with ``prob``, ``n_pairs`` and
    ``top_leads`` (the three leads with the largest mean share).
    """
    n, k = len(pairs), len(maps)  # one row per (method, pair), integrated gradients first
    scores = pd.DataFrame({"pair": np.tile(np.arange(n), k), "method": np.repeat(list(maps), n),
                           "prob": np.tile(prob, k), "completeness_error": np.r_[completeness, np.full(n * (k - 1), np.nan)]})
    scores[list(LEADS)] = np.concatenate([lead_shares(arr, lead_mask) for arr in maps.values()])
    scores = scores.merge(pairs[["record_id", "code", "label"]], left_on="pair", right_index=True)
    grouped = scores.groupby(["method", "code", "label"], sort=False)
    per_condition = grouped[[*LEADS, "prob"]].mean().join(grouped.size().rename("n_pairs")).reset_index()
    lead_cols = per_condition[list(LEADS)].to_numpy(dtype=float)
    per_condition["top_leads"] = [", ".join(LEADS[j] for j in np.argsort(-row, kind="stable")[:3]) for row in lead_cols]
    summary = scores.groupby("method", sort=False)[list(LEADS)].mean().reset_index()
    return scores, summary, per_condition


def described_metrics(summary: pd.DataFrame, per_condition: pd.DataFrame, pairs: pd.DataFrame,
                      completeness: np.ndarray, validity: pd.DataFrame | None, classifier: str) -> dict:
    """Headline numbers without ground truth: mean lead shares per method, integrated gradients' top
    leads per condition, the completeness error and the validity check; no localisation score."""
    ig = per_condition[per_condition["method"] == "integrated_gradients"]
    return {
        "ground_truth": False,
        "note": "no signature masks in the store: attribution is described per lead, not scored",
        "classifier": classifier, "n_pairs": int(len(pairs)), "n_records": int(pairs["record_id"].nunique()),
        "n_conditions": int(pairs["code"].nunique()),
        "ig_completeness_error_median": float(np.median(completeness)),
        **{f"lead_share_{row['method']}": {lead: row[lead] for lead in LEADS} for row in summary.to_dict("records")},
        "top_leads_integrated_gradients": dict(zip(ig["code"], ig["top_leads"])),
        **validity_metrics(validity),
    }
