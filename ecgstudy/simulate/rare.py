"""Rare conditions outside the PTB-XL vocabulary, for the rare-disease transfer experiments.

Each has a subtle, documented ECG signature (sources in SOURCES.md) and a severity continuum whose
mild end is hard to see:

- ``BRUGADA``: Brugada type-1 pattern, coved ST elevation >= 0.2 mV at the J point in V1-V2 descending
  into a negative T wave (HRS/EHRA/APHRS 2013 consensus, Priori et al.; J-wave syndromes consensus,
  Antzelevitch et al. 2016). Local to the right-ventricular outflow tract, so modelled as non-dipolar
  potentials on V1-V2 (V3 slightly).
- ``HYPERK``: hyperkalaemia, progressing with the potassium level from tall narrow peaked T waves (mild),
  to P flattening and PR prolongation (moderate), to QRS widening (severe) (Mattu et al. 2000;
  Levis 2013).
- ``ARVC``: arrhythmogenic right ventricular cardiomyopathy, 2010 Task Force criteria (Marcus et al.):
  T inversion in V1-V3, epsilon waves after the QRS in V1-V3, and a prolonged terminal activation
  (>= 55 ms) in V1-V3; local to the right ventricle, so non-dipolar on V1-V3.

These statements are appended to the rare sets' ``scp_statements.csv`` (see :data:`RARE_STATEMENTS`).
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.physiology import Physiology, fit_span
from ecgstudy.simulate.waves import EXTENT, PART_P, PART_QRS, PART_ST, PART_T, Waves

#: Rows appended to scp_statements.csv for the rare sets: code -> description.
RARE_STATEMENTS: dict[str, str] = {
    "BRUGADA": "Brugada type 1 pattern (coved ST elevation in V1-V2)",
    "HYPERK": "hyperkalaemia (peaked T waves, flattened P, wide QRS)",
    "ARVC": "arrhythmogenic right ventricular cardiomyopathy (T inversion, epsilon wave V1-V3)",
}


def _t_peak(phys: Physiology) -> float:
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    return float(np.max(phys.t.t[sel])) if sel.any() else phys.qtc_s - 0.09


def brugada(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Coved J-point/ST elevation (0.2-0.45 mV) in V1-V2 into an inverted T wave."""
    j = phys.qrs_duration_s()
    weights = np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.0, 0.3), 0.0, 0.0, 0.0])
    height = 0.2 + 0.25 * sev + rng.uniform(0.0, 0.03)
    dome = Waves.lobes([j - 0.004], 0.006, 0.05 + 0.03 * sev, None, PART_ST, local=(height * weights)[None])
    t_neg = Waves.lobes([_t_peak(phys) - 0.01], 0.045, 0.035, None, PART_T, local=(-(0.15 + 0.2 * sev) * weights)[None])
    phys.t = Waves.concat([phys.t, dome, t_neg])


def hyperk(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Peaked narrow T (all severities), P flattening and PR prolongation (moderate), QRS widening (severe)."""
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    for k in np.flatnonzero(sel):
        end = phys.t.t[k] + EXTENT * phys.t.sr[k]
        width = min(phys.t.sl[k], phys.t.sr[k]) * (0.75 - 0.3 * sev)
        phys.t.sl[k] = phys.t.sr[k] = width
        phys.t.t[k] = end - EXTENT * width - 0.02
        phys.t.amp[k] *= 1.5 + 1.5 * sev
    moderate = float(np.clip((sev - 0.3) / 0.7, 0.0, 1.0))
    if len(phys.p):
        phys.p.amp[phys.p.part == PART_P] *= 1.0 - 0.75 * moderate
        on, off = phys.p.onset_offset(PART_P)
        phys.p = fit_span(phys.p, PART_P, on, on + (off - on) * (1.0 + 0.3 * moderate))
    phys.pr_s += 0.05 * moderate
    severe = float(np.clip((sev - 0.55) / 0.45, 0.0, 1.0))
    if severe > 0:
        dur = phys.qrs_duration_s()
        phys.qrs = fit_span(phys.qrs, PART_QRS, 0.0, dur * (1.0 + 0.35 * severe))


def arvc(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """T inversion V1-V3, epsilon wave and prolonged terminal activation in V1-V3 (local RV potentials)."""
    j = phys.qrs_duration_s()
    w = np.array([1.0, 1.0, rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.3), 0.0, 0.0])
    tad = Waves.lobes([j - 0.012], 0.01, 0.016 + 0.012 * sev, None, PART_QRS, local=(-(0.15 + 0.25 * sev) * w)[None])
    eps_t = j + 0.012 + 0.012 * sev
    epsilon = Waves.lobes([eps_t], 0.004, 0.004, None, PART_ST, local=((0.04 + 0.08 * sev) * w)[None])
    t_neg = Waves.lobes([_t_peak(phys)], 0.05, 0.04, None, PART_T, local=(-(0.2 + 0.25 * sev) * w)[None])
    phys.qrs = Waves.concat([phys.qrs, tad])
    phys.t = Waves.concat([phys.t, epsilon, t_neg])
