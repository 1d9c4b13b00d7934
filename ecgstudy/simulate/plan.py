"""Who is recorded when, where, with what: the plan of a cohort, drawn before any signal is simulated.

The main cohort has ``n_patients`` patients and ``n_records`` records: every patient has a first record;
the extra records are follow-ups of some patients (older patients more often, at most
``max_records_per_patient``), months to years later. Chronic conditions (infarcts, hypertrophy,
conduction disease, pacemakers, long QT) persist into follow-ups with a little drift in severity; the
intermittent ones (AF, ectopy, rate, ST changes) are drawn again, AF persisting in 60 % of cases; new
conditions may appear with age.

Rare case-control sets: for each rare diagnosis, ``n_cases`` patients carrying it and ``n_controls``
patients without it, from the same demographics (age and sex matched in distribution, so they cannot be
told apart by those), one record each. What a case's ECG shows is drawn apart from the diagnosis
(:func:`ecgstudy.simulate.clinical.draw_expression`: published frequencies, ECG-silent cases included) and
kept in the plan's ``expression``.

Every record gets its own :class:`numpy.random.SeedSequence` (spawned from the master seed in ecg_id
order), so its signal depends only on the master seed and its place in the plan, whatever the number of
worker processes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from ecgstudy.simulate.clinical import DIAGNOSES, draw_expression
from ecgstudy.simulate.conditions import complete_truth, resolve_exclusions, sample_conditions
from ecgstudy.simulate.devices import SiteConfig
from ecgstudy.simulate.folds import stratified_folds
from ecgstudy.simulate.physiology import Patient, aged, sample_patient

#: Conditions that persist between a patient's records.
CHRONIC = (
    "IMI", "ASMI", "AMI", "LVH", "RVH", "CLBBB", "CRBBB", "IRBBB", "LAFB", "WPW", "PACE", "LNGQT", "1AVB", "LVOLT",
)
AF_PERSISTENCE = 0.6  # probability that AF seen at one visit is present at the next
#: Demographics of the rare diagnoses' patients: mean age, sd, share of women (sources: SOURCES.md).
RARE_DEMOGRAPHICS: dict[str, tuple[float, float, float]] = {
    code: (d.age_mean, d.age_sd, d.female_frac) for code, d in DIAGNOSES.items()
}
_EPOCH = dt.datetime(1985, 1, 1, 0, 0, 0)
HEIGHT_KNOWN = 0.35  # share of records with height filled in (PTB-XL leaves most empty)
WEIGHT_KNOWN = 0.45  # share of records with weight filled in


@dataclass(frozen=True)
class RecordPlan:
    """Everything that decides one record, before simulation."""

    ecg_id: int
    patient: Patient  # at the age of this record
    site: int  # index into the cohort's sites
    conditions: dict  # true conditions {code: severity}
    seed: np.random.SeedSequence  # the record's own seed
    recording_date: str  # "YYYY-MM-DD HH:MM:SS"
    height_known: bool
    weight_known: bool
    strat_fold: int = 0
    case_control_set: str = ""  # rare sets: the rare code whose set the record belongs to
    expression: dict = field(default_factory=dict)  # rare cases: what the diagnosis shows on this ECG {code: severity}


def _date(rng: np.random.Generator, first_days: float, years: float) -> str:
    seconds = int(rng.integers(7 * 3600, 18 * 3600))
    when = _EPOCH + dt.timedelta(days=int(first_days + 365.25 * years), seconds=seconds)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _follow_up(
    rng: np.random.Generator, previous: dict[str, float], patient: Patient, site: SiteConfig
) -> dict[str, float]:
    fresh = sample_conditions(rng, patient.age, patient.sex, patient.bmi, site.prevalence)
    out = {c: v for c, v in fresh.items() if c not in CHRONIC or c not in previous}
    for code, sev in previous.items():
        if code in CHRONIC:
            out[code] = float(np.clip(sev + rng.normal(0.02, 0.05), 0.0, 1.0))
    if "AFIB" in previous and rng.random() < AF_PERSISTENCE:
        out["AFIB"] = previous["AFIB"]
    return resolve_exclusions(out)


def _site_index(rng: np.random.Generator, sites: tuple[SiteConfig, ...]) -> int:
    w = np.array([s.weight for s in sites], float)
    return int(rng.choice(len(sites), p=w / w.sum()))


def plan_main(
    rng: np.random.Generator,
    record_seeds: np.random.SeedSequence,
    sites: tuple[SiteConfig, ...],
    n_patients: int,
    n_records: int,
    max_records_per_patient: int,
) -> list[RecordPlan]:
    """The main cohort's records, in ecg_id order (1..n_records), with patient-respecting folds."""
    patients: list[Patient] = []
    for pid in range(1, n_patients + 1):
        s = _site_index(rng, sites)
        site = sites[s]
        patients.append(sample_patient(rng, pid, s, site.age_mean, site.age_sd, site.female_frac))
    counts = np.ones(n_patients, int)
    weight = np.array([np.exp((p.age - 60.0) / 25.0) for p in patients])
    for _ in range(n_records - n_patients):
        w = np.where(counts < max_records_per_patient, weight, 0.0)
        counts[int(rng.choice(n_patients, p=w / w.sum()))] += 1

    drafts = []  # (patient at that age, site, conditions, date, height/weight known)
    for patient, k in zip(patients, counts):
        site = sites[patient.site]
        first_days = rng.uniform(0.0, 15 * 365.25)
        years = 0.0
        conditions = sample_conditions(rng, patient.age, patient.sex, patient.bmi, site.prevalence)
        for visit in range(int(k)):
            if visit:
                years += rng.exponential(1.5) + 0.05
                conditions = _follow_up(rng, conditions, aged(patient, years), site)
            drafts.append((aged(patient, years), patient.site, conditions, _date(rng, first_days, years),
                           bool(rng.random() < HEIGHT_KNOWN), bool(rng.random() < WEIGHT_KNOWN)))
    order = rng.permutation(len(drafts))
    drafts = [drafts[i] for i in order]
    folds = stratified_folds(rng, [d[0].patient_id for d in drafts], [complete_truth(d[2]) for d in drafts])
    seeds = record_seeds.spawn(len(drafts))
    return [
        RecordPlan(i + 1, d[0], d[1], d[2], seeds[i], d[3], d[4], d[5], int(folds[i]))
        for i, d in enumerate(drafts)
    ]


