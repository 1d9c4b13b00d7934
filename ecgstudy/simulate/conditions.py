"""The condition catalogue: SCP codes, how common each is, what it does, where its signature lies.

Each :class:`Condition` ties a PTB-XL SCP code (or a rare code from :mod:`ecgstudy.simulate.rare`) to

- its effect on the physiology (:mod:`ecgstudy.simulate.effects`) and the stage it acts in;
- its prevalence at age 60, how that changes with age and sex (before the site's case-mix multipliers);
- its signature mask: the leads where the diagnostic criterion is read and the part of each beat
  (segments, see :func:`ecgstudy.simulate.masks.segment_spans`) where it shows;
- the look-alike an annotator may report instead when the case is mild;
- its kind: a *statement* (a PTB-XL SCP code, what a reader can report), a clinical *diagnosis* of the
  rare sets (the label; by itself it changes nothing on the ECG), an *expression* (what a diagnosis shows
  on a given ECG, e.g. a type-1 Brugada pattern; never reported, drawn by
  :func:`ecgstudy.simulate.clinical.draw_expression`) or a *borderline* negative (physiology just below a
  criterion, no code at all; :mod:`ecgstudy.simulate.borderline`).

:func:`sample_conditions` draws one recording's true conditions with severities, with realistic
co-occurrence (shared risk: infarction and hypertrophy raise ischaemia, ectopy, AF and LBBB; RBBB with
LAFB as bifascicular block) and physiological exclusions (AF has no PR; a paced ventricle hides bundle
branch blocks and infarct Q waves; pre-excitation replaces the normal AV conduction).

Prevalences are PTB-XL's statement frequencies (Wagner et al. 2020), with a floor of 1.5 % so that every
code has enough positives in a 3,000-record cohort; age slopes and sex ratios follow the direction of the
epidemiology cited in SOURCES.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ecgstudy.simulate import borderline as bl
from ecgstudy.simulate import clinical_effects as cx
from ecgstudy.simulate import effects as fx
from ecgstudy.data.leads import LEADS
from ecgstudy.simulate import rare
from ecgstudy.simulate import rhythm_effects as rx

ALL_LEADS = LEADS
STAGES = ("rhythm", "shape", "body", "repolarisation", "final")


@dataclass(frozen=True)
class Condition:
    """One diagnosable condition."""

    code: str  # SCP code (PTB-XL vocabulary or a rare code)
    stage: str  # rhythm | shape | body | repolarisation | final: when its effect is applied
    effect: Callable | None  # effect(phys, severity, rng); None for codes that follow from others
    prevalence: float  # overall rate in a PTB-XL-like population, before co-occurrence boosts and site mix
    age_slope: float  # change of log-risk per decade of age
    male_ratio: float  # prevalence ratio men / women
    leads: tuple[str, ...] | str  # signature leads, or "projected:<notes key>" (leads the vector shows in)
    segments: tuple[str, ...]  # parts of the beats (or the whole record) holding the signature
    look_alike: str | None = None  # what a reader may call a mild case instead
    rare: bool = False  # outside the PTB-XL vocabulary (rare sets only)
    kind: str = "statement"  # statement | diagnosis | expression | borderline (module docstring)
    expresses: str | None = None  # expression codes: the diagnosis whose ECG pattern this is


_C = Condition
CATALOGUE: dict[str, Condition] = {
    c.code: c
    for c in [
        _C("NORM", "final", None, 0.0, 0.0, 1.0, (), ()),
        _C("SR", "final", None, 0.0, 0.0, 1.0, (), ()),
        _C("SBRAD", "rhythm", rx.sbrad, 0.03, -0.1, 1.3, ALL_LEADS, ("record",)),
        _C("STACH", "rhythm", rx.stach, 0.04, 0.0, 0.9, ALL_LEADS, ("record",)),
        _C("AFIB", "rhythm", rx.afib, 0.065, 0.55, 1.3, ("II", "III", "aVF", "V1"), ("record",), "AFLT"),
        _C("AFLT", "rhythm", rx.aflt, 0.015, 0.5, 1.8, ("II", "III", "aVF", "V1"), ("record",), "AFIB"),
        _C("PACE", "rhythm", rx.pace, 0.014, 0.6, 1.2, ALL_LEADS, ("qrs", "st_t")),
        _C("1AVB", "rhythm", rx.av_block_1, 0.035, 0.35, 1.4, ("I", "II", "III", "aVR", "aVL", "aVF", "V1"), ("p_pr",)),
        _C("PVC", "rhythm", rx.pvc, 0.05, 0.3, 1.3, ALL_LEADS, ("ectopic",)),
        _C("PAC", "rhythm", rx.pac, 0.02, 0.4, 1.0, ("II", "III", "aVF", "V1"), ("ectopic",), "PVC"),
        _C("CLBBB", "shape", fx.clbbb, 0.025, 0.4, 0.9, ("I", "aVL", "V1", "V2", "V5", "V6"), ("qrs", "st_t")),
        _C("CRBBB", "shape", fx.crbbb, 0.025, 0.35, 1.8, ("I", "V1", "V2", "V5", "V6"), ("terminal_qrs", "st_t"),
           "IRBBB"),
        _C("IRBBB", "shape", fx.irbbb, 0.05, -0.1, 1.5, ("I", "V1", "V2", "V6"), ("terminal_qrs",), "CRBBB"),
        _C("WPW", "shape", fx.wpw, 0.015, -0.4, 1.5, "projected:delta", ("pre_excitation",)),
        _C("LVH", "shape", fx.lvh, 0.09, 0.25, 1.3, ("I", "aVL", "V1", "V2", "V5", "V6"), ("qrs",)),
        _C("RVH", "shape", fx.rvh, 0.015, 0.0, 1.0, ("I", "III", "aVF", "V1", "V2", "V5", "V6"), ("qrs",)),
        _C("LAFB", "body", fx.lafb, 0.07, 0.3, 1.4, ("I", "II", "III", "aVL", "aVF"), ("qrs",)),
        _C("IMI", "body", fx.infarct("IMI"), 0.12, 0.35, 1.8, ("II", "III", "aVF"), ("qrs",)),
        _C("ASMI", "body", fx.infarct("ASMI"), 0.10, 0.35, 1.8, ("V1", "V2", "V3"), ("qrs",), "AMI"),
        _C("AMI", "body", fx.infarct("AMI"), 0.02, 0.35, 1.8, ("V2", "V3", "V4"), ("qrs",), "ASMI"),
        _C("ISC_", "repolarisation", fx.isc, 0.05, 0.3, 1.2, "projected:ISC__vector", ("st_t",), "NST_"),
        _C("NST_", "repolarisation", fx.nst, 0.035, 0.1, 1.0, "projected:NST__vector", ("st_t",), "ISC_"),
        _C("LNGQT", "repolarisation", fx.lngqt, 0.015, 0.2, 0.7, "projected:t_vector", ("st_t",)),
        _C("LVOLT", "final", fx.lvolt, 0.015, 0.2, 1.0, ("I", "II", "III", "aVR", "aVL", "aVF"), ("qrs",)),
        # PTB-XL statements that the clinical diagnoses express (effects: clinical_effects.py)
        _C("LAO/LAE", "final", cx.left_atrial, 0.02, 0.3, 1.0, ("I", "II", "aVF", "V1"), ("p_pr",)),
        _C("RAO/RAE", "final", cx.right_atrial, 0.015, 0.2, 1.0, ("II", "III", "aVF", "V1"), ("p_pr",)),
        _C("NT_", "repolarisation", cx.t_wave_change, 0.02, 0.2, 1.0, "projected:t_vector", ("st_t",), "NST_"),
        # clinical diagnoses of the rare case-control sets: the label, no ECG effect of their own
        _C("BRUGADA", "final", None, 0.0, 0.0, 8.0, (), (), None, True, "diagnosis"),
        _C("HYPERK", "final", None, 0.0, 0.3, 1.0, (), (), None, True, "diagnosis"),
        _C("ARVC", "final", None, 0.0, -0.2, 2.5, (), (), None, True, "diagnosis"),
        _C("CARCINOID", "final", None, 0.0, 0.0, 1.0, (), (), None, True, "diagnosis"),
        _C("CONSTRICT", "final", None, 0.0, 0.0, 3.0, (), (), None, True, "diagnosis"),
        _C("RHEUMMS", "final", None, 0.0, 0.0, 0.3, (), (), None, True, "diagnosis"),
        # what those diagnoses show on one ECG (drawn per record by clinical.draw_expression)
        _C("BRUGADA_TYPE1", "repolarisation", rare.brugada, 0.0, 0.0, 1.0, ("V1", "V2"), ("st_t",), None, False,
           "expression", "BRUGADA"),
        _C("BRUGADA_TYPE2", "repolarisation", rare.brugada_saddleback, 0.0, 0.0, 1.0, ("V1", "V2"), ("st_t",), None,
           False, "expression", "BRUGADA"),
        _C("HYPERK_ECG", "repolarisation", rare.hyperk, 0.0, 0.0, 1.0, "projected:t_vector", ("st_t",), None, False,
           "expression", "HYPERK"),
        _C("ARVC_TWI", "repolarisation", rare.arvc_repolarisation, 0.0, 0.0, 1.0, ("V1", "V2", "V3"), ("st_t",), None,
           False, "expression", "ARVC"),
        _C("ARVC_EPSILON", "repolarisation", rare.arvc_depolarisation, 0.0, 0.0, 1.0, ("V1", "V2", "V3"),
           ("terminal_qrs", "st_t"), None, False, "expression", "ARVC"),
        # borderline negatives: just below a criterion, no code (borderline.py)
        _C("BL_1AVB", "rhythm", bl.near_1avb, 0.03, 0.35, 1.0, ("II",), ("p_pr",), None, False, "borderline"),
        _C("BL_QRS", "shape", bl.near_bbb, 0.03, 0.3, 1.8, ("I", "V1", "V6"), ("qrs",), None, False, "borderline"),
        _C("BL_LNGQT", "repolarisation", bl.near_lngqt, 0.03, 0.2, 0.7, "projected:t_vector", ("st_t",), None, False,
           "borderline"),
        _C("BL_LVH", "final", bl.near_lvh, 0.03, 0.0, 1.5, ("V1", "V5", "V6"), ("qrs",), None, False, "borderline"),
    ]
}
#: Order in which effects are applied within a stage (catalogue order, stage by stage).
APPLY_ORDER: tuple[str, ...] = tuple(
    code for stage in STAGES for code, c in CATALOGUE.items() if c.stage == stage and c.effect is not None
)
#: Codes simulated in the main cohort (PTB-XL vocabulary).
MAIN_CODES: tuple[str, ...] = tuple(c for c, v in CATALOGUE.items() if v.kind == "statement")
#: Rare codes (outside PTB-XL): the clinical diagnoses of the rare case-control sets.
RARE_CODES: tuple[str, ...] = tuple(c for c, v in CATALOGUE.items() if v.rare)
#: What the diagnoses show on an ECG (never reported; kept in the truth and in ground_truth's ecg_expression).
EXPRESSION_CODES: tuple[str, ...] = tuple(c for c, v in CATALOGUE.items() if v.kind == "expression")
#: Borderline negatives (physiology just below a criterion; no code in the truth, recorded separately).
BORDERLINE_CODES: tuple[str, ...] = tuple(c for c, v in CATALOGUE.items() if v.kind == "borderline")
#: Conditions that abolish the sinus P-QRS relation (no SR, no PR interval).
NON_SINUS = ("AFIB", "AFLT", "PACE")

# Physiological exclusions: if the key is present, the listed codes cannot be (diagnosed) as well.
_EXCLUDES: dict[str, tuple[str, ...]] = {
    "PACE": ("CLBBB", "CRBBB", "IRBBB", "LAFB", "WPW", "1AVB", "LVH", "RVH", "SBRAD", "STACH", "PAC", "AFIB",
             "AFLT", "IMI", "ASMI", "AMI", "ISC_", "NST_", "LNGQT", "LVOLT", "LAO/LAE", "RAO/RAE", "NT_",
             "BRUGADA_TYPE1", "BRUGADA_TYPE2", "HYPERK_ECG", "ARVC_TWI", "ARVC_EPSILON") + BORDERLINE_CODES,
    "AFIB": ("AFLT", "1AVB", "PAC", "SBRAD", "STACH", "LAO/LAE", "RAO/RAE", "BL_1AVB"),
    "AFLT": ("1AVB", "PAC", "SBRAD", "STACH", "LAO/LAE", "RAO/RAE", "BL_1AVB"),
    "WPW": ("1AVB", "CLBBB", "CRBBB", "IRBBB", "LAFB", "BL_1AVB", "BL_QRS", "BL_LVH"),
    "CLBBB": ("CRBBB", "IRBBB", "LAFB", "NST_", "NT_", "BL_QRS", "BL_LVH", "BL_LNGQT"),
    "CRBBB": ("IRBBB", "BL_QRS", "BL_LVH"),
    "IRBBB": ("BL_QRS",),
    "STACH": ("SBRAD",),
    "LVOLT": ("LVH", "BL_LVH"),
    "LVH": ("RVH", "BL_LVH", "BL_QRS"),
    "RVH": ("BL_LVH", "BL_QRS"),
    "ISC_": ("NST_", "NT_"),
    "NST_": ("NT_",),
    "1AVB": ("BL_1AVB",),
    "LNGQT": ("BL_LNGQT",),
    "HYPERK_ECG": ("BL_1AVB", "BL_QRS", "BL_LNGQT"),
}


REFERENCE_AGE = (62.0, 17.0)  # PTB-XL's age distribution (mean, sd), the population the prevalences refer to


def demographic_factor(c: Condition, age: float, sex: int) -> float:
    """Relative risk of ``c`` at this age and sex, normalised to 1 on average over the reference population.

    Risk grows by ``exp(age_slope)`` per decade and differs by ``male_ratio`` between men and women; the
    average over ages N(62, 17) (a log-normal mean) and an even sex mix is divided out, so
    ``prevalence`` stays the overall rate of a PTB-XL-like population.
    """
    mean, sd = REFERENCE_AGE
    b = c.age_slope / 10.0
    age_norm = np.exp(b * (mean - 60.0) + 0.5 * (b * sd) ** 2)
    r = np.sqrt(c.male_ratio)
    sex_norm = 0.5 * (r + 1.0 / r)
    sex_factor = r if sex == 0 else 1.0 / r
    return float(np.exp(b * (age - 60.0)) / age_norm * sex_factor / sex_norm)


def draw_severity(rng: np.random.Generator) -> float:
    """Severity in [0, 1]: skewed toward mild (Beta(1.2, 1.8), mean 0.4), as borderline cases are common."""
    return float(rng.beta(1.2, 1.8))


def sample_conditions(
    rng: np.random.Generator,
    age: float,
    sex: int,
    bmi: float = 26.0,
    multipliers: dict[str, float] | None = None,
) -> dict[str, float]:
    """Draw one recording's true conditions (code -> severity), main PTB-XL codes only.

    Parameters
    ----------
    age, sex, bmi : the patient (sex 0 male, 1 female).
    multipliers : the site's case-mix multipliers per code (default 1).
    """
    mult = multipliers or {}
    has: dict[str, float] = {}

    def draw(code: str, boost: float = 1.0) -> None:
        c = CATALOGUE[code]
        p = c.prevalence * demographic_factor(c, age, sex) * mult.get(code, 1.0) * boost
        if rng.random() < min(p, 0.9):
            has[code] = draw_severity(rng)

    for code in ("IMI", "ASMI", "AMI"):
        draw(code)
    mi = any(c in has for c in ("IMI", "ASMI", "AMI"))
    draw("LVH")
    draw("RVH")
    structural = 1.0 + 0.5 * mi + 0.5 * ("LVH" in has)
    draw("CLBBB", structural)
    draw("CRBBB")
    draw("IRBBB")
    draw("LAFB", 3.0 if "CRBBB" in has else structural)
    draw("1AVB")
    draw("WPW")
    draw("AFIB", 1.0 + 0.8 * ("LVH" in has) + 0.3 * mi)
    draw("AFLT")
    draw("PACE", 2.0 if ("CLBBB" in has or "1AVB" in has) else 1.0)
    draw("SBRAD")
    draw("STACH")
    draw("ISC_", 1.0 + 1.0 * mi + 1.0 * ("LVH" in has))
    draw("NST_")
    draw("LNGQT")
    draw("PVC", 1.0 + 0.8 * (mi or "LVH" in has))
    draw("PAC")
    draw("LVOLT", float(np.exp(0.08 * (bmi - 27.0))))
    draw("LAO/LAE", 1.0 + 1.5 * ("LVH" in has))  # left atrial abnormality accompanies LV hypertrophy
    draw("RAO/RAE", 1.0 + 2.0 * ("RVH" in has))
    draw("NT_")
    for code in BORDERLINE_CODES:
        draw(code)
    return resolve_exclusions(has)


def resolve_exclusions(conditions: dict[str, float]) -> dict[str, float]:
    """Drop the codes that a present condition excludes (in the priority order of ``_EXCLUDES``)."""
    out = dict(conditions)
    for code, excluded in _EXCLUDES.items():
        if code in out:
            for e in excluded:
                out.pop(e, None)
    return out


def is_diagnostic(code: str) -> bool:
    """Whether ``code`` counts against NORM (PTB-XL diagnostic statements, plus rare codes and LVOLT).

    Borderline negatives never do (they are, by construction, below every criterion)."""
    if code in ("NORM", "SR", "SBRAD", "STACH", "PVC", "PAC") or code not in CATALOGUE:
        return False
    return CATALOGUE[code].kind != "borderline"


def complete_truth(conditions: dict[str, float]) -> dict[str, float]:
    """Add the codes that follow from the others: SR (sinus rhythm at 60-100 /min) and NORM.

    NORM: no diagnostic abnormality and no AF, flutter or pacing (isolated ectopic beats and sinus
    brady-/tachycardia may accompany a normal ECG, as in PTB-XL). Borderline negatives are not conditions:
    they are dropped here (the database records them separately, ground_truth.parquet ``borderline``).
    """
    out = {k: v for k, v in conditions.items() if k not in ("NORM", "SR") and k not in BORDERLINE_CODES}
    if not any(c in out for c in NON_SINUS + ("SBRAD", "STACH")):
        out["SR"] = 1.0
    if not any(is_diagnostic(c) for c in out):
        out["NORM"] = 1.0
    return dict(sorted(out.items()))
