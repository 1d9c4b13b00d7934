"""Cluster bootstrap over patients and training repeats, with exact weighted AUROC / AUPRC.

A resample draws the P patients of an evaluation set with replacement; each record then counts as many
times as its patient was drawn. Instead of materialising the resampled rows, every metric is computed
with the record *weights* of all B resamples at once, columns of a weight matrix ``w`` (N, B) of small
integers. For one label this costs two sorts of the N scores and a few passes over (N, B) arrays, so
1,000 resamples of a few thousand records take milliseconds per model and label.

Weighted AUROC (Mann-Whitney with mid-ranks for ties) and weighted average precision (scikit-learn's
step-wise definition, tied scores as one threshold) are exactly what the unweighted formulas give on
the resampled rows (tested against scikit-learn with repeated rows and with ``sample_weight``).

No redraw rule: a resample in which a label has no positive or no negative weight leaves that label
out of that resample's macro average, and the skip is counted (:func:`ResampledLabels.skipped`).

Training repeats: a statistic of a model trained R times is the mean over repeats; each resample also
draws R repeat indices with replacement (:func:`repeat_counts`), shared by every arm compared, so the
interval covers test sampling and training variability together.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

METRICS = ("auroc", "auprc")


def seed_for(seed: int, *names: str) -> np.random.SeedSequence:
    """A seed sequence for a named stream (e.g. family and group): the same names give the same draws."""
    return np.random.SeedSequence([int(seed), *(zlib.crc32(n.encode()) for n in names)])


def patient_weights(patients: np.ndarray, n_boot: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """Record weights (N, B) int32 of ``n_boot`` cluster-bootstrap resamples over patients.

    Each resample draws the P distinct ids of ``patients`` (N,) P times with replacement; a record's
    weight is the number of times its patient was drawn (every record of a drawn patient comes along).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    ids, inverse = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    n_pat = len(ids)
    if n_pat == 0:
        raise ValueError("no records to resample")
    draws = np.random.default_rng(seed).integers(0, n_pat, size=(n_boot, n_pat))
    offsets = (np.arange(n_boot)[:, None] * n_pat + draws).ravel()
    counts = np.bincount(offsets, minlength=n_boot * n_pat).reshape(n_boot, n_pat).astype(np.int32)
    return np.ascontiguousarray(counts[:, inverse].T)  # (N, B)


