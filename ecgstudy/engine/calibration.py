"""Calibration of predicted probabilities: reliability tables and the expected calibration error (ECE).

Conventions: ``y`` is 0/1 of shape (N,) or (N, L), ``p`` probabilities in [0, 1] of the same shape.
Bins are equal-width on [0, 1] (``n_bins``, default 10; the last bin includes 1.0). The ECE is the
record-weighted mean absolute gap between the mean predicted probability and the observed positive
fraction of each bin (Naeini et al., AAAI 2015; Guo et al., ICML 2017), so 0 is perfect calibration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Equal-width probability bins of the reliability diagram and the ECE.
N_BINS = 10


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = np.asarray(p, dtype=np.float64)
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1]")
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> pd.DataFrame:
    """Reliability diagram of one label: targets (N,) 0/1 and probabilities (N,).

    Returns one row per bin: ``bin_low``, ``bin_high``, ``n`` (records in the bin), ``mean_predicted``,
    ``observed`` (positive fraction; NaN for an empty bin).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"targets {y.shape} and probabilities {p.shape} differ in shape")
    idx = _bins(p, n_bins)
    n = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / n
        observed = np.bincount(idx, weights=y, minlength=n_bins) / n
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "n": n,
                         "mean_predicted": mean_p, "observed": observed})


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of one label (targets (N,), probabilities (N,)); NaN without records."""
    table = reliability(y, p, n_bins)
    if table["n"].sum() == 0:
        return float("nan")
    used = table[table["n"] > 0]
    return float((used["n"] * (used["mean_predicted"] - used["observed"]).abs()).sum() / used["n"].sum())


def reliability_table(y: np.ndarray, p: np.ndarray, labels: list[str], n_bins: int = N_BINS) -> pd.DataFrame:
    """Reliability rows of every label of targets (N, L) and probabilities (N, L): ``label`` + :func:`reliability`."""
    y, p = np.asarray(y), np.asarray(p)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"targets {y.shape}, probabilities {p.shape} and {len(labels)} labels do not match")
    return pd.concat([reliability(y[:, j], p[:, j], n_bins).assign(label=name) for j, name in enumerate(labels)],
                     ignore_index=True)[["label", "bin_low", "bin_high", "n", "mean_predicted", "observed"]]
