"""The annotator: what a cardiologist reports for a record, next to what is true.

Reader disagreement concentrates on borderline findings (PTB-XL's own validation: Wagner et al. 2020;
inter-reader variability in ECG interpretation, e.g. Salerno et al. 2003). The model:

- a true finding of severity ``s`` is missed with probability ``miss_rate * max(0, 1 - s / mild_severity)``
  (borderline cases most, findings at or above ``mild_severity`` never); a missed finding is reported as
  its look-alike instead (IRBBB for CRBBB, NST_ for ISC_, AFIB for AFLT, ...) with ``confusion_rate``;
- voltage criteria alone (Sokolow-Lyon >= 3.5 mV) make readers call LVH without hypertrophy with
  ``voltage_lvh_rate`` (the classic false positive in slim young men);
- a spurious non-specific ST finding is added with ``false_positive_rate``;
- records of the validated folds (PTB-XL's strat_fold 9-10, seen by a second cardiologist) have all error
  rates multiplied by ``second_opinion_factor``.

Each site reads by its own convention (:class:`ReaderConvention`, named by ``SiteConfig.convention``, one
of :data:`CONVENTIONS`): the LVH voltage criterion (Sokolow-Lyon or Cornell), the QTc limit of long QT
(450/460 ms or 470/480 ms), how often borderline findings are missed (``miss_scale``) and how often a
borderline negative (:mod:`ecgstudy.simulate.borderline`) is over-called as the finding it stays below
(``overcall_rate``). A true finding the site's criterion does not reach is not reported. So the same
ECG gets different reported labels at different sites; ground_truth.parquet keeps the true ones.

AF, pacing and the rare diagnoses are never missed (a rare set's label is the clinical diagnosis, from the
chart, not from the ECG); the expression codes and borderline negatives are never reported as codes.
Reported likelihoods follow PTB-XL: diagnostic statements 35/50/80/100 by certainty, rhythm and form
statements 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecgstudy.paths import resource
from ecgstudy.simulate.conditions import CATALOGUE, NON_SINUS, is_diagnostic

NEVER_MISSED = ("AFIB", "PACE", "NORM", "SR")
SOKOLOW_LYON_MV = 3.5  # SV1 + max(RV5, RV6) voltage criterion for LVH (Sokolow & Lyon 1949)
CORNELL_MV = (2.8, 2.0)  # RaVL + SV3 criterion for LVH, men / women (Casale et al. 1985)
#: The finding a borderline negative may be over-called as (BL_QRS has no code in the vocabulary).
OVERCALLED_AS = {"BL_1AVB": "1AVB", "BL_LVH": "LVH", "BL_LNGQT": "LNGQT"}


@dataclass(frozen=True)
class ReaderConvention:
    """How one site's cardiologists read (thresholds and error tendencies); see :data:`CONVENTIONS`."""

    lvh_criterion: str = "sokolow"  # sokolow (SV1 + RV5/6 >= 3.5 mV) | cornell (RaVL + SV3 >= 2.8 / 2.0 mV)
    qtc_limits_ms: tuple[float, float] = (450.0, 460.0)  # long QT reported from this QTc, men / women
    miss_scale: float = 1.0  # multiplies AnnotatorConfig.miss_rate
    overcall_rate: float = 0.1  # probability of calling a borderline negative positive


#: Reading conventions a site can choose (``SiteConfig.convention``); rates are modelling choices, the
#: thresholds are published criteria (SOURCES.md).
CONVENTIONS: dict[str, ReaderConvention] = {
    "sokolow": ReaderConvention(),  # AHA 2009 limits, Sokolow-Lyon voltage (PTB-XL-like university reading)
    "cornell": ReaderConvention("cornell", (450.0, 460.0), 1.5, 0.15),  # Cornell voltage, busier reading
    "strict": ReaderConvention("sokolow", (470.0, 480.0), 0.6, 0.03),  # drug-safety QTc limits, cautious
}