def plan_rare(
    rng: np.random.Generator,
    record_seeds: np.random.SeedSequence,
    sites: tuple[SiteConfig, ...],
    codes: tuple[str, ...],
    n_cases: int,
    n_controls: int,
    first_patient_id: int,
) -> list[RecordPlan]:
    """The rare case-control sets (one record per patient), in ecg_id order, with folds."""
    drafts = []
    pid = first_patient_id
    for code in codes:
        age_mean, age_sd, female = RARE_DEMOGRAPHICS.get(code, (60.0, 17.0, 0.48))
        for case in [True] * n_cases + [False] * n_controls:
            s = _site_index(rng, sites)
            patient = sample_patient(rng, pid, s, age_mean, age_sd, female)
            conditions = sample_conditions(rng, patient.age, patient.sex, patient.bmi, sites[s].prevalence)
            expression: dict[str, float] = {}
            if case:
                conditions.pop("PACE", None)  # a paced rhythm would hide the rare signature entirely
                drawn = draw_expression(code, rng)
                conditions = resolve_exclusions({**conditions, code: float(rng.beta(1.1, 1.6)), **drawn})
                expression = {c: v for c, v in drawn.items() if c in conditions}
            drafts.append((patient, s, conditions, _date(rng, rng.uniform(0.0, 15 * 365.25), 0.0),
                           bool(rng.random() < HEIGHT_KNOWN), bool(rng.random() < WEIGHT_KNOWN), code, expression))
            pid += 1
    order = rng.permutation(len(drafts))
    drafts = [drafts[i] for i in order]
    strata = [[d[6] + ("_case" if d[6] in d[2] else "_control")] for d in drafts]
    folds = stratified_folds(rng, [d[0].patient_id for d in drafts], strata)
    seeds = record_seeds.spawn(len(drafts))
    return [
        RecordPlan(i + 1, d[0], d[1], d[2], seeds[i], d[3], d[4], d[5], int(folds[i]), d[6], d[7])
        for i, d in enumerate(drafts)
    ]
