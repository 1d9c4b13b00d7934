"""Metrics for multi-label ECG classification: AUROC, AUPRC, bootstrap intervals, paired comparisons.

Conventions: ``y`` is a 0/1 array of shape (N, L) (N records, L labels), ``scores`` a float array of the
same shape (probabilities or logits: both metrics only use the ordering). A label is *evaluable* on a set
when it has at least one positive and one negative there; macro averages run over evaluable labels only,
and the number used is reported beside them.

Point estimates come from scikit-learn (``roc_auc_score``, ``average_precision_score``). Inside bootstrap
loops the same quantities are computed by exact numpy implementations (:func:`auroc_1d`, :func:`auprc_1d`,
tested to agree with scikit-learn, ties included), because scikit-learn's per-call input validation costs
about 1-2 ms, i.e. minutes for the study's thousands of resamples on 2 cores.

Bootstrap (as in the PTB-XL benchmark): each resample draws N records with replacement and is redrawn
until every evaluable label has at least one positive and one negative in it, so no resample silently
drops a rare label. Paired comparisons evaluate two models on the very same resamples.

Sliding-window evaluation (the PTB-XL benchmark's test protocol for models trained on short crops):
:func:`predict_windows` runs a model on every window of each record (:func:`ecgstudy.data.store.window_starts`)
and aggregates the per-window probabilities per record (max or mean); :func:`window_outputs` and
:func:`aggregate_windows` are its two halves, for callers with their own head (cached-feature probes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def _as_2d(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    if y.ndim == 1:
        y, scores = y[:, None], scores[:, None] if scores.ndim == 1 else scores
    if y.shape != scores.shape:
        raise ValueError(f"labels {y.shape} and scores {scores.shape} differ in shape")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return y.astype(np.int8), scores


def evaluable(y: np.ndarray) -> np.ndarray:
    """Bool (L,): labels with at least one positive and one negative among the N rows of ``y`` (N, L)."""
    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    pos = y.sum(axis=0)
    return (pos > 0) & (pos < y.shape[0])


def auroc_1d(y: np.ndarray, s: np.ndarray) -> float:
    """AUROC of one label (Mann-Whitney U with mid-ranks for ties); nan without both classes."""
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    # mid-ranks: each tie group gets the mean of its 1-based positions
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    ends = np.r_[starts[1:], s.size]
    mid = (starts + ends + 1) / 2.0
    ranks = np.repeat(mid, ends - starts)
    rank_pos = ranks[y[order] == 1].sum()
    return float((rank_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auprc_1d(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision of one label (step-wise, tied scores as one threshold, as scikit-learn)."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
    tp = np.cumsum(y_sorted)[last_of_group]
    seen = last_of_group + 1
    precision = tp / seen
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_step * precision))


_FAST: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"auroc": auroc_1d, "auprc": auprc_1d}
_SKLEARN: dict[str, Callable[..., float]] = {"auroc": roc_auc_score, "auprc": average_precision_score}
METRICS = tuple(_FAST)


def _check_metric(metric: str) -> None:
    if metric not in _FAST:
        raise ValueError(f"unknown metric {metric!r}; metrics: {list(METRICS)}")


def per_label(y: np.ndarray, scores: np.ndarray, metric: str = "auroc") -> np.ndarray:
    """Per-label metric (L,) with scikit-learn; nan for labels that are not evaluable."""
    _check_metric(metric)
    y, scores = _as_2d(y, scores)
    ok = evaluable(y)
    return np.array([_SKLEARN[metric](y[:, j], scores[:, j]) if ok[j] else np.nan for j in range(y.shape[1])])


def macro(y: np.ndarray, scores: np.ndarray, metric: str = "auroc") -> float:
    """Macro average of ``metric`` over evaluable labels (scikit-learn); nan when none is evaluable."""
    values = per_label(y, scores, metric)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _macro_fast(y: np.ndarray, scores: np.ndarray, metric: str, labels: np.ndarray) -> float:
    return float(np.mean([_FAST[metric](y[:, j], scores[:, j]) for j in labels]))


def macro_fast(y: np.ndarray, scores: np.ndarray, metric: str = "auroc") -> float:
    """:func:`macro` computed with the numpy implementations (same value; for per-epoch validation)."""
    _check_metric(metric)
    y, scores = _as_2d(y, scores)
    labels = np.flatnonzero(evaluable(y))
    return _macro_fast(y, scores, metric, labels) if labels.size else float("nan")


def _score_sets(y: np.ndarray, scores: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Normalise one score array or a list of them (repeated trainings) to ``(y (N, L), [scores (N, L)])``."""
    sets = list(scores) if isinstance(scores, (list, tuple)) else [scores]
    if not sets:
        raise ValueError("no score arrays given")
    checked = [_as_2d(y, s) for s in sets]
    return checked[0][0], [s for _, s in checked]


