"""Quality checks of raw records: why a record is excluded (or a lead masked).

Checks run on the raw signal in mV, standard lead order, at its original rate (before filtering and
resampling, which would smear clipping plateaus). Reasons (``excluded.parquet`` ``reason`` column):

- ``empty_record``: no samples
- ``non_finite``: NaN or inf inside a lead that is otherwise present (a lead that is NaN throughout
  counts as missing instead)
- ``wrong_duration``: duration differs from the target by more than ``duration_tolerance_s`` (with
  ``longer_ok``, as under the ``windows`` length policy: only shorter by more than that)
- ``flat_lead``: a lead's standard deviation below ``flat_std_mv`` (lead off)
- ``saturated_lead``: a lead sits at its extreme value for ``saturation_run_s`` or longer (clipping)
- ``implausible_amplitude``: a lead deviates from its median by more than ``max_amplitude_mv``
- ``missing_leads``: fewer than ``min_leads`` leads present (after masking bad leads, if so configured)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ecgstudy.data.preprocess import STANDARD_LEADS

#: QC reasons that concern single leads (these may be masked instead of excluding the record).
LEAD_REASONS: tuple[str, ...] = ("flat_lead", "saturated_lead", "implausible_amplitude")


@dataclass(frozen=True)
class QCConfig:
    """Quality-check thresholds (params.yaml ``curate.qc``)."""

    flat_std_mv: float = 0.01  # lead std below 10 uV = lead off (a real lead's QRS alone gives >0.1 mV)
    saturation_run_s: float = 0.1  # 100 ms stuck at the extreme = clipping (sharpest real plateaus ~15 ms)
    saturation_tolerance_mv: float = 0.0005  # "at the extreme" = within half a PTB-XL ADC step (1 uV): exact repeats
    max_amplitude_mv: float = 20.0  # deviation from the lead median; QRS rarely exceeds 5 mV, 20 = artefact
    duration_tolerance_s: float | None = 1.0  # null: accept any length (the length policy crops/pads)
    min_leads: int = 12  # leads that must be present; lower it for reduced-lead sources
    bad_lead_policy: Literal["exclude", "mask"] = "exclude"  # mask: set bad leads NaN, keep the record (flagged)

    def validate(self) -> None:
        if not 1 <= self.min_leads <= len(STANDARD_LEADS):
            raise ValueError(f"qc.min_leads must be in 1..12, got {self.min_leads}")
        for name in ("flat_std_mv", "saturation_run_s", "max_amplitude_mv"):
            if getattr(self, name) <= 0:
                raise ValueError(f"qc.{name} must be positive")


@dataclass
class QCResult:
    """Outcome of :func:`check`.

    ``reason``/``detail`` are set when the record is excluded; ``flags`` lists (reason, detail) of
    problems handled by masking leads (the record is kept); ``mask`` is the final lead mask (12,).
    """

    mask: np.ndarray
    reason: str | None = None
    detail: str = ""
    flags: list[tuple[str, str]] = field(default_factory=list)

    @property
    def excluded(self) -> bool:
        return self.reason is not None


def _longest_run(flags: np.ndarray) -> int:
    """Longest run of True in a 1-D bool array."""
    if not flags.any():
        return 0
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def saturated_leads(
    data: np.ndarray, fs: float, run_s: float, tolerance_mv: float, median: np.ndarray | None = None
) -> np.ndarray:
    """Bool (n_leads,): leads stuck at their maximum or minimum for ``run_s`` seconds or longer.

    Only an extreme at least a quarter of the range away from the lead's median counts (a flat baseline
    that happens to be the minimum of a lead with only positive waves is not clipping). ``median``
    (n_leads,) may be passed when already computed.
    """
    run = max(2, int(round(run_s * fs)))
    out = np.zeros(data.shape[0], bool)
    lo, hi = np.min(data, axis=1), np.max(data, axis=1)
    med = np.median(data, axis=1) if median is None else median
    quarter = 0.25 * (hi - lo)
    for extreme in (hi, lo):
        candidates = (np.abs(extreme - med) >= quarter) & (quarter > 0.5 * tolerance_mv)
        if not candidates.any():
            continue
        near = np.abs(data[candidates] - extreme[candidates, None]) <= tolerance_mv  # (n_candidates, n)
        for j, row in zip(np.flatnonzero(candidates), near):
            if row.sum() >= run and _longest_run(row) >= run:
                out[j] = True
    return out


def check(data: np.ndarray, mask: np.ndarray, fs: float, target_duration_s: float, cfg: QCConfig, *,
          longer_ok: bool = False) -> QCResult:
    """Quality-check one raw record.

    Parameters
    ----------
    data : array of shape (12, n_samples) at ``fs`` Hz, mV, standard lead order (missing leads NaN)
    mask : bool (12,), leads present
    target_duration_s : the store's record duration
    longer_ok : records longer than the target pass the duration check (they are windowed, not cropped)
    """
    mask = np.asarray(mask, bool).copy()
    n = data.shape[1]
    if n == 0 or not mask.any():
        return QCResult(mask, "empty_record", f"{n} samples, {int(mask.sum())} leads present")
    present = data[mask]
    if not np.isfinite(present).all():
        bad = [STANDARD_LEADS[j] for j in np.flatnonzero(mask) if not np.isfinite(data[j]).all()]
        return QCResult(mask, "non_finite", f"NaN/inf samples in lead(s) {', '.join(bad)}")
    duration = n / fs
    excess = target_duration_s - duration if longer_ok else abs(duration - target_duration_s)
    if cfg.duration_tolerance_s is not None and excess > cfg.duration_tolerance_s:
        return QCResult(mask, "wrong_duration", f"{duration:.3f} s, expected {target_duration_s} s")
    median = np.median(present, axis=1)
    problems: dict[str, np.ndarray] = {
        reason: np.zeros(len(mask), bool) for reason in ("flat_lead", "implausible_amplitude", "saturated_lead")
    }
    problems["flat_lead"][mask] = np.std(present, axis=1) < cfg.flat_std_mv
    problems["implausible_amplitude"][mask] = np.abs(present - median[:, None]).max(axis=1) > cfg.max_amplitude_mv
    problems["saturated_lead"][mask] = saturated_leads(
        present, fs, cfg.saturation_run_s, cfg.saturation_tolerance_mv, median
    )
    result = QCResult(mask)
    for reason in LEAD_REASONS:
        bad = problems[reason] & mask
        if not bad.any():
            continue
        detail = f"lead(s) {', '.join(STANDARD_LEADS[j] for j in np.flatnonzero(bad))}"
        if cfg.bad_lead_policy == "exclude":
            return QCResult(mask, reason, detail)
        result.flags.append((reason, detail + " masked"))
        result.mask &= ~bad
    if result.mask.sum() < cfg.min_leads:
        missing = [STANDARD_LEADS[j] for j in np.flatnonzero(~result.mask)]
        result.reason = "missing_leads"
        result.detail = f"{int(result.mask.sum())} lead(s) present, need {cfg.min_leads}; missing {', '.join(missing)}"
    return result
