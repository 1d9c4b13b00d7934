"""Macro metrics of repeatedly trained models ("arms") on one evaluation set, and paired differences.

An *arm* is one model configuration trained R times (repeat k: seed k and label draw k); its scores on
an evaluation set of N records are R arrays (N, L). A :class:`Resampler` holds what every arm of that set
shares: the fixed label set (column indices), B cluster-bootstrap resamples of the patients
(:func:`ecgstudy.engine.resample.patient_weights`) and, per R, B draws of R repeat indices with
replacement (:func:`ecgstudy.engine.resample.repeat_counts`). The statistic of an arm in resample b is
the mean over the drawn repeats of the macro metric on the drawn patients; a paired difference A - B uses
the same patients and the same repeat indices for both arms (arms are paired by repeat index).

Point estimates are on the full set: the mean over repeats of the macro metric, with the spread over
repeats (mean, sd, min, max). Macro averages run over the fixed label set only; a label without both
classes in a resample is left out of that resample (counted in :attr:`Resampler.skipped_draws`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgstudy.engine import multiplicity, resample


@dataclass
class Arm:
    """Macro metrics of one arm: ``boot[metric]`` (R, B) per repeat and resample, ``full[metric]`` (R,)
    per repeat on the full set, ``per_label[metric]`` (R, L_set) per repeat and label on the full set."""

    boot: dict[str, np.ndarray]
    full: dict[str, np.ndarray]
    per_label: dict[str, np.ndarray]

    @property
    def repeats(self) -> int:
        return len(next(iter(self.full.values())))


class Resampler:
    """Shared resamples of one evaluation set: targets ``y`` (N, L), ``patients`` (N,), fixed ``labels``.

    Parameters
    ----------
    y, patients : the evaluation set's targets (N, L) and patient ids (N,)
    labels : column indices of the fixed label set
    n_boot : resamples B
    seed : :class:`numpy.random.SeedSequence` of this set (e.g. :func:`resample.seed_for(seed, family, group)`)
    """

    def __init__(self, y: np.ndarray, patients: np.ndarray, labels: np.ndarray, n_boot: int,
                 seed: np.random.SeedSequence):
        self.y = np.asarray(y)
        if len(patients) != len(self.y):
            raise ValueError(f"{len(patients)} patient ids for {len(self.y)} records")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_boot = n_boot
        patient_seed, self._repeat_seed = seed.spawn(2)
        self.w = resample.patient_weights(patients, n_boot, patient_seed)
        self.skips = resample.skipped(self.y, self.w, self.labels)  # (B, L_set)
        self.n_patients = len(np.unique(np.asarray(patients).astype(str)))
        self._repeats: dict[int, np.ndarray] = {}

    @property
    def skipped_draws(self) -> int:
        """(resample, label) pairs left out because the label lacked a class in that resample."""
        return int(self.skips.sum())

    def repeat_counts(self, n_repeats: int) -> np.ndarray:
        """(B, R) repeat multiplicities, the same for every arm with R repeats (pairing by repeat index)."""
        if n_repeats not in self._repeats:
            seed = np.random.SeedSequence(self._repeat_seed.entropy, spawn_key=(*self._repeat_seed.spawn_key, n_repeats))
            self._repeats[n_repeats] = resample.repeat_counts(n_repeats, self.n_boot, seed)
        return self._repeats[n_repeats]

    def arm(self, score_sets: list[np.ndarray]) -> Arm:
        """Resampled and full-set macro metrics of the R score arrays (N, L) of one arm."""
        if not score_sets:
            raise ValueError("an arm needs at least one repeat")
        boot = {m: np.empty((len(score_sets), self.n_boot)) for m in resample.METRICS}
        full = {m: np.empty(len(score_sets)) for m in resample.METRICS}
        per_label = {m: np.empty((len(score_sets), len(self.labels))) for m in resample.METRICS}
        for r, scores in enumerate(score_sets):
            res = resample.resampled_labels(self.y, scores, self.w, self.labels)
            for m in resample.METRICS:
                boot[m][r], full[m][r], per_label[m][r] = res.macro(m), res.macro_full(m), res.full[m]
        return Arm(boot, full, per_label)

    def statistic(self, arm: Arm, metric: str) -> np.ndarray:
        """(B,) mean over the drawn repeats of the arm's macro ``metric`` on each resample."""
        counts = self.repeat_counts(arm.repeats)  # (B, R)
        return (counts * arm.boot[metric].T).sum(axis=1) / arm.repeats

    def summary(self, arm: Arm, metric: str, level: float) -> dict[str, float]:
        """Point (mean over repeats, full set), percentile interval, and the spread over repeats."""
        low, high = multiplicity.percentile_interval(self.statistic(arm, metric), level)
        full = arm.full[metric]
        return {metric: float(np.mean(full)), f"{metric}_low": low, f"{metric}_high": high,
                **_spread(full, metric)}

    def difference(self, a: Arm, b: Arm, metric: str) -> tuple[dict[str, float], np.ndarray]:
        """A - B paired by patient draw and repeat index: (point, p-value, spread over repeats; (B,) diffs)."""
        if a.repeats != b.repeats:
            raise ValueError(f"paired arms need the same number of repeats, got {a.repeats} and {b.repeats}")
        diffs = self.statistic(a, metric) - self.statistic(b, metric)
        per_repeat = a.full[metric] - b.full[metric]
        row = {"diff": float(np.mean(per_repeat)), "p_value": multiplicity.bootstrap_p(diffs),
               "n_boot_valid": int(np.isfinite(diffs).sum()), **_spread(per_repeat, "diff")}
        return row, diffs


def _spread(values: np.ndarray, name: str) -> dict[str, float]:
    """Spread over repeats: ``<name>_sd_repeats`` (nan for one repeat), ``_min_repeats``, ``_max_repeats``."""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return {f"{name}_sd_repeats": sd, f"{name}_min_repeats": float(np.min(values)),
            f"{name}_max_repeats": float(np.max(values))}


def adjust_family(rows: list[dict], diffs: list[np.ndarray], alpha: float) -> None:
    """Holm over one family, in place: each row gains ``p_holm``, ``level`` (the adjusted interval's
    level), ``low`` / ``high`` (the adjusted interval) and ``low_unadj`` / ``high_unadj`` (at 1 - alpha)."""
    p_adj, levels = multiplicity.holm(np.array([r["p_value"] for r in rows], dtype=float), alpha)
    for row, d, p, level in zip(rows, diffs, p_adj, levels):
        row["low_unadj"], row["high_unadj"] = multiplicity.percentile_interval(d, 1.0 - alpha)
        row["p_holm"], row["level"] = float(p), float(level)
        row["low"], row["high"] = (multiplicity.percentile_interval(d, level) if np.isfinite(level)
                                   else (float("nan"), float("nan")))
        row["family_size"] = int(np.isfinite(p_adj).sum())
