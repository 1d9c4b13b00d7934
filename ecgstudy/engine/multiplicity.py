"""Percentile intervals, bootstrap p-values and Holm's step-down over a family of comparisons.

Conventions (so that an interval and a p-value never disagree):

- the percentile interval at level 1 - a of B resampled values is the pair of symmetric order statistics
  (the ceil(B a / 2)-th smallest and largest values); it excludes 0 exactly when the two-sided
  bootstrap p-value, 2 x min(share of values <= 0, share >= 0), is below a;
- Holm (1979) over a family of m comparisons sorts the p-values, p_(1) <= ... <= p_(m), and rejects
  while p_(j) < alpha / (m - j + 1). The *adjusted p-value* is max_{i <= j} min(1, (m - i + 1) p_(i)).
  The *adjusted interval* of a comparison is its percentile interval at level 1 - alpha / (m - j + 1)
  for the comparisons rejected (j before the first acceptance j*) and 1 - alpha / (m - j* + 1) for the
  others; so an adjusted interval excludes 0 exactly when Holm rejects (adjusted p < alpha).
"""

from __future__ import annotations

import math

import numpy as np


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Symmetric order-statistic interval at ``level`` of the finite ``values``; (nan, nan) when none."""
    values = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    if values.size == 0:
        return float("nan"), float("nan")
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    k = max(1, math.ceil(values.size * (1.0 - level) / 2.0 - 1e-12))  # 1-based rank from each end
    k = min(k, values.size)
    return float(values[k - 1]), float(values[values.size - k])


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of resampled differences (B,): 2 x the smaller share at or beyond 0."""
    diffs = np.asarray(diffs, dtype=np.float64)
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return float("nan")
    return float(min(1.0, 2.0 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))


def holm(p_values: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down over one family: (adjusted p-values (m,), interval levels (m,)).

    NaN p-values (comparisons that could not be computed) are not part of the family: they get nan.
    See the module docstring for the interval levels.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    levels = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return adjusted, levels
    order = ok[np.argsort(p[ok], kind="mergesort")]
    running = 0.0
    stop = None  # 0-based rank of the first comparison Holm accepts
    for j, idx in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[idx]))
        adjusted[idx] = running
        if stop is None and not p[idx] < alpha / (m - j):
            stop = j
        levels[idx] = 1.0 - alpha / (m - (j if stop is None else stop))
    return adjusted, levels
