"""ECG effects of the PTB-XL statements that the clinical rare diagnoses express: atrial abnormality and
non-specific T-wave change.

- ``LAO/LAE`` (left atrial abnormality, "P mitrale"): P duration >= 120 ms with two humps, and a deep,
  broad terminal negative P in V1 (the left atrium's posterior forces) (AHA/ACCF/HRS 2009 Part V,
  Hancock et al.);
- ``RAO/RAE`` (right atrial abnormality, "P pulmonale"): P amplitude >= 0.25 mV in lead II with a normal
  duration (same source);
- ``NT_`` (non-specific T-wave change): T flattening (mild) to shallow inversion (severe), without the ST
  depression of ischaemia (AHA/ACCF/HRS 2009 Part IV, Rautaharju et al.).

Each effect takes the recording's physiology after orientation (body frame), a severity in [0, 1] and a
generator, like :mod:`ecgstudy.simulate.effects`.
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.effects import template_leads
from ecgstudy.simulate.leads import DOWER, twelve_lead_matrix
from ecgstudy.simulate.physiology import Physiology, fit_span
from ecgstudy.simulate.waves import PART_P, PART_T

P_MITRALE_MS = 120.0  # P duration criterion of left atrial abnormality
P_PULMONALE_MV = 0.25  # P amplitude criterion of right atrial abnormality in lead II
_P_FS = 1000.0  # rendering rate of the template P, Hz


def p_leads(phys: Physiology) -> np.ndarray:
    """The template P wave in the 12 leads, shape (12, n) at 1000 Hz, mV."""
    return template_leads(phys, phys.p, PART_P, fs=_P_FS)


def _atrial_lobes(phys: Physiology) -> tuple[int, int]:
    """Indices of the earliest (right atrial) and latest (left atrial) P lobes."""
    sel = np.flatnonzero(phys.p.part == PART_P)
    order = sel[np.argsort(phys.p.t[sel])]
    return int(order[0]), int(order[-1])


def left_atrial(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """P mitrale: P widened to 120-150 ms (the two atrial humps drift apart), the left atrial lobe larger
    and turned posterior (terminal negative P in V1 of 0.1 mV or more); PR kept >= P + 30 ms."""
    if not len(phys.p) or not (phys.p.part == PART_P).any():
        return
    ra, la = _atrial_lobes(phys)
    vec = phys.p.amp[la, :3] * (1.3 + 0.5 * sev)
    vec[2] = max(vec[2], 0.0) + 0.06 + 0.06 * sev + rng.uniform(0.0, 0.01)  # +Z is posterior: negative in V1
    phys.p.amp[la, :3] = vec
    on, _ = phys.p.onset_offset(PART_P)
    duration = (P_MITRALE_MS + 2.0 + 30.0 * sev) / 1000.0
    phys.p = fit_span(phys.p, PART_P, on, on + duration)
    phys.pr_s = max(phys.pr_s, duration + 0.03)


def right_atrial(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """P pulmonale: the right atrial lobe scaled until the P wave in lead II peaks at 0.26-0.36 mV."""
    if not len(phys.p) or not (phys.p.part == PART_P).any():
        return
    ra, _ = _atrial_lobes(phys)
    target = P_PULMONALE_MV + 0.01 + 0.1 * sev
    for _ in range(4):  # the other lobe overlaps a little: iterate to the target
        peak = float(p_leads(phys)[1].max())
        if peak <= 0:
            break
        lobe_peak = float(twelve_lead_matrix(DOWER if phys.dower is None else phys.dower)[1] @ phys.p.amp[ra, :3])
        if lobe_peak <= 0:
            break
        phys.p.amp[ra] *= 1.0 + (target - peak) / lobe_peak
        if abs(p_leads(phys)[1].max() - target) < 0.005:
            break


def t_wave_change(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Non-specific T-wave change: the T wave scaled by 0.35 (flat) down to -0.4 (shallow inversion)."""
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    phys.t.amp[sel] *= 0.35 - 0.75 * sev
