"""Borderline negatives: records whose physiology lies just below a diagnostic criterion.

Without them every negative of a threshold criterion is far from it, and a classifier can learn "long
PR" instead of "PR > 200 ms". Each is a catalogue code of kind ``borderline`` (drawn in the main cohort
and in the rare sets' controls by :func:`ecgstudy.simulate.conditions.sample_conditions`); it changes the
physiology but is not a condition: the record carries no code for it (the truth drops it,
:func:`ecgstudy.simulate.conditions.complete_truth`), and ground_truth.parquet lists it in its
``borderline`` column. Readers may still over-call it (:mod:`ecgstudy.simulate.annotate`).

- ``BL_1AVB``: PR 190 -> 199 ms (severity 0 -> 1); 1AVB needs PR > 200 ms (Mason et al. 2007).
- ``BL_QRS``: QRS 110 -> 119 ms with a normal activation sequence; complete BBB needs >= 120 ms (Surawicz
  et al. 2009), as does IVCD in the Minnesota code.
- ``BL_LNGQT``: QTc 15 -> 3 ms below 450 ms (men) / 460 ms (women), the long-QT limits (Rautaharju 2009).
- ``BL_LVH``: Sokolow-Lyon voltage 3.0 -> 3.4 mV; LVH needs SV1 + RV5/6 >= 3.5 mV (Sokolow & Lyon 1949).
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.effects import qrs_leads
from ecgstudy.simulate.physiology import Physiology, fit_span
from ecgstudy.simulate.waves import PART_QRS, PART_ST, PART_T

SOKOLOW_RANGE_MV = (3.0, 3.4)  # BL_LVH target, below the 3.5 mV criterion (beat-to-beat variation is +-4 %)


def sokolow_lyon_mv(phys: Physiology) -> float:
    """SV1 + max(RV5, RV6) of the template QRS on this recording's leads, mV."""
    leads = qrs_leads(phys)
    return float(-leads[6].min() + max(leads[10].max(), leads[11].max()))


def near_1avb(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """PR 190-199 ms: long-normal, below the 200 ms of first-degree AV block."""
    phys.pr_s = 0.190 + 0.009 * sev


def near_bbb(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """QRS 110-119 ms with the patient's own (normal) activation sequence: below the 120 ms of a complete
    bundle branch block, without its morphology."""
    phys.qrs = fit_span(phys.qrs, PART_QRS, 0.0, 0.110 + 0.009 * sev)


def near_lngqt(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """QTc 15 to 3 ms below the long-QT limit (450 ms men, 460 ms women): T moved and stretched as in
    :func:`ecgstudy.simulate.effects.lngqt`, in either direction."""
    limit = 0.46 if phys.notes.get("female") else 0.45
    target = limit - 0.015 + 0.012 * sev
    sel = phys.t.part == PART_T
    lobes = sel & ~phys.t.plateau
    if not lobes.any():
        return
    stretch = 1.0 + 0.6 * (target - phys.qtc_s) / phys.qtc_s
    phys.t.sl[lobes] *= stretch
    phys.t.sr[lobes] *= stretch
    _, t_off = phys.t.onset_offset(PART_T)
    shift = target - t_off
    phys.t.t[lobes] += shift
    plateaus = (phys.t.part == PART_ST) & phys.t.plateau
    phys.t.width[plateaus] = np.maximum(phys.t.width[plateaus] + shift, 0.0)
    phys.qtc_s = target


def near_lvh(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """QRS scaled until the Sokolow-Lyon voltage is 3.0-3.4 mV (no hypertrophy, no strain, no atrial
    change): the tall-voltage normal that readers over-call as LVH."""
    current = sokolow_lyon_mv(phys)
    if current <= 0:
        return
    lo, hi = SOKOLOW_RANGE_MV
    factor = (lo + (hi - lo) * sev) / current
    phys.qrs.amp[phys.qrs.part == PART_QRS] *= factor
    phys.notes["qrs_amp"] = float(phys.notes.get("qrs_amp", 1.0)) * factor
