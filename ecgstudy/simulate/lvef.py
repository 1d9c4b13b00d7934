"""Left-ventricular ejection fraction: a latent trait of every patient, its ECG associations and effects.

Each patient has a stable left-ventricular "reserve" z ~ N(0, 1) (drawn from
:func:`~ecgstudy.simulate.physiology.trait_rng`, so follow-up records share it). A recording's LVEF is

    LVEF = 61 + 8.5 z - 2.5 [man] - 0.08 (age - 60) - sum_c loss_c (0.7 + 0.6 severity_c),   in [10, 75] %

where ``loss_c`` is the drop that goes with each condition the recording carries: the ECG findings
published as associated with reduced LVEF (left bundle branch block, Q-wave infarction, atrial
fibrillation, low voltage, LVH, a long QRS) lower it most. The joint distribution is what the literature
reports from the other side: in heart failure with reduced EF, LBBB is found in about a quarter to a third
of patients (Baldasseroni et al. 2002; Kashani & Barold 2005), AF in 10-50 % by NYHA class (Maisel &
Stevenson 2003), prior (Q-wave) infarction in about half; and a normal ECG makes LV systolic dysfunction
unlikely (Davie et al. 1996). The prevalence of LVEF <= 40 % is about 2 % in the community (Redfield et al.
2003) and higher in patients referred for an ECG and echocardiogram (LVEF <= 35 % in 7.8 %: Attia et al.
2019); the coefficients give 6-12 % in the hospital cohorts simulated here (tested).

A reduced LVEF also shapes the ECG itself (:func:`apply`), proportionally to ``h = (50 - LVEF) / 30`` in
[0, 1]: a faster sinus rate, a longer QRS (non-specific intraventricular delay, kept below 118 ms so it
never reads as bundle branch block), a longer QTc (kept below the long-QT threshold), left atrial
abnormality, lower limb-lead and relatively larger precordial voltage with poor R progression (the
Goldberger triad of dilated cardiomyopathy, Goldberger 1982), and flatter T waves. The sizes of these
effects are modelling choices in the published directions; none was chosen by looking at a model's result.
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.physiology import TRAIT_LV, Patient, Physiology, fit_span, trait_rng
from ecgstudy.simulate.waves import PART_P, PART_QRS, PART_T

LVEF_THRESHOLD = 40.0  # "reduced" LVEF: the ECG-FM task's LVEF <= 40 %
LVEF_RANGE = (10.0, 75.0)  # clipped range, %
#: Drop in LVEF (percentage points, at mid severity) that goes with each condition of the recording.
LOSS: dict[str, float] = {
    "CLBBB": 18.0, "AMI": 11.0, "ASMI": 9.0, "IMI": 6.0, "PACE": 10.0, "AFIB": 8.0, "AFLT": 6.0, "LVOLT": 6.0,
    "LVH": 4.0, "CRBBB": 3.0, "LAFB": 3.0, "PVC": 3.0, "ISC_": 3.0, "STACH": 4.0, "1AVB": 2.0, "RVH": 2.0,
    "LNGQT": 2.0,
}
QRS_CAP_S = 0.118  # the LVEF effect never widens a QRS beyond this (no bundle branch block without its label)


def reserve(patient: Patient) -> float:
    """The patient's latent left-ventricular reserve z ~ N(0, 1) (stable across the patient's records)."""
    return float(trait_rng(patient.morphology.shape_seed, TRAIT_LV).standard_normal())


def lvef_of(patient: Patient, conditions: dict[str, float]) -> float:
    """LVEF (%) of a recording of ``patient`` with ``conditions`` ({code: severity in [0, 1]})."""
    male = patient.sex == 0
    value = 61.0 + 8.5 * reserve(patient) - 2.5 * male - 0.08 * (patient.age - 60.0)
    for code, sev in conditions.items():
        value -= LOSS.get(code, 0.0) * (0.7 + 0.6 * float(sev))
    return float(np.clip(value, *LVEF_RANGE))


def apply(phys: Physiology, lvef: float, rng: np.random.Generator) -> None:
    """The ECG effects of a reduced LVEF on the recording's physiology (in place; none above 50 %).

    Runs before the conditions, so a condition's own rate, QRS or QT (bundle branch block, AF, long QT)
    replaces these milder changes. Voltage changes act on the heart-frame dipole: Y (inferior, what the
    limb leads see most) shrinks, Z (posterior: deep S in V1-V3, late R progression) grows.
    """
    h = float(np.clip((50.0 - lvef) / 30.0, 0.0, 1.0))
    phys.notes["lvef"] = float(lvef)
    if h <= 0.0:
        return
    phys.hr_bpm = min(phys.hr_bpm + 10.0 * h * rng.uniform(0.6, 1.0), 99.5)
    dur = phys.qrs_duration_s()
    phys.qrs = fit_span(phys.qrs, PART_QRS, 0.0, min(dur * (1.0 + 0.15 * h), max(dur, QRS_CAP_S)))
    limit = 0.457 if phys.notes.get("female") else 0.447
    qtc = min(phys.qtc_s + 0.015 * h, max(phys.qtc_s, limit))
    sel_t = phys.t.part == PART_T
    phys.t.t[sel_t] += qtc - phys.qtc_s
    phys.qtc_s = qtc
    phys.t.amp[sel_t] *= 1.0 - 0.3 * h
    qrs = phys.qrs.part == PART_QRS
    phys.qrs.amp[qrs, 1] *= 1.0 - 0.35 * h
    phys.qrs.amp[qrs, 2] *= 1.0 + 0.25 * h
    p = np.flatnonzero(phys.p.part == PART_P)
    if p.size:
        la = p[np.argmax(phys.p.t[p])]  # the later (left atrial) lobe: broader and larger
        phys.p.amp[la] *= 1.0 + 0.5 * h
        phys.p.sr[la] *= 1.0 + 0.2 * h
