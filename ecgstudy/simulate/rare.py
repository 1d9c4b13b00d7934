"""The ECG patterns of the rare diagnoses outside the PTB-XL vocabulary, for the rare-disease experiments.

A rare set's label is the clinical diagnosis (catalogue kind ``diagnosis``: ``BRUGADA``, ``HYPERK``,
``ARVC`` here, and the clinical diagnoses of :mod:`ecgstudy.simulate.clinical`); whether one ECG of the
patient shows a pattern is drawn separately (:func:`ecgstudy.simulate.clinical.draw_expression`), and the
patterns are these effects (catalogue kind ``expression``):

- ``BRUGADA_TYPE1``: coved ST elevation >= 0.2 mV at the J point in V1-V2 descending into a negative T
  wave (HRS/EHRA/APHRS 2013 consensus, Priori et al.; J-wave syndromes consensus, Antzelevitch et al.
  2016); ``BRUGADA_TYPE2``: the saddle-back pattern (J-point elevation, ST elevation >= 0.05 mV, positive
  T), not diagnostic. Local to the right-ventricular outflow tract, so non-dipolar potentials on V1-V2
  (V3 slightly).
- ``HYPERK_ECG``: the hyperkalaemic ECG, from tall narrow peaked T waves (mild), to P flattening and PR
  prolongation (moderate), to QRS widening (severe) (Mattu et al. 2000; Levis 2013).
- ``ARVC_TWI``: T inversion in V1-V3; ``ARVC_EPSILON``: epsilon waves (small high-frequency potentials
  just after the QRS in V1-V3) and a prolonged terminal activation; 2010 Task Force criteria (Marcus et
  al.). Epsilon waves are a few tens of microvolts at about 100 Hz: a 500 Hz diagnostic-bandwidth record
  keeps them, the 100 Hz copy and a 40 Hz low-pass device do not.

These diagnoses' statements are appended to the rare sets' ``scp_statements.csv`` (see
:data:`RARE_STATEMENTS`).
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.physiology import Physiology, fit_span
from ecgstudy.simulate.waves import EXTENT, PART_P, PART_QRS, PART_SPIKE, PART_ST, PART_T, Waves

#: Rows appended to scp_statements.csv for the rare sets: code -> description (clinical diagnoses).
RARE_STATEMENTS: dict[str, str] = {
    "BRUGADA": "Brugada syndrome (clinical diagnosis; type 1 pattern intermittent)",
    "HYPERK": "hyperkalaemia (laboratory diagnosis; ECG changes in about half)",
    "ARVC": "arrhythmogenic right ventricular cardiomyopathy (Task Force diagnosis)",
    "CARCINOID": "carcinoid heart disease (echocardiographic diagnosis)",
    "CONSTRICT": "constrictive pericarditis (haemodynamic/imaging diagnosis)",
    "RHEUMMS": "rheumatic mitral stenosis, mitral valve doming (echocardiographic diagnosis)",
}
EPSILON_SPIKES = 3  # alternating deflections of an epsilon wave
EPSILON_SIGMA_S = 0.0012  # their width (sigma): most of their energy lies at 60-150 Hz


def _t_peak(phys: Physiology) -> float:
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    return float(np.max(phys.t.t[sel])) if sel.any() else phys.qtc_s - 0.09


def brugada(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Type-1 pattern: coved J-point/ST elevation (0.2-0.45 mV) in V1-V2 into an inverted T wave."""
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


def brugada_saddleback(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Type-2 (saddle-back) pattern in V1-V2: J-point elevation 0.2-0.3 mV (r'), ST elevation 0.05-0.1 mV
    merging into a positive T wave (not diagnostic on its own; Antzelevitch et al. 2016)."""
    j = phys.qrs_duration_s()
    weights = np.array([rng.uniform(0.6, 1.0), 1.0, rng.uniform(0.0, 0.3), 0.0, 0.0, 0.0])
    r_prime = Waves.lobes([j - 0.006], 0.006, 0.01, None, PART_ST, local=((0.2 + 0.1 * sev) * weights)[None])
    st = Waves.plateau_(j, _t_peak(phys), 0.01, 0.03, None, PART_ST, local=(0.05 + 0.05 * sev) * weights)
    phys.t = Waves.concat([phys.t, r_prime, st])


def _arvc_weights(rng: np.random.Generator) -> np.ndarray:
    return np.array([1.0, 1.0, rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.3), 0.0, 0.0])


def arvc_repolarisation(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """T inversion in V1-V3 (0.2-0.45 mV, local right-ventricular potentials; Marcus et al. 2010)."""
    w = _arvc_weights(rng)
    t_neg = Waves.lobes([_t_peak(phys)], 0.05, 0.04, None, PART_T, local=(-(0.2 + 0.25 * sev) * w)[None])
    phys.t = Waves.concat([phys.t, t_neg])


def arvc_depolarisation(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Prolonged terminal activation and an epsilon wave in V1-V3 (Marcus et al. 2010).

    The epsilon wave is :data:`EPSILON_SPIKES` alternating deflections of 0.04-0.1 mV, each
    :data:`EPSILON_SIGMA_S` wide, 5 ms apart, starting 6-16 ms after the J point: content around
    100 Hz that a 100 Hz sampling rate or a 40 Hz low-pass removes.
    """
    j = phys.qrs_duration_s()
    w = _arvc_weights(rng)
    tad = Waves.lobes([j - 0.012], 0.01, 0.016 + 0.012 * sev, None, PART_QRS, local=(-(0.15 + 0.25 * sev) * w)[None])
    start = j + 0.006 + 0.01 * sev
    times = start + 0.005 * np.arange(EPSILON_SPIKES)
    signs = (-1.0) ** np.arange(EPSILON_SPIKES)
    size = 0.04 + 0.06 * sev
    # PART_SPIKE: tied to the QRS (not moved with the QT at other heart rates), outside the QRS duration
    epsilon = Waves.lobes(times, EPSILON_SIGMA_S, EPSILON_SIGMA_S, None, PART_SPIKE,
                          local=(size * signs[:, None] * w[None]))
    phys.qrs = Waves.concat([phys.qrs, tad, epsilon])