@dataclass(frozen=True)
class AnnotatorConfig:
    """Error rates of the simulated cardiologist."""

    miss_rate: float = 0.4  # probability of missing a borderline (severity 0) finding
    mild_severity: float = 0.3  # findings at or above this severity are never missed
    confusion_rate: float = 0.4  # share of missed findings reported as their look-alike instead
    voltage_lvh_rate: float = 0.35  # probability of calling LVH on voltage alone (Sokolow-Lyon >= 3.5 mV)
    false_positive_rate: float = 0.01  # probability of a spurious non-specific ST finding per record
    second_opinion_factor: float = 0.5  # error rates are multiplied by this in strat_fold 9-10

    def validate(self) -> None:
        for name in ("miss_rate", "confusion_rate", "voltage_lvh_rate", "false_positive_rate", "second_opinion_factor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"annotator.{name} must lie in [0, 1], got {value}")
        if not 0.0 < self.mild_severity <= 1.0:
            raise ValueError(f"annotator.mild_severity must lie in (0, 1], got {self.mild_severity}")


@functools.lru_cache(maxsize=1)
def _ptbxl_diagnostic_flags() -> dict[str, bool]:
    table = pd.read_csv(resource("ptbxl_scp_statements.csv"), index_col=0)
    return {str(k): bool(v == 1.0) for k, v in table["diagnostic"].items()}


def ptbxl_diagnostic(code: str) -> bool:
    """Whether PTB-XL marks ``code`` as a diagnostic statement (rare codes count as diagnostic)."""
    flags = _ptbxl_diagnostic_flags()
    if code in flags:
        return flags[code]
    return code in CATALOGUE and CATALOGUE[code].rare


def likelihood(code: str, severity: float, confused: bool = False) -> float:
    """PTB-XL-style likelihood of a reported statement."""
    if not ptbxl_diagnostic(code):
        return 0.0
    if code == "NORM" or CATALOGUE.get(code) is not None and CATALOGUE[code].rare:
        return 100.0
    if confused:
        return 35.0 if severity < 0.15 else 50.0
    if severity >= 0.5:
        return 100.0
    if severity >= 0.3:
        return 80.0
    return 50.0 if severity >= 0.15 else 35.0


def reader_measures(rec, borderline: dict[str, float] | None = None) -> dict:
    """What a reader measures on a simulated record (``SimulatedRecord``), for :func:`annotate`.

    Returns {"sokolow_mv", "cornell_mv" (R in aVL + S in V3 of the template QRS on the record's own
    leads), "qtc_ms", "female", "borderline" (the record's borderline negatives {code: severity})}.
    """
    from ecgstudy.simulate.effects import qrs_leads  # the record's physiology: effects' lead projection

    leads = qrs_leads(rec.physiology)
    return {
        "sokolow_mv": float(rec.truth["sokolow_mv"]),
        "cornell_mv": float(leads[4].max() - leads[8].min()),
        "qtc_ms": float(rec.truth["qtc_ms"]),
        "female": bool(rec.physiology.notes.get("female", False)),
        "borderline": dict(borderline or {}),
    }


def _lvh_voltage(convention: ReaderConvention, measures: dict) -> bool:
    """Whether the site's LVH voltage criterion is met."""
    if convention.lvh_criterion == "cornell":
        limit = CORNELL_MV[1] if measures.get("female") else CORNELL_MV[0]
        return measures.get("cornell_mv", 0.0) >= limit
    return measures.get("sokolow_mv", 0.0) >= SOKOLOW_LYON_MV


def _criterion_met(code: str, convention: ReaderConvention, measures: dict) -> bool:
    """Whether a true finding reaches the site's own threshold (codes without a site threshold: yes)."""
    if code == "LVH" and convention.lvh_criterion != "sokolow":
        return _lvh_voltage(convention, measures)
    if code == "LNGQT" and "qtc_ms" in measures:
        return measures["qtc_ms"] >= convention.qtc_limits_ms[1 if measures.get("female") else 0]
    return True


def annotate(
    rng: np.random.Generator,
    truth: dict[str, float],
    sokolow_mv: float,
    cfg: AnnotatorConfig,
    second_opinion: bool = False,
    convention: ReaderConvention | None = None,
    measures: dict | None = None,
) -> dict[str, float]:
    """The reported statements of a record: {code: likelihood}, PTB-XL style.

    Parameters
    ----------
    truth : the record's true codes {code: severity} (with the derived SR/NORM).
    sokolow_mv : its Sokolow-Lyon voltage (SV1 + max(RV5, RV6)), mV.
    second_opinion : the record lies in a validated fold (error rates reduced).
    convention : the site's reading convention (default: ``CONVENTIONS["sokolow"]``).
    measures : what the reader measured (:func:`reader_measures`); Sokolow-Lyon alone when omitted.
    """
    convention = convention or CONVENTIONS["sokolow"]
    measures = {"sokolow_mv": sokolow_mv, **(measures or {})}
    k = cfg.second_opinion_factor if second_opinion else 1.0
    reported: dict[str, float] = {}
    for code, sev in truth.items():
        if code in ("NORM", "SR"):
            continue
        cond = CATALOGUE[code]
        if cond.kind in ("expression", "borderline"):
            continue  # what the ECG shows of a diagnosis is not a statement
        p_miss = min(1.0, cfg.miss_rate * convention.miss_scale * k) * max(0.0, 1.0 - sev / cfg.mild_severity)
        if code in NEVER_MISSED or cond.rare:
            p_miss = 0.0
        if rng.random() < p_miss:
            alike = cond.look_alike
            if alike and alike not in truth and rng.random() < cfg.confusion_rate:
                reported[alike] = likelihood(alike, sev, confused=True)
            continue
        if not cond.rare and not _criterion_met(code, convention, measures):
            continue  # below this site's threshold
        reported[code] = likelihood(code, sev)
    blocked_lvh = any(c in truth for c in ("LVH", "CLBBB", "PACE", "WPW", "RVH"))
    if not blocked_lvh and _lvh_voltage(convention, measures) and rng.random() < cfg.voltage_lvh_rate * k:
        reported["LVH"] = 35.0 if measures["sokolow_mv"] < 4.0 else 50.0
    for code, called in OVERCALLED_AS.items():
        if code in measures.get("borderline", {}) and called not in reported:
            if rng.random() < convention.overcall_rate * k:
                reported[called] = 35.0
    if not any(c in reported for c in ("ISC_", "NST_", "PACE")) and rng.random() < cfg.false_positive_rate * k:
        reported["NST_"] = 35.0
    sinus = not any(c in truth for c in NON_SINUS)
    if sinus and not any(c in reported for c in NON_SINUS + ("SBRAD", "STACH")):
        reported["SR"] = 0.0
    if not any(is_diagnostic(c) for c in reported):
        reported["NORM"] = 100.0
    return dict(sorted(reported.items(), key=lambda kv: (-kv[1], kv[0])))