def repeat_counts(n_repeats: int, n_boot: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """Multiplicities (B, R) of R repeat indices drawn with replacement in each of B resamples."""
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")
    draws = np.random.default_rng(seed).integers(0, n_repeats, size=(n_boot, n_repeats))
    offsets = (np.arange(n_boot)[:, None] * n_repeats + draws).ravel()
    return np.bincount(offsets, minlength=n_boot * n_repeats).reshape(n_boot, n_repeats)


def weighted_means(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B,) mean of the finite ``values`` (N,) under each column of record weights ``w`` (N, B).

    A value that is nan (undefined for that record) is left out; a column in which no finite value has
    weight gives nan. ``np.ones((N, 1))`` gives the plain mean of the finite values.
    """
    values = np.asarray(values, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if w.shape[0] != values.shape[0]:
        raise ValueError(f"{values.shape[0]} values for {w.shape[0]} weight rows")
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0) @ w
    count = finite.astype(np.float64) @ w
    return np.divide(total, count, out=np.full(w.shape[1], np.nan), where=count > 0)


def weighted_metrics(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC and AUPRC of one label under each column of weights.

    Parameters
    ----------
    y : (N,) 0/1 targets
    s : (N,) scores (only their order matters)
    w : (N, B) non-negative integer record weights (B resamples; ``np.ones((N, 1))`` for the full set);
        int32 avoids a conversion per call

    Returns
    -------
    {"auroc": (B,), "auprc": (B,)}, nan in a column without positive or without negative weight.
    """
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    w = np.asarray(w)
    if w.dtype != np.int32:
        w = w.astype(np.int32)
    n_boot = w.shape[1]
    pos_rows, neg_rows = np.flatnonzero(y), np.flatnonzero(~y)
    if pos_rows.size == 0 or neg_rows.size == 0:
        nan = np.full(n_boot, np.nan)
        return {"auroc": nan, "auprc": nan.copy()}
    sp, sn = s[pos_rows], s[neg_rows]
    order_n = np.argsort(sn, kind="mergesort")
    sn_sorted = sn[order_n]
    # neg_below[k]: weight (per resample) of the k lowest-scored negatives: the one pass over the (N, B)
    # weights, rows gathered in score order, then summed row by row (numpy's cumsum along the first axis
    # of a wide array is several times slower than this loop of contiguous row additions)
    neg_below = np.empty((neg_rows.size + 1, n_boot), dtype=np.int32)
    neg_below[0] = 0
    np.take(w, neg_rows[order_n], axis=0, out=neg_below[1:])
    _cumulate_rows(neg_below)
    lo = np.searchsorted(sn_sorted, sp, side="left")  # negatives strictly below each positive
    hi = np.searchsorted(sn_sorted, sp, side="right")  # ... at or below (ties count half)
    below = neg_below[lo].astype(np.float64)  # (n_pos, B)
    tied = below if np.array_equal(lo, hi) else neg_below[hi].astype(np.float64)
    order_p = np.argsort(sp, kind="mergesort")
    wp = w[pos_rows].astype(np.float64)  # (n_pos, B)
    pos_below = np.zeros((sp.size + 1, n_boot))
    pos_below[1:] = wp[order_p]
    _cumulate_rows(pos_below)
    lo_p = np.searchsorted(sp[order_p], sp, side="left")  # positives strictly below each positive
    w_pos, w_neg = pos_below[-1], neg_below[-1].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = 0.5 * np.einsum("ib,ib->b", wp, below + tied) / (w_pos * w_neg)
        tp_at_or_above = w_pos - pos_below[lo_p]  # (n_pos, B)
        seen_at_or_above = tp_at_or_above + (w_neg - below)  # 0 only where tp_at_or_above is 0 too
        precision = tp_at_or_above / np.maximum(seen_at_or_above, 1.0)
        auprc = np.einsum("ib,ib->b", wp, precision) / w_pos
    valid = (w_pos > 0) & (w_neg > 0)
    return {"auroc": np.where(valid, auroc, np.nan), "auprc": np.where(valid, auprc, np.nan)}


def _cumulate_rows(a: np.ndarray) -> None:
    """In-place cumulative sum down the rows of ``a`` (rows, B)."""
    if a.shape[1] <= 16:
        np.cumsum(a, axis=0, out=a)
        return
    for i in range(1, a.shape[0]):
        np.add(a[i - 1], a[i], out=a[i])


@dataclass
class ResampledLabels:
    """Per-label metrics of one model on the B resamples of one evaluation set (a fixed label set)."""

    values: dict[str, np.ndarray]  # metric -> (B, L_set), nan where the label was skipped in that resample
    full: dict[str, np.ndarray]  # metric -> (L_set,) on the full set (every weight 1)

    def macro(self, metric: str) -> np.ndarray:
        """(B,) macro average over the labels present (both classes) in each resample; nan if none is."""
        values = self.values[metric]
        present = np.isfinite(values)
        total = np.where(present, values, 0.0).sum(axis=1)
        count = present.sum(axis=1)
        return np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)

    def macro_full(self, metric: str) -> float:
        return float(np.mean(self.full[metric])) if self.full[metric].size else float("nan")


def resampled_labels(y: np.ndarray, s: np.ndarray, w: np.ndarray, labels: np.ndarray) -> ResampledLabels:
    """Metrics of every label in ``labels`` (column indices) of targets ``y`` (N, L) and scores ``s`` (N, L)
    on each resample of ``w`` (N, B) and on the full set."""
    y, s = np.asarray(y), np.asarray(s)
    if y.shape != s.shape:
        raise ValueError(f"targets {y.shape} and scores {s.shape} differ in shape")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    w = np.ascontiguousarray(w, dtype=np.int32)
    ones = np.ones((len(y), 1), dtype=np.int32)
    values = {m: np.empty((w.shape[1], len(labels))) for m in METRICS}
    full = {m: np.empty(len(labels)) for m in METRICS}
    for j, col in enumerate(labels):
        boot = weighted_metrics(y[:, col], s[:, col], w)
        point = weighted_metrics(y[:, col], s[:, col], ones)
        for m in METRICS:
            values[m][:, j], full[m][j] = boot[m], point[m][0]
    return ResampledLabels(values, full)


def skipped(y: np.ndarray, w: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Bool (B, L_set): True where a label of ``labels`` lacks positive or negative weight in a resample
    (it is left out of that resample's macro average)."""
    y = np.asarray(y)[:, labels].astype(np.float64)
    pos = w.T.astype(np.float64) @ y  # (B, L_set)
    total = w.sum(axis=0).astype(np.float64)[:, None]
    return (pos == 0) | (pos == total)


def fixed_label_set(groups: dict[str, np.ndarray], min_positives: int) -> np.ndarray:
    """Indices of the labels with at least ``min_positives`` positives and as many negatives in every group.

    ``groups`` maps an evaluation set's name to its targets (N_g, L); all share the same L labels. The set is
    decided from label counts only, before any score is read.
    """
    if not groups:
        return np.zeros(0, dtype=np.int64)
    widths = {g: np.asarray(y).shape[1] for g, y in groups.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"evaluation sets have different label counts: {widths}")
    keep = np.ones(next(iter(widths.values())), dtype=bool)
    for y in groups.values():
        y = np.asarray(y)
        pos = y.sum(axis=0)
        keep &= (pos >= min_positives) & (len(y) - pos >= min_positives)
    return np.flatnonzero(keep)