def _stat(y: np.ndarray, sets: list[np.ndarray], metric: str, labels: np.ndarray, idx: np.ndarray | None = None) -> float:
    """Mean over score sets of the fast macro metric, on rows ``idx`` (all rows when None)."""
    if idx is None:
        return float(np.mean([_macro_fast(y, s, metric, labels) for s in sets]))
    return float(np.mean([_macro_fast(y[idx], s[idx], metric, labels) for s in sets]))


def bootstrap_indices(y: np.ndarray, n_boot: int, seed: int, max_tries: int = 1000) -> np.ndarray:
    """Row indices of ``n_boot`` resamples (n_boot, N) keeping every evaluable label two-class.

    Each resample draws N rows with replacement from a ``numpy.random.Generator(seed)`` and is redrawn
    until every label that is evaluable on the full set has at least one positive and one negative.

    Raises
    ------
    ValueError
        When a resample cannot be completed in ``max_tries`` draws (a label too rare to keep).
    """
    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    cols = np.flatnonzero(evaluable(y))
    sub = y[:, cols]
    n = y.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, n), dtype=np.int64)
    for b in range(n_boot):
        for _ in range(max_tries):
            idx = rng.integers(0, n, size=n)
            pos = sub[idx].sum(axis=0)
            if ((pos > 0) & (pos < n)).all():
                out[b] = idx
                break
        else:
            raise ValueError(
                f"bootstrap: no resample with both classes for every label after {max_tries} draws "
                f"(label positives: {dict(zip(cols.tolist(), sub.sum(axis=0).tolist()))})"
            )
    return out


def _interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    y: np.ndarray,
    scores: np.ndarray | list[np.ndarray],
    metric: str = "auroc",
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    indices: np.ndarray | None = None,
) -> dict[str, float]:
    """Macro ``metric`` with a percentile bootstrap interval.

    ``scores`` may be a list of arrays (e.g. models trained with different seeds on the same test set);
    the statistic is then the mean of their macro values, resampled together.

    Returns
    -------
    {"point": scikit-learn macro value on the full set (mean over score arrays), "low", "high": the
    ``ci`` percentile interval of the resampled values, "n_boot", "n_labels": evaluable labels averaged}
    """
    _check_metric(metric)
    y, sets = _score_sets(y, scores)
    labels = np.flatnonzero(evaluable(y))
    point = float(np.mean([macro(y, s, metric) for s in sets]))
    if labels.size == 0:
        return {"point": point, "low": float("nan"), "high": float("nan"), "n_boot": 0, "n_labels": 0}
    idx = bootstrap_indices(y, n_boot, seed) if indices is None else indices
    values = np.array([_stat(y, sets, metric, labels, i) for i in idx])
    low, high = _interval(values, ci)
    return {"point": point, "low": low, "high": high, "n_boot": len(idx), "n_labels": int(labels.size)}


