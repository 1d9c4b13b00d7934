"""Rate and rhythm effects of the conditions (the ``rhythm`` stage; see :mod:`ecgstudy.simulate.effects`).

Sinus brady-/tachycardia, atrial fibrillation and flutter, first-degree AV block, premature ventricular
and atrial complexes, and pacing (with its wide paced QRS and the pacing spikes). Each effect takes the
recording's physiology, a severity in [0, 1] and a random generator and changes the physiology in place;
criteria and sources are in SOURCES.md.
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.effects import qrs_amp
from ecgstudy.simulate.physiology import Physiology, fit_span, truncated_normal
from ecgstudy.simulate.waves import EXTENT, PART_P, PART_QRS, PART_SPIKE, PART_ST, PART_T, Waves, unit


def sbrad(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Sinus bradycardia: sinus rate below 60 /min (59 borderline .. 40)."""
    phys.hr_bpm = 59.5 - 19.5 * sev + rng.uniform(-0.4, 0.0)


def stach(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Sinus tachycardia: sinus rate above 100 /min (101 borderline .. 150)."""
    phys.hr_bpm = 100.6 + 50.0 * sev + rng.uniform(0.0, 0.4)
    phys.rsa *= 0.5  # vagal withdrawal: less respiratory sinus arrhythmia at high rates


def afib(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Atrial fibrillation: no P waves, f-waves (fine .. coarse), irregularly irregular ventricular RR."""
    phys.rhythm = "afib"
    phys.hr_bpm = truncated_normal(rng, 78.0 + 30.0 * sev, 14.0, 48.0, 160.0)
    phys.atrial = {
        "kind": "f",
        "amp_mv": 0.025 + 0.13 * sev + rng.uniform(0.0, 0.02),  # fine (<0.05 mV) .. coarse (>0.1 mV)
        "f_hz": rng.uniform(4.5, 8.0),  # 270-480 /min
        "rr_cv": 0.12 + 0.14 * sev + rng.uniform(0.0, 0.04),
        "direction": unit([-0.25, 0.5, -0.8]),  # best seen in V1 and the inferior leads
        "v1_local": rng.uniform(0.3, 0.8),  # extra near-field share in V1 (right atrium under V1)
    }


def aflt(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Atrial flutter: sawtooth F-waves at 250-330 /min, negative in II/III/aVF, with 2:1-4:1 conduction."""
    phys.rhythm = "aflt"
    options = [((2,), 0.4), ((4,), 0.2), ((2, 4), 0.2), ((3,), 0.05), ((2, 3, 4), 0.15)]
    ratios = options[int(rng.choice(len(options), p=[w for _, w in options]))][0]
    cl = rng.uniform(0.18, 0.24)
    phys.atrial = {
        "kind": "flutter",
        "cl_s": cl,
        "ratios": ratios,
        "amp_mv": 0.08 + 0.17 * sev,
        "av_delay_s": rng.uniform(0.2, 0.28),
        "phase_s": rng.uniform(0.0, cl),
        "direction": unit([0.05, -0.85, -0.5]),  # counter-clockwise typical flutter
    }
    phys.hr_bpm = 60.0 / (cl * float(np.mean(ratios)))


def av_block_1(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """First-degree AV block: PR above 200 ms (202 borderline .. 350)."""
    phys.pr_s = 0.202 + 0.15 * sev


def pvc(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Premature ventricular complexes: 1-3 wide (130-170 ms) early beats with discordant ST-T."""
    phys.n_pvc = 1 + int(round(2.0 * sev))
    phys.pvc_coupling = rng.uniform(0.45, 0.7)
    origins = [
        (unit([0.35, 0.85, 0.45]), unit([0.75, 0.5, 0.6])),  # RV outflow tract: LBBB-like, inferior axis
        (unit([-0.5, 0.3, -0.8]), unit([-0.7, -0.35, -0.55])),  # LV free wall: RBBB-like
        (unit([-0.3, -0.85, -0.4]), unit([0.3, -0.9, 0.3])),  # apical: superior axis
        (unit([0.6, -0.4, 0.6]), unit([0.9, 0.1, 0.4])),  # RV apex: LBBB-like, left axis
    ]
    d1, d2 = origins[int(rng.integers(len(origins)))]
    amp = qrs_amp(phys) * rng.uniform(1.2, 1.8)
    dur = rng.uniform(0.13, 0.17)
    centres, left, right = np.array([0.3, 0.66]) * dur, np.array([0.13, 0.14]) * dur, np.array([0.14, 0.13]) * dur
    qrs = Waves.lobes(centres, left, right, np.stack([d1, d2]) * amp, PART_QRS)
    qrs = fit_span(qrs, PART_QRS, 0.0, dur)
    d = unit(qrs.area(PART_QRS)[:3])
    qt = dur + rng.uniform(0.26, 0.32)
    sr = 0.05
    sl = min(0.075, (qt - EXTENT * sr - dur) / EXTENT)  # the T starts after the QRS, not inside it
    t = Waves.lobes([qt - EXTENT * sr], sl, sr, (-d * amp * rng.uniform(0.3, 0.45))[None], PART_T)
    st = Waves.plateau_(dur, qt - EXTENT * sr, 0.008, 0.04, -0.12 * amp * d, PART_ST)
    phys.pvc = Waves.concat([qrs, st, t])


def pac(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Premature atrial complexes: 1-3 early beats with an abnormal P and a normal QRS."""
    phys.n_pac = 1 + int(round(2.0 * sev))
    phys.pac_coupling = rng.uniform(0.6, 0.82)
    foci = [unit([0.25, -0.6, -0.15]), unit([-0.4, 0.35, 0.45]), unit([0.6, 0.45, -0.1]), unit([0.1, 0.9, 0.3])]
    d = foci[int(rng.integers(len(foci)))]
    dur = rng.uniform(0.07, 0.1)
    phys.pac_p = Waves.lobes([0.5 * dur], dur / 5.0, dur / 5.0, (d * rng.uniform(0.1, 0.18))[None], PART_P)


def pace(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Paced rhythm: RV apical pacing (wide LBBB-like QRS, superior axis), dual- or single-chamber.

    Severity sets the visibility of the pacing spikes (bipolar leads give tiny spikes: the subtle end).
    """
    phys.rhythm = "paced"
    dual = bool(rng.random() < 0.6)
    phys.pacing = {
        "rate_bpm": float(rng.choice([60.0, 65.0, 70.0])) + rng.uniform(-0.5, 0.5),
        "dual": dual,
        "av_delay_s": rng.uniform(0.14, 0.2),
        "v_area": (0.4 + 3.0 * sev) * 1e-3,  # spike area, mV s (amplitude x 0.5 ms pulse width)
        "a_area": (0.3 + 1.5 * sev) * 1e-3,
        "v_dir": unit(rng.normal(size=3) + np.array([0.3, -0.6, -0.3])),
        "a_dir": unit(rng.normal(size=3)),
    }
    if not dual and rng.random() < 0.5:  # single-chamber pacing is usually for AF: fine f-waves remain
        phys.atrial = {"kind": "f", "amp_mv": rng.uniform(0.02, 0.06), "f_hz": rng.uniform(4.5, 8.0),
                       "rr_cv": 0.0, "direction": unit([-0.25, 0.5, -0.8]), "v1_local": 0.5}
    phys.hr_bpm = phys.pacing["rate_bpm"]
    dur = rng.uniform(0.14, 0.18)
    amp = qrs_amp(phys) * rng.uniform(1.1, 1.5)
    vectors = np.array([[0.55, -0.35, 0.45], [0.9, -0.3, 0.8], [0.7, -0.5, 0.7]]) * np.array([[0.6], [1.3], [0.9]])
    sigmas = np.array([0.12, 0.15, 0.11]) * dur
    qrs = Waves.lobes(np.array([0.22, 0.5, 0.77]) * dur, sigmas, sigmas, vectors * amp, PART_QRS)
    phys.qrs = fit_span(qrs, PART_QRS, 0.0, dur)
    phys.notes["paced_secondary"] = True


def spikes(phys: Physiology, sigma_s: float) -> tuple[Waves, Waves]:
    """Pacing spikes (ventricular, atrial) as lobes of width ``sigma_s`` keeping their area."""
    if not phys.pacing:
        return Waves.empty(), Waves.empty()
    p = phys.pacing
    peak = 1.0 / (sigma_s * np.sqrt(2.0 * np.pi))
    v = Waves.lobes([-0.002], sigma_s, sigma_s, (p["v_area"] * peak * p["v_dir"])[None], PART_SPIKE)
    a = Waves.lobes([-0.002], sigma_s, sigma_s, (p["a_area"] * peak * p["a_dir"])[None], PART_SPIKE)
    return v, a
