"""Per-label decision thresholds chosen on the validation split, and the operating points they give on test.

A classifier outputs probabilities; a yes/no decision needs a threshold per label, and the study chooses
it by a stated rule on the validation split (never on test), stores it in the classifier checkpoint, and
reports what it gives on test:

==================  ==========================================================================================
``youden``          maximise Youden's J = sensitivity + specificity - 1 (Youden, Cancer 1950)
``f1``              maximise F1 = 2 precision recall / (precision + recall)
``sensitivity:X``   the highest threshold whose sensitivity is at least X (e.g. ``sensitivity:0.9``, a
                    screening rule: at most 10% of positives missed), the best specificity at that sensitivity
==================  ==========================================================================================

Candidates are the distinct validation probabilities (a record is positive when p >= threshold); ties
between candidates go to the highest threshold. A label without both classes on validation cannot be
tuned: it gets :data:`FALLBACK` (0.5) and ``basis`` says so.

:func:`operating_points` reports, per label on a test set, sensitivity and specificity with Wilson score
intervals (Wilson, JASA 1927), AUROC with the Hanley-McNeil interval (Radiology 1982) and the expected
calibration error (:mod:`ecgstudy.engine.calibration`). These closed-form intervals describe one model on
one test set for its model card; the study's reported intervals are the evaluate stage's bootstrap.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ecgstudy.engine import calibration
from ecgstudy.engine.evaluate import auroc_1d

#: Threshold of a label that cannot be tuned on validation (one class only there).
FALLBACK = 0.5
#: z of the two-sided 95% intervals.
Z95 = 1.959963984540054


def parse_rule(rule: str) -> tuple[str, float | None]:
    """``"youden"`` / ``"f1"`` / ``"sensitivity:X"`` -> (name, X or None); fails naming the valid forms."""
    name, _, value = str(rule).partition(":")
    if name in ("youden", "f1") and not value:
        return name, None
    if name == "sensitivity":
        try:
            target = float(value)
        except ValueError:
            target = -1.0
        if 0 < target <= 1:
            return name, target
    raise ValueError(f"unknown threshold rule {rule!r}; valid: 'youden', 'f1', 'sensitivity:X' with 0 < X <= 1")


def _curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds descending, true positives, false positives) at each distinct probability (p >= t)."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), p.size - 1]  # last index of each tie group
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    return p_sorted[last], tp, fp


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str = "youden") -> tuple[float, str]:
    """Threshold of one label from validation targets (N,) 0/1 and probabilities (N,); returns (threshold, basis)."""
    name, target = parse_rule(rule)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return FALLBACK, f"fallback {FALLBACK:g}: one class only on validation ({n_pos} positives of {y.size})"
    thresholds, tp, fp = _curve(y, p)
    sens, spec = tp / n_pos, 1.0 - fp / n_neg
    if name == "youden":
        score = sens + spec - 1.0
    elif name == "f1":
        score = 2 * tp / (2 * tp + fp + (n_pos - tp))
    else:
        score = np.where(sens >= target - 1e-12, spec, -np.inf)
    best = int(np.argmax(score))  # first maximum = the highest threshold among ties
    return float(thresholds[best]), f"{rule} on validation ({n_pos} positives, {n_neg} negatives)"


def choose_thresholds(y: np.ndarray, p: np.ndarray, labels: list[str], rule: str = "youden") -> pd.DataFrame:
    """One threshold per label of validation targets (N, L) and probabilities (N, L).

    Returns a table with ``label``, ``threshold``, ``basis``, ``val_sensitivity``, ``val_specificity``.
    """
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"targets {y.shape}, probabilities {p.shape} and {len(labels)} labels do not match")
    rows = []
    for j, label in enumerate(labels):
        threshold, basis = choose_threshold(y[:, j], p[:, j], rule)
        sens, spec = _rates(y[:, j], p[:, j] >= threshold)
        rows.append({"label": label, "threshold": threshold, "basis": basis, "val_sensitivity": sens,
                     "val_specificity": spec})
    return pd.DataFrame(rows)


def _rates(y: np.ndarray, decided: np.ndarray) -> tuple[float, float]:
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    sens = float((decided & y).sum() / n_pos) if n_pos else float("nan")
    spec = float((~decided & ~y).sum() / n_neg) if n_neg else float("nan")
    return sens, spec


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n; (nan, nan) when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def hanley_mcneil(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> tuple[float, float]:
    """Approximate interval of an AUROC from its Hanley-McNeil standard error; (nan, nan) if not computable."""
    if not np.isfinite(auc) or n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    se = math.sqrt(max(var, 0.0))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def operating_points(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, labels: list[str],
                     n_bins: int = calibration.N_BINS) -> pd.DataFrame:
    """What stored thresholds give on a test set: targets (N, L), probabilities (N, L), thresholds (L,).

    Returns one row per label: ``label``, ``threshold``, ``n_pos``, ``n``, ``sensitivity`` (+ ``_low``,
    ``_high``: Wilson 95%), ``specificity`` (+ interval), ``auroc`` (+ Hanley-McNeil 95% interval), ``ece``.
    """
    y, p = np.asarray(y).astype(np.int64), np.asarray(p, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(labels) or len(thresholds) != len(labels):
        raise ValueError(f"targets {y.shape}, probabilities {p.shape}, {len(thresholds)} thresholds and "
                         f"{len(labels)} labels do not match")
    rows = []
    for j, label in enumerate(labels):
        yj, decided = y[:, j].astype(bool), p[:, j] >= thresholds[j]
        n_pos, n_neg = int(yj.sum()), int((~yj).sum())
        tp, tn = int((decided & yj).sum()), int((~decided & ~yj).sum())
        auc = auroc_1d(y[:, j], p[:, j])
        row = {"label": label, "threshold": float(thresholds[j]), "n_pos": n_pos, "n": int(len(yj)),
               "sensitivity": tp / n_pos if n_pos else float("nan"),
               "specificity": tn / n_neg if n_neg else float("nan")}
        row["sensitivity_low"], row["sensitivity_high"] = wilson(tp, n_pos)
        row["specificity_low"], row["specificity_high"] = wilson(tn, n_neg)
        row["auroc"] = auc
        row["auroc_low"], row["auroc_high"] = hanley_mcneil(auc, n_pos, n_neg)
        row["ece"] = calibration.ece(y[:, j], p[:, j], n_bins)
        rows.append(row)
    return pd.DataFrame(rows)