def paired_bootstrap(
    y: np.ndarray,
    scores_a: np.ndarray | list[np.ndarray],
    scores_b: np.ndarray | list[np.ndarray],
    metric: str = "auroc",
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Difference A - B of a macro metric, both models scored on the same resamples.

    Each side may be a list of score arrays (repeated trainings; their mean is compared).

    Returns
    -------
    {"diff": point difference, "low", "high": percentile interval of the resampled differences,
    "p_value": two-sided bootstrap p-value (twice the smaller tail share of differences at or beyond 0),
    "n_boot"}
    """
    _check_metric(metric)
    y, sets_a = _score_sets(y, scores_a)
    _, sets_b = _score_sets(y, scores_b)
    labels = np.flatnonzero(evaluable(y))
    diff = float(np.mean([macro(y, s, metric) for s in sets_a]) - np.mean([macro(y, s, metric) for s in sets_b]))
    if labels.size == 0:
        return {"diff": diff, "low": float("nan"), "high": float("nan"), "p_value": float("nan"), "n_boot": 0}
    idx = bootstrap_indices(y, n_boot, seed)
    diffs = np.array([_stat(y, sets_a, metric, labels, i) - _stat(y, sets_b, metric, labels, i) for i in idx])
    low, high = _interval(diffs, ci)
    p_value = min(1.0, 2.0 * min(np.mean(diffs <= 0), np.mean(diffs >= 0)))
    return {"diff": diff, "low": low, "high": high, "p_value": float(p_value), "n_boot": len(idx)}


def summarize(
    y: np.ndarray, scores: np.ndarray, *, n_boot: int = 200, ci: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Macro AUROC and AUPRC with bootstrap intervals (shared resamples), flat keys.

    Returns keys ``auroc, auroc_low, auroc_high, auprc, auprc_low, auprc_high, n_labels, n``.
    """
    y, scores = _as_2d(y, scores)
    out: dict[str, float] = {"n": int(y.shape[0]), "n_labels": int(evaluable(y).sum())}
    idx = bootstrap_indices(y, n_boot, seed) if out["n_labels"] else None
    for metric in METRICS:
        res = bootstrap_ci(y, scores, metric, n_boot=n_boot, ci=ci, seed=seed, indices=idx)
        out.update({metric: res["point"], f"{metric}_low": res["low"], f"{metric}_high": res["high"]})
    return out


def per_label_table(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """One row per label: label, n_pos, n, auroc, auprc (nan where not evaluable)."""
    y, scores = _as_2d(y, scores)
    if len(labels) != y.shape[1]:
        raise ValueError(f"{len(labels)} label names for {y.shape[1]} columns")
    return pd.DataFrame(
        {
            "label": labels,
            "n_pos": y.sum(axis=0).astype(int),
            "n": y.shape[0],
            "auroc": per_label(y, scores, "auroc"),
            "auprc": per_label(y, scores, "auprc"),
        }
    )


# ----------------------------------------------------------------------------- sliding windows

#: Per-record aggregations of window probabilities (the benchmark uses max).
AGGREGATES = ("max", "mean")


def aggregate_windows(values: np.ndarray, how: str = "max") -> np.ndarray:
    """Aggregate per-window values (N, W, K) over the W windows of each record: (N, K)."""
    values = np.asarray(values)
    if values.ndim != 3 or values.shape[1] < 1:
        raise ValueError(f"expected per-window values of shape (N, W >= 1, K), got {values.shape}")
    if how == "max":
        return values.max(axis=1)
    if how == "mean":
        return values.mean(axis=1)
    raise ValueError(f"unknown window aggregation {how!r}; valid: {list(AGGREGATES)}")


def window_outputs(
    forward: Callable[[dict[str, Any]], Any],
    dataset: Any,
    window: int,
    stride: int,
    *,
    batch_size: int = 128,
    device: Any = "cpu",
    bf16: bool = True,
) -> np.ndarray:
    """``forward(batch) -> (B, K)`` on every window of every record: float32 (N, W, K).

    ``dataset`` is a whole-record :class:`ecgstudy.data.store.ECGDataset` of N records; ``window`` and
    ``stride`` are in samples (:func:`ecgstudy.data.store.window_starts`: W windows per record, each
    normalised on its own like a training crop).
    """
    from ecgstudy.data.store import WindowedDataset
    from ecgstudy.engine.train import predict

    view = WindowedDataset(dataset, window, stride)
    out, _ = predict(forward, view, batch_size=batch_size, device=device, bf16=bf16, keys=())
    return out.reshape(len(dataset), len(view.starts), -1)


def predict_windows(
    forward: Callable[[dict[str, Any]], Any],
    dataset: Any,
    window: int,
    stride: int,
    aggregate: str = "max",
    *,
    batch_size: int = 128,
    device: Any = "cpu",
    bf16: bool = True,
    keys: Iterable[str] = ("y",),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sliding-window prediction: per-record aggregated probabilities of a logit model.

    Parameters
    ----------
    forward : ``forward(batch) -> logits (B, K)`` (batches of :class:`ecgstudy.data.store.ECGDataset` items)
    dataset : whole-record :class:`ecgstudy.data.store.ECGDataset` of N records of T samples
    window, stride : window length and step between window starts, in samples (window <= T)
    aggregate : ``max`` (PTB-XL benchmark) or ``mean`` of the window probabilities sigmoid(logit)
    batch_size, device, bf16 : as :func:`ecgstudy.engine.train.predict`
    keys : per-record fields returned alongside: ``y`` (targets (N, L)) and/or ``index`` (store rows (N,))

    Returns
    -------
    (probabilities float64 (N, K), {key: (N, ...)}), records in the dataset's order.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown window aggregation {aggregate!r}; valid: {list(AGGREGATES)}")
    available = {"y": "y", "index": "rows"}
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise KeyError(f"predict_windows returns per-record fields {list(available)}, not {unknown}")
    logits = window_outputs(forward, dataset, window, stride, batch_size=batch_size, device=device, bf16=bf16)
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # (N, W, K)
    fields = {k: np.asarray(getattr(dataset, available[k])) for k in keys}
    return aggregate_windows(probs, aggregate), fields
