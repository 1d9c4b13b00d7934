"""Independent measurement of ECG intervals with neurokit2 (a check on the simulator, and a table for curate).

:func:`measure_intervals` finds R peaks with ``neurokit2.ecg_peaks`` and delineates the waves with
``neurokit2.ecg_delineate(method="prominence")`` (the default wavelet method gives impossible values on
clean synthetic signals, see RESEARCH.md), then takes per-beat medians:

- heart rate from the mean RR interval, and the coefficient of variation of RR (irregularity);
- PR = QRS onset - P onset; QRS = QRS offset - QRS onset; QT = T offset - QRS onset.

Whatever cannot be measured comes back as NaN rather than an exception. :func:`interval_table` gives the
per-condition medians over a sample of records (the curate notebook's "intervals by condition" table).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.leads import LEADS

MEASURES: tuple[str, ...] = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "rr_cv")
MIN_BEATS = 3  # fewer detected R peaks than this: nothing is measured


def _nan_result() -> dict[str, float]:
    return {k: float("nan") for k in MEASURES}


def _median_ms(later: Sequence, earlier: Sequence, fs: float, lo_ms: float, hi_ms: float) -> float:
    """Median of per-beat differences (ms) where both fiducials exist and the difference is plausible."""
    a = np.asarray(later, dtype=float)
    b = np.asarray(earlier, dtype=float)
    n = min(a.size, b.size)
    d = (a[:n] - b[:n]) * 1000.0 / fs
    d = d[np.isfinite(d) & (d >= lo_ms) & (d <= hi_ms)]
    return float(np.median(d)) if d.size else float("nan")


def measure_intervals(signal: np.ndarray, fs: float, lead: str = "II") -> dict[str, float]:
    """Heart rate, PR, QRS, QT and RR irregularity of one record, measured on one lead.

    Parameters
    ----------
    signal : array of shape (12, n_samples) at ``fs`` Hz in mV, leads in the order I, II, III, aVR, aVL,
        aVF, V1-V6 (a single lead of shape (n_samples,) is accepted as well).
    fs : sampling rate, Hz.
    lead : the lead to measure on.

    Returns
    -------
    dict with hr_bpm, pr_ms, qrs_ms, qt_ms (medians over beats) and rr_cv (std / mean of RR); NaN for
    whatever could not be measured (flat or missing lead, too few beats, failed delineation).
    """
    import neurokit2 as nk

    x = np.asarray(signal, dtype=float)
    if x.ndim == 2:
        if lead not in LEADS:
            raise ValueError(f"unknown lead {lead!r}; leads: {list(LEADS)}")
        x = x[LEADS.index(lead)]
    out = _nan_result()
    if x.size < 2 * fs or not np.all(np.isfinite(x)) or np.ptp(x) < 0.05:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cleaned = nk.ecg_clean(x, sampling_rate=int(fs))
            _, info = nk.ecg_peaks(cleaned, sampling_rate=int(fs))
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
        except Exception:  # neurokit2 raises assorted errors on odd signals: report "not measured"
            return out
        if peaks.size < MIN_BEATS:
            return out
        rr = np.diff(peaks) / fs
        out["hr_bpm"] = float(60.0 / rr.mean())
        out["rr_cv"] = float(rr.std() / rr.mean())
        try:
            _, waves = nk.ecg_delineate(cleaned, peaks, sampling_rate=int(fs), method="prominence")
        except Exception:
            return out
    r_on = waves.get("ECG_R_Onsets", [])
    out["pr_ms"] = _median_ms(r_on, waves.get("ECG_P_Onsets", []), fs, 40.0, 500.0)
    out["qrs_ms"] = _median_ms(waves.get("ECG_R_Offsets", []), r_on, fs, 30.0, 300.0)
    out["qt_ms"] = _median_ms(waves.get("ECG_T_Offsets", []), r_on, fs, 150.0, 750.0)
    return out


def _source_arrays(source: Any) -> tuple[Any, pd.DataFrame, float]:
    """(signals (N, 12, T), label/ground-truth frame, fs) from a Store-like object or a tuple."""
    if hasattr(source, "signals") and hasattr(source, "records") and hasattr(source, "fs"):
        return source.signals, source.records, float(source.fs)
    if isinstance(source, tuple) and len(source) == 3:
        signals, labels, fs = source
        if isinstance(labels, dict):
            labels = pd.DataFrame({f"y_{k}": np.asarray(v).astype(np.int8) for k, v in labels.items()})
        return signals, labels, float(fs)
    raise TypeError(
        "interval_table expects a Store (with .signals, .records, .fs) or a tuple "
        "(signals (N, 12, T), labels DataFrame with y_<CODE> columns or {code: 0/1 array}, fs)"
    )


def interval_table(
    store_or_arrays: Any,
    codes: Sequence[str],
    n_per_code: int = 20,
    lead: str = "II",
    seed: int = 0,
) -> pd.DataFrame:
    """Median neurokit2-measured intervals per condition, over a sample of records with that label.

    Parameters
    ----------
    store_or_arrays : a curated store (``.signals`` (N, 12, T) mV, ``.records`` with ``y_<CODE>`` columns,
        ``.fs``), or a tuple ``(signals, labels, fs)`` with labels a DataFrame of ``y_<CODE>`` columns or a
        dict {code: 0/1 array}.
    codes : the conditions to tabulate (rows of the table).
    n_per_code : records measured per condition (a seeded random sample when there are more).
    lead : lead measured.
    seed : seed of the sampling.

    Returns
    -------
    DataFrame indexed by code with columns n_records, n_measured, hr_bpm, pr_ms, qrs_ms, qt_ms, rr_cv
    (medians), plus the medians of the ground-truth columns gt_hr_bpm, gt_pr_ms, gt_qrs_ms, gt_qt_ms when
    the records carry them.
    """
    signals, records, fs = _source_arrays(store_or_arrays)
    rng = np.random.default_rng(seed)
    rows = []
    for code in codes:
        col = f"y_{code}"
        if col not in records.columns:
            raise KeyError(f"no label column {col!r}; available: {[c for c in records.columns if c.startswith('y_')]}")
        idx = np.flatnonzero(records[col].to_numpy() == 1)
        if idx.size > n_per_code:
            idx = np.sort(rng.choice(idx, n_per_code, replace=False))
        measured = [measure_intervals(np.asarray(signals[i]), fs, lead) for i in idx]
        frame = pd.DataFrame(measured, columns=list(MEASURES))
        row: dict[str, Any] = {
            "code": code, "n_records": int(idx.size), "n_measured": int(frame["hr_bpm"].notna().sum())
        }
        for k in MEASURES:
            row[k] = float(frame[k].median()) if frame[k].notna().any() else float("nan")
        for k in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms"):
            gt = f"gt_{k}"
            if gt in records.columns:
                values = pd.to_numeric(records[gt].iloc[idx], errors="coerce")
                row[gt] = float(values.median()) if values.notna().any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("code")
