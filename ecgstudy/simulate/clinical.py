"""Clinical rare diagnoses and how often their ECGs show something: the rare case-control sets' labels.

A rare set's label is a clinical diagnosis (echocardiography, haemodynamics, laboratory, genetics or a
drug challenge made it), not an ECG pattern. What one ECG of a patient with the diagnosis shows is drawn
here, finding by finding, at the frequency published for it (sources in SOURCES.md); an ECG may show
nothing at all (ECG-silent). The findings are catalogue codes (:mod:`ecgstudy.simulate.conditions`):
PTB-XL statements that a reader can report (low voltage, AF, atrial abnormality, right ventricular
hypertrophy, T-wave change, ...) or, for the three channel/cardiomyopathy diagnoses, the rare ECG patterns
of :mod:`ecgstudy.simulate.rare` (kind ``expression``, never reported).

The UCSF rare-disease study's three diagnoses (carcinoid heart disease, pericardial constriction,
rheumatic mitral valve doming) have non-specific expression: every finding also occurs in controls, at
the background rate of their age and site.

``BRUGADA`` is drawn in two steps after Richter et al. 2009 (1,161 serial ECGs of 89 patients): 64 % of
patients have a spontaneous type-1 pattern at some time, and 38 % of their ECGs show it (25 % a
saddle-back type-2 pattern, 37 % normal); the others (diagnosed by drug challenge) never show type 1 at
rest, a quarter of their ECGs show the saddle-back pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgstudy.simulate.conditions import draw_severity


@dataclass(frozen=True)
class Finding:
    """One ECG finding of a diagnosis."""

    code: str  # catalogue code that puts it on the ECG
    rate: float  # probability that an ECG of a patient with the diagnosis shows it
    published: tuple[float, float] | None = None  # range reported for that rate; None: a modelling choice (SOURCES.md)


@dataclass(frozen=True)
class Diagnosis:
    """A clinical rare diagnosis: who has it and what their ECGs show."""

    code: str
    age_mean: float  # patients' age, years
    age_sd: float
    female_frac: float  # share of women
    findings: tuple[Finding, ...]  # independent findings (the Brugada draw is special, module docstring)


BRUGADA_SPONTANEOUS = 57 / 89  # patients with a spontaneous type-1 pattern at some time (Richter 2009)
BRUGADA_TYPE1_IF_SPONTANEOUS = 0.38  # share of their ECGs with a type-1 pattern
BRUGADA_TYPE2 = 0.25  # share of ECGs with a saddle-back pattern (both groups)

_F = Finding
DIAGNOSES: dict[str, Diagnosis] = {
    d.code: d
    for d in [
        Diagnosis("BRUGADA", 42.0, 13.0, 0.15, (
            _F("BRUGADA_TYPE1", BRUGADA_SPONTANEOUS * BRUGADA_TYPE1_IF_SPONTANEOUS, (0.235, 0.245)),  # "24 %"
            _F("BRUGADA_TYPE2", BRUGADA_TYPE2, (0.245, 0.255)),  # "25 %"
        )),
        Diagnosis("HYPERK", 66.0, 14.0, 0.45, (
            _F("HYPERK_ECG", 0.50, (0.46, 0.52)),  # any hyperkalaemic change (Montague 2008; Acker 1998)
        )),
        Diagnosis("ARVC", 36.0, 13.0, 0.35, (
            _F("ARVC_TWI", 0.70),  # T inversion V1-V3: 87 % in established disease (Marcus 2005), fewer when screened
            _F("ARVC_EPSILON", 0.20, (0.14, 0.31)),  # epsilon wave (Saguner 2015: 14 % -> 31 % over follow-up)
        )),
        Diagnosis("CARCINOID", 60.0, 11.0, 0.50, (
            _F("NT_", 0.30),  # non-specific ST-T change, the commonest finding
            _F("LVOLT", 0.20),  # pericardial effusion, myocardial metastases
            _F("RAO/RAE", 0.20),  # right atrial enlargement (53 % by echocardiography)
            _F("STACH", 0.15),  # flushing, vasoactive amines
            _F("IRBBB", 0.10),  # right ventricular volume overload
            _F("CRBBB", 0.05),
            _F("RVH", 0.08),  # right heart strain, pulmonary stenosis
        )),
        Diagnosis("CONSTRICT", 55.0, 15.0, 0.25, (
            _F("NT_", 0.70),  # T flattening/inversion, the commonest finding
            _F("LVOLT", 0.27, (0.25, 0.30)),  # low QRS voltage
            _F("AFIB", 0.25, (0.20, 0.30)),  # atrial fibrillation
            _F("LAO/LAE", 0.25),  # broad notched P (in sinus rhythm)
            _F("RVH", 0.05),  # right axis / RVH pattern, less frequent
        )),
        Diagnosis("RHEUMMS", 55.0, 15.0, 0.75, (
            _F("AFIB", 0.30),  # REMEDY: 21.8 % of (younger) rheumatic heart disease patients; more with age
            _F("LAO/LAE", 0.50),  # P mitrale (in sinus rhythm)
            _F("RVH", 0.15),  # pulmonary hypertension: right axis, R/S > 1 in V1
            _F("RAO/RAE", 0.05),
        )),
    ]
}


def draw_expression(code: str, rng: np.random.Generator) -> dict[str, float]:
    """The findings one ECG of a patient with diagnosis ``code`` shows: {catalogue code: severity}.

    Empty for an ECG-silent record. Severities follow :func:`ecgstudy.simulate.conditions.draw_severity`.
    Findings that exclude each other (AF and a P-wave abnormality) are resolved by the caller
    (:func:`ecgstudy.simulate.conditions.resolve_exclusions`).
    """
    if code not in DIAGNOSES:
        raise ValueError(f"no clinical diagnosis {code!r}; known: {sorted(DIAGNOSES)}")
    if code == "BRUGADA":
        spontaneous = rng.random() < BRUGADA_SPONTANEOUS
        u = rng.random()
        if spontaneous and u < BRUGADA_TYPE1_IF_SPONTANEOUS:
            return {"BRUGADA_TYPE1": draw_severity(rng)}
        if u >= 1.0 - BRUGADA_TYPE2:
            return {"BRUGADA_TYPE2": draw_severity(rng)}
        return {}
    out: dict[str, float] = {}
    for finding in DIAGNOSES[code].findings:
        if rng.random() < finding.rate:
            out[finding.code] = draw_severity(rng)
    return out
