"""Describing a curated store: who is in it, with what labels, and one example per condition.

Used by the curate stage for its tables and its per-condition ECG gallery, and by the latent stage for
the diagnostic category of each drawn record; everything here reads a :class:`ecgstudy.data.store.Store`
(or its records table) and returns DataFrames or row indices (no plotting, no writing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ecgstudy.data.labels import LABEL_PREFIX
from ecgstudy.data.store import Store

SPLITS = ("train", "val", "test", "external")
SUPERCLASS_ORDER: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")  # PTB-XL diagnostic classes


def split_table(store: Store) -> pd.DataFrame:
    """Records and patients per split and site.

    Returns a DataFrame indexed by site with columns ``<split>_records`` and ``<split>_patients``
    (splits in the order train, val, test, external; absent splits left out).
    """
    rec = store.records
    present = [s for s in SPLITS if s in set(rec["split"])]
    grouped = rec.groupby(["site", "split"])
    records = grouped.size().unstack("split").reindex(columns=present).fillna(0).astype(int)
    patients = grouped["patient_id"].nunique().unstack("split").reindex(columns=present).fillna(0).astype(int)
    out = pd.concat({"records": records, "patients": patients}, axis=1)
    out.columns = [f"{split}_{what}" for what, split in out.columns]
    return out


def prevalence_table(store: Store, codes: Sequence[str] | None = None, by: str = "site") -> pd.DataFrame:
    """Reported-label prevalence (%) of each code, per value of column ``by`` (site or split).

    Rows are codes (store vocabulary order, only codes with at least one positive unless ``codes``
    is given), columns the values of ``by`` plus ``all``; the last row ``n`` counts records.
    """
    return _prevalence(store.records, store.labels, codes, by)


def _prevalence(rec: pd.DataFrame, labels: Sequence[str], codes: Sequence[str] | None, by: str) -> pd.DataFrame:
    codes = list(codes) if codes is not None else [c for c in labels if rec[LABEL_PREFIX + c].any()]
    cols = [LABEL_PREFIX + c for c in codes]
    table = rec.groupby(by)[cols].mean().T * 100
    table["all"] = rec[cols].mean().values * 100
    table.index = codes
    counts = rec.groupby(by).size()
    table.loc["n"] = list(counts.reindex(table.columns[:-1]).values) + [len(rec)]
    return table.round(1)


def prevalence_by_store(stores: dict[str, Store]) -> pd.DataFrame:
    """Reported-label prevalence (%) of every store, corpus and site side by side.

    Columns ``<store>:<corpus>:<site> (<device>)`` (the corpus where the store has a ``corpus`` column,
    else the store's name) plus ``<store>:all``; rows are the codes with a positive in any store, in
    first-seen vocabulary order, and ``n`` (records). A code a store lacks is left empty.
    """
    parts = []
    for name, store in stores.items():
        rec = store.records
        corpus = rec["corpus"].astype(str) if "corpus" in rec.columns else pd.Series(name, index=rec.index)
        device = rec["device"].astype(str) if "device" in rec.columns else pd.Series("", index=rec.index)
        site = rec["site"].astype(str) if "site" in rec.columns else pd.Series("all", index=rec.index)
        common = device.groupby(site).agg(lambda d: d.value_counts().index[0])
        label = name + ":" + corpus + ":" + site + " (" + site.map(common) + ")"
        table = _prevalence(rec.assign(_group=label.to_numpy()), store.labels, None, "_group")
        table = table.rename(columns={"all": f"{name}:all"})
        parts.append(table)
    codes = list(dict.fromkeys(c for t in parts for c in t.index if c != "n"))
    out = pd.concat(parts, axis=1).reindex(codes + ["n"])
    out.columns.name = None
    return out


def true_codes(store: Store) -> list[dict[str, float]]:
    """The simulator's true conditions per record ({code: severity}), from the ``gt_codes`` column.

    Raises KeyError when the store has no ground truth (real datasets).
    """
    if "gt_codes" not in store.records.columns:
        raise KeyError(f"{store.path}: no gt_codes column (ground truth exists for simulated data only)")
    return [json.loads(text) if isinstance(text, str) else dict(text) for text in store.records["gt_codes"]]


def example_per_condition(
    store: Store, codes: Sequence[str], split: str | None = "test", alone: bool = True
) -> dict[str, int]:
    """Pick one clear example record per condition.

    For each code, among records (of ``split``, if given) whose reported label is positive, prefer
    records where it is the only abnormal finding (``alone``: no other reported code besides NORM/SR)
    and, with ground truth available, the highest true severity; ties go to the lowest row index so the
    choice is deterministic. Codes without any positive record are left out.

    Returns {code: row index into the store}.
    """
    rec = store.records
    rows = np.arange(len(rec)) if split is None else store.indices(split)
    reported = rec.iloc[rows][[LABEL_PREFIX + c for c in store.labels]].to_numpy().astype(bool)
    severity = None
    if "gt_codes" in rec.columns:
        truth = true_codes(store)
        severity = {c: np.array([truth[i].get(c, 0.0) for i in rows]) for c in codes}
    background = {"NORM", "SR"}
    other = np.array([c not in background for c in store.labels])
    n_other = reported[:, other].sum(axis=1)
    picked: dict[str, int] = {}
    for code in codes:
        if code not in store.labels:
            continue
        col = store.labels.index(code)
        pos = np.flatnonzero(reported[:, col])
        if pos.size == 0:
            continue
        extra = n_other[pos] - (1 if code not in background else 0)
        score = -(extra if alone else np.zeros_like(extra)).astype(float)
        if severity is not None:
            score = score * 10 + severity[code][pos]
        picked[code] = int(rows[pos[np.argmax(score)]])
    return picked


def primary_diagnosis(records: pd.DataFrame, label_info: dict[str, dict[str, str]]) -> pd.Series:
    """One display category per record: its diagnostic superclass (NORM, MI, STTC, CD, HYP).

    Records with several superclasses get ``"several"``, records with none ``"none"``. Uses the store's
    ``y_<CODE>`` columns and ``meta["label_info"]`` (diagnostic_class of each code).
    """
    classes: dict[str, list[str]] = {}
    for code, info in label_info.items():
        cls = info.get("diagnostic_class") or ""
        if cls and f"y_{code}" in records.columns:
            classes.setdefault(cls, []).append(f"y_{code}")
    names = sorted(classes, key=lambda c: (SUPERCLASS_ORDER.index(c) if c in SUPERCLASS_ORDER else 99, c))
    if not names:
        return pd.Series("none", index=records.index, name="diagnosis")
    has = np.stack([records[cols].to_numpy().any(axis=1) for cols in (classes[n] for n in names)], axis=1)
    count = has.sum(axis=1)
    first = np.array(names, dtype=object)[has.argmax(axis=1)]
    out = np.where(count == 1, first, np.where(count == 0, "none", "several"))
    return pd.Series(out, index=records.index, name="diagnosis")


def gallery_codes(store: Store, max_codes: int = 24, min_positives: int = 5) -> list[str]:
    """Conditions worth one gallery panel each: reported codes with enough positives, most common first.

    ``SR`` (sinus rhythm, the background of most records) is left out; at most ``max_codes`` codes.
    """
    counts = {c: int(store.records[LABEL_PREFIX + c].sum()) for c in store.labels if c != "SR"}
    ranked = sorted((c for c, n in counts.items() if n >= min_positives), key=lambda c: (-counts[c], c))
    return ranked[:max_codes]


#: Interval shifts the curate stage checks (condition, measure, reference condition): the physiology each
#: condition is known to change, measured independently (neurokit2) on the curated signals.
EXPECTED_SHIFTS = (
    ("CLBBB", "qrs_ms", "NORM"),
    ("CRBBB", "qrs_ms", "NORM"),
    ("1AVB", "pr_ms", "NORM"),
    ("AFIB", "rr_cv", "NORM"),
    ("LNGQT", "qt_ms", "NORM"),
    ("CLBBB", "global_qrs_ms", "NORM"),  # the global 12-lead measurer (neurokit2's QRS stops at 100 ms)
    ("CRBBB", "global_qrs_ms", "NORM"),
    ("LVH", "global_sokolow_mv", "NORM"),
    ("LNGQT", "global_qt_ms", "NORM"),
    ("WPW", "global_pr_ms", "NORM"),  # pre-excitation shortens the PR (neurokit2 misses the delta wave)
)


def curation_metrics(store: Store, summaries: dict[str, dict], intervals: pd.DataFrame) -> dict:
    """Headline numbers of the curate stage (for ``reports/metrics/curate.json``).

    Parameters
    ----------
    store : the main curated store.
    summaries : {"main": summary, "rare": summary} as returned by curation (for a real dataset the
        ``rare`` summary is :func:`ecgstudy.data.rare_sets.build_rare_store`'s, with one entry per configured set).
    intervals : the per-condition interval table (:func:`ecgstudy.data.measure.interval_table`), indexed by code.
    """
    rec = store.records
    metrics: dict = {
        "records": int(len(rec)),
        "patients": int(rec["patient_id"].nunique()),
        "labels_with_positives": int(sum(rec[LABEL_PREFIX + c].any() for c in store.labels)),
        "fs": float(store.fs),
        "n_samples": int(store.n_samples),
        "split": {s: int((rec["split"] == s).sum()) for s in SPLITS if (rec["split"] == s).any()},
    }
    for name, summary in summaries.items():
        metrics[f"{name}_kept"] = int(summary["n_kept"])
        metrics[f"{name}_excluded"] = int(sum(summary["excluded_by_reason"].values()))
        if "sets" in summary:  # rare-disease sets drawn from a real dataset: what was built or skipped
            for s in summary["sets"]:  # one flat entry per code: the report shows them as one table
                metrics[f"{name}_set_{s['code']}"] = {
                    "status": s["status"], "case_patients": s["case_patients"], "control_patients": s["control_patients"]
                }
            if not summary["sets"]:
                metrics[f"{name}_sets"] = "none configured"
    shifts = {}
    for code, measure_name, reference in EXPECTED_SHIFTS:
        if code in intervals.index and reference in intervals.index and measure_name in intervals.columns:
            shifts[f"{code}_{measure_name}_minus_{reference}"] = float(
                intervals.loc[code, measure_name] - intervals.loc[reference, measure_name]
            )
    metrics["measured_shift"] = shifts
    if "gt_hr_bpm" in intervals.columns:
        metrics["hr_median_abs_error_bpm"] = float((intervals["hr_bpm"] - intervals["gt_hr_bpm"]).abs().median())
    return metrics
