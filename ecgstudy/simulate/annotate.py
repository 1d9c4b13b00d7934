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

AF, pacing and the rare codes are never missed (the rare sets' case status is confirmed by definition).
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


def annotate(
    rng: np.random.Generator,
    truth: dict[str, float],
    sokolow_mv: float,
    cfg: AnnotatorConfig,
    second_opinion: bool = False,
) -> dict[str, float]:
    """The reported statements of a record: {code: likelihood}, PTB-XL style.

    Parameters
    ----------
    truth : the record's true codes {code: severity} (with the derived SR/NORM).
    sokolow_mv : its Sokolow-Lyon voltage (SV1 + max(RV5, RV6)), mV.
    second_opinion : the record lies in a validated fold (error rates reduced).
    """
    k = cfg.second_opinion_factor if second_opinion else 1.0
    reported: dict[str, float] = {}
    for code, sev in truth.items():
        if code in ("NORM", "SR"):
            continue
        cond = CATALOGUE[code]
        p_miss = cfg.miss_rate * k * max(0.0, 1.0 - sev / cfg.mild_severity)
        if code in NEVER_MISSED or cond.rare:
            p_miss = 0.0
        if rng.random() < p_miss:
            alike = cond.look_alike
            if alike and alike not in truth and rng.random() < cfg.confusion_rate:
                reported[alike] = likelihood(alike, sev, confused=True)
            continue
        reported[code] = likelihood(code, sev)
    blocked_lvh = any(c in truth for c in ("LVH", "CLBBB", "PACE", "WPW", "RVH"))
    if not blocked_lvh and sokolow_mv >= SOKOLOW_LYON_MV and rng.random() < cfg.voltage_lvh_rate * k:
        reported["LVH"] = 35.0 if sokolow_mv < 4.0 else 50.0
    if not any(c in reported for c in ("ISC_", "NST_", "PACE")) and rng.random() < cfg.false_positive_rate * k:
        reported["NST_"] = 35.0
    sinus = not any(c in truth for c in NON_SINUS)
    if sinus and not any(c in reported for c in NON_SINUS + ("SBRAD", "STACH")):
        reported["SR"] = 0.0
    if not any(is_diagnostic(c) for c in reported):
        reported["NORM"] = 100.0
    return dict(sorted(reported.items(), key=lambda kv: (-kv[1], kv[0])))
