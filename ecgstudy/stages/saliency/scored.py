"""With ground truth (the simulated cohort): explain each (record, condition) pair and score the maps.

The simulator writes, for every condition of every record, the leads x time spans where it placed the
condition's signature (``signature_masks.parquet``, times in seconds of the stored window). The logit of
the condition's output is explained with integrated gradients and gradient x input, and each map is
scored against the mask next to a random and a signal-magnitude reference
(:func:`ecgstudy.engine.attribution.attribute_and_score`).

Statistics resample the pairs' patients (cluster bootstrap, the same draws for every method): per-method
means with 95% intervals, and the paired difference of each attribution method minus the model-free
baseline (|x| smoothed like every map: :data:`ecgstudy.engine.attribution.BASELINE`) over the same pairs,
Holm-adjusted over the two attribution methods within each score. The saliency claim of the evaluate
stage is integrated gradients' localisation AUROC minus the baseline's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from ecgstudy.engine.attribution import (
    BASELINE, SCORES, attribute_and_score, compare_to_baseline, pair_weights, signature_mask, summarise_scores,
)
from ecgstudy.stages.saliency.check import synthetic_check, validity_metrics
from ecgstudy.stages.saliency.config import SaliencyConfig
from ecgstudy.stages.saliency.result import (
    SaliencyResult, label_for_code, make_example, model_inputs, pick_examples,
)


def select_pairs(spans: pd.DataFrame, records: pd.DataFrame, split_rows: np.ndarray, labels: list[str],
                 label_info: dict, cfg: SaliencyConfig, fs: float, n_samples: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Choose the (record, condition) pairs to explain.

    Keeps conditions the classifier has an output for (``cfg.codes`` if given), signatures covering at
    most ``cfg.max_mask_share`` of the ECG (``n_samples`` samples at ``fs`` Hz per lead), records of the
    split; then draws ``cfg.max_records`` records with ``rng`` (from the sorted record ids).

    Returns
    -------
    DataFrame with row (store row index), record_id, patient_id (the record's own id where the store has
    no ``patient_id``), code, label, one row per pair.
    """
    row_of = {rid: i for i, rid in enumerate(records["record_id"].astype(str))}
    ids = records["record_id"].astype(str).to_numpy()
    patient_of = records["patient_id"].astype(str).to_numpy() if "patient_id" in records else ids
    in_split = set(records["record_id"].astype(str).to_numpy()[split_rows])
    spans = spans.assign(record_id=spans["record_id"].astype(str))
    spans = spans[spans["record_id"].isin(in_split)]
    if cfg.codes:
        spans = spans[spans["code"].isin(cfg.codes)]
    pairs = []
    for (rid, code), group in spans.groupby(["record_id", "code"], sort=True):
        label = label_for_code(code, labels, label_info)
        if label is None:
            continue
        share = signature_mask(group, fs, n_samples).mean()
        if 0 < share <= cfg.max_mask_share:
            pairs.append({"row": row_of[rid], "record_id": rid, "patient_id": patient_of[row_of[rid]], "code": code,
                          "label": label})
    table = pd.DataFrame(pairs, columns=["row", "record_id", "patient_id", "code", "label"])
    chosen = table["record_id"].unique()
    if len(chosen) > cfg.max_records:
        chosen = rng.choice(np.sort(chosen), size=cfg.max_records, replace=False)
    return table[table["record_id"].isin(set(chosen))].reset_index(drop=True)


def explain_with_masks(cfg: SaliencyConfig, store, model: nn.Module, info: dict, classifier: str,
                       rng: np.random.Generator, seed: int, spans: pd.DataFrame) -> SaliencyResult:
    """The stage on a store with signature masks: explain every selected pair and score it.

    Parameters
    ----------
    cfg : saliency section of params.yaml.
    store : the opened :class:`ecgstudy.data.store.Store` (signals (N, 12, T) in mV at ``store.fs`` Hz).
    model, info : the classifier and its checkpoint info (``labels``, ``preprocessing``).
    classifier : its name in the metrics (the checkpoint's file stem).
    rng : the stage's generator; draws, in order, the record sample, the random reference maps and the
        patient resamples.
    seed : study seed (the synthetic check's own generators).
    spans : the store's signature masks (record_id, code, lead, start_s, end_s).
    """
    spans = spans.astype({"record_id": str})
    labels = list(info["labels"])
    fs, n_samples = float(store.fs), int(store.n_samples)
    pairs = select_pairs(spans, store.records, store.indices(cfg.split), labels,
                         store.meta.get("label_info", {}), cfg, fs, n_samples, rng)
    if pairs.empty:
        raise ValueError(f"{store.path}: no signature masks in split {cfg.split!r} match the classifier's "
                         f"labels {labels} (codes filter: {list(cfg.codes) or 'none'})")
    x, lead_mask, target = model_inputs(store, pairs, info)
    by_pair = spans.groupby(["record_id", "code"])
    masks = np.stack([signature_mask(by_pair.get_group((r, c)), fs, n_samples)
                      for r, c in pairs[["record_id", "code"]].itertuples(index=False)])  # (P, 12, T) bool
    smooth = max(1, int(round(cfg.smooth_s * fs)))
    scores, maps = attribute_and_score(model, x, lead_mask, target, masks, n_steps=cfg.n_steps,
                                       batch_size=cfg.batch_size, smooth_samples=smooth, rng=rng)
    scores = scores.merge(pairs[["record_id", "patient_id", "code", "label"]], left_on="pair", right_index=True)
    weights = pair_weights(scores, cfg.n_bootstrap, rng)  # (P, B): shared by every method (paired)
    summary = summarise_scores(scores, weights)
    paired = compare_to_baseline(scores, weights)
    per_condition = (scores.groupby(["method", "code"])[list(SCORES) + ["prob"]].mean()
                     .join(scores.groupby(["method", "code"]).size().rename("n_pairs")).reset_index())
    drawn = [make_example(store, pairs, p, float(scores.loc[(scores["pair"] == p), "prob"].iloc[0]),
                          maps["integrated_gradients"][p], smooth, masks[p])
             for p in pick_examples(pairs, scores, cfg.n_examples)]
    validity = synthetic_check(seed) if cfg.validity_check else None
    metrics = scored_metrics(summary, scores, validity, pairs, classifier, paired, cfg.n_bootstrap)
    return SaliencyResult(scores, summary, per_condition, drawn, validity, metrics, paired=paired)


PAIRED_KEYS = ("diff", "low", "high", "level", "p_value", "p_holm", "low_unadj", "high_unadj", "n_pairs",
               "family_size")


def scored_metrics(summary: pd.DataFrame, scores: pd.DataFrame, validity: pd.DataFrame | None,
                   pairs: pd.DataFrame, classifier: str, paired: pd.DataFrame | None = None,
                   n_boot: int | None = None) -> dict:
    """Headline numbers: per method mean and 95% interval of each score; ``paired``: per attribution
    method and score, the difference to the baseline with its interval; ``statistics``; the validity check."""
    out: dict = {"ground_truth": True, "classifier": classifier, "n_pairs": int(len(pairs)),
                 "n_records": int(pairs["record_id"].nunique()),
                 "n_patients": int(pairs["patient_id"].nunique()) if "patient_id" in pairs else None,
                 "n_conditions": int(pairs["code"].nunique()),
                 "ig_completeness_error_median": float(scores.loc[scores["method"] == "integrated_gradients",
                                                                   "completeness_error"].median())}
    for row in summary.to_dict("records"):
        out[row["method"]] = {f"{s}{suffix}": row[f"{s}{suffix}"] for s in SCORES for suffix in ("", "_lo", "_hi")}
    if paired is not None and not paired.empty:
        out["baseline"] = {"method": BASELINE, "definition": "|x| of the model input, smoothed and scored like every "
                           "attribution map over the same (record, condition) pairs; needs no model"}
        out["paired"] = {m: {r["score"]: {k: r[k] for k in PAIRED_KEYS} for r in rows.to_dict("records")}
                         for m, rows in paired.groupby("method", sort=False)}
        out["statistics"] = {
            "resampling": "cluster bootstrap over the explained pairs' patients, the same draws for every method",
            "n_boot": n_boot, "level": 0.95, "repeats": 1,
            "family": f"{' and '.join(pd.unique(paired['method']))} - {BASELINE}, Holm within each score",
        }
    out.update(validity_metrics(validity))
    return out
