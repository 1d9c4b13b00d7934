"""Rare clinical diagnoses with probabilistic ECG expression, borderline negatives, per-site reading conventions.

Rates are checked on plan-level draws (no signals); a few noise-free records check what the effects put
on the ECG. Tolerances are 4 binomial standard errors around the documented rate.
"""

import dataclasses
import json

import numpy as np
import pytest

from ecgstudy.simulate import default_sites, sample_patient, simulate_record
from ecgstudy.simulate.annotate import CONVENTIONS, OVERCALLED_AS, AnnotatorConfig, annotate
from ecgstudy.simulate.clinical import DIAGNOSES, draw_expression
from ecgstudy.simulate.clinical_effects import P_MITRALE_MS, P_PULMONALE_MV, p_leads
from ecgstudy.simulate.conditions import (
    BORDERLINE_CODES,
    CATALOGUE,
    EXPRESSION_CODES,
    RARE_CODES,
    complete_truth,
    sample_conditions,
)
from ecgstudy.simulate.database import truth_row
from ecgstudy.simulate.devices import acquire
from ecgstudy.simulate.plan import plan_rare
from ecgstudy.simulate.rare import EPSILON_SIGMA_S
from ecgstudy.simulate.waves import PART_P, PART_SPIKE, PART_T, render
from ecgstudy.simulate.writer import resample

UCSF = ("CARCINOID", "CONSTRICT", "RHEUMMS")


def _within(count: int, n: int, p: float) -> bool:
    return abs(count / n - p) <= 4.0 * np.sqrt(p * (1.0 - p) / n) + 1e-9


def _rare_plan(codes, n_cases, n_controls=20, seed=0):
    ss = np.random.SeedSequence(seed)
    return plan_rare(np.random.default_rng(seed), ss, default_sites(), codes, n_cases, n_controls, 10_000)


@pytest.fixture(scope="module")
def rare_plan():
    return _rare_plan(RARE_CODES, n_cases=300)


def _record(conditions, seed=0, site=0, sex=0):
    patient = sample_patient(np.random.default_rng(1000 + seed), patient_id=seed, age=55.0, sex=sex)
    return simulate_record(np.random.default_rng(seed), conditions, patient, default_sites()[site], noise=False)


def test_every_diagnosis_is_clinical_and_its_findings_are_catalogued():
    assert set(UCSF) <= set(RARE_CODES) and set(DIAGNOSES) == set(RARE_CODES)
    for code in RARE_CODES:
        assert CATALOGUE[code].kind == "diagnosis" and CATALOGUE[code].effect is None
        for finding in DIAGNOSES[code].findings:
            assert finding.code in CATALOGUE and CATALOGUE[finding.code].effect is not None
            if finding.published is not None:  # a published rate: the simulator's lies within it
                lo, hi = finding.published
                assert lo <= finding.rate <= hi, (code, finding)
    for code in EXPRESSION_CODES:
        assert CATALOGUE[code].expresses in RARE_CODES


@pytest.mark.parametrize("code", sorted(DIAGNOSES))
def test_expression_rates_match_the_published_frequencies(code):
    rng = np.random.default_rng(5)
    n = 3000
    draws = [draw_expression(code, rng) for _ in range(n)]
    for finding in DIAGNOSES[code].findings:
        count = sum(finding.code in d for d in draws)
        assert _within(count, n, finding.rate), (code, finding.code, count / n)
    silent = sum(not d for d in draws) / n
    assert 0.05 < silent < 0.75, (code, silent)  # ECG-silent cases exist, but not all are silent


def test_brugada_type1_is_intermittent_and_hyperkalaemia_often_silent():
    rng = np.random.default_rng(2)
    n = 4000
    brugada = [draw_expression("BRUGADA", rng) for _ in range(n)]
    type1 = sum("BRUGADA_TYPE1" in d for d in brugada) / n
    type2 = sum("BRUGADA_TYPE2" in d for d in brugada) / n
    assert 0.20 < type1 < 0.28 and 0.21 < type2 < 0.29  # Richter 2009: 24 % and 25 % of ECGs
    assert 0.46 < 1.0 - type1 - type2 < 0.56  # and 51 % normal
    assert all(len(d) <= 1 for d in brugada)  # one pattern per ECG
    hyperk = [draw_expression("HYPERK", rng) for _ in range(n)]
    silent = sum(not d for d in hyperk) / n
    assert 0.45 < silent < 0.57  # Montague 2008: 48 % without any ECG change; Acker 1998: 54 %


def test_rare_plan_label_is_the_diagnosis_and_expression_is_kept_apart(rare_plan):
    for code in RARE_CODES:
        cases = [p for p in rare_plan if p.case_control_set == code and code in p.conditions]
        controls = [p for p in rare_plan if p.case_control_set == code and code not in p.conditions]
        assert len(cases) == 300 and len(controls) == 20
        assert all(set(p.expression) <= set(p.conditions) for p in cases)
        assert all(not p.expression and not set(p.conditions) & set(EXPRESSION_CODES) for p in controls)
        silent = [p for p in cases if not p.expression]
        assert silent, code  # ECG-silent cases
        assert any(p.expression for p in cases), code
        for p in cases:  # the truth keeps the diagnosis, whatever the ECG shows
            assert code in complete_truth(p.conditions)
    hyperk = [p for p in rare_plan if p.case_control_set == "HYPERK" and "HYPERK" in p.conditions]
    assert 0.40 < np.mean(["HYPERK_ECG" not in p.expression for p in hyperk]) < 0.60
    brugada = [p for p in rare_plan if p.case_control_set == "BRUGADA" and "BRUGADA" in p.conditions]
    assert 0.14 < np.mean(["BRUGADA_TYPE1" in p.expression for p in brugada]) < 0.34


def test_ucsf_expression_is_non_specific(rare_plan):
    """Every UCSF finding also occurs in someone without the diagnosis (background rates)."""
    background = [p.conditions for p in rare_plan if not set(p.conditions) & set(RARE_CODES)]
    rng = np.random.default_rng(3)
    background += [sample_conditions(rng, 65.0, int(rng.integers(2)), 27.0) for _ in range(3000)]
    for code in UCSF:
        for finding in DIAGNOSES[code].findings:
            assert any(finding.code in c for c in background), (code, finding.code)
    afib_constrict = np.mean([
        "AFIB" in p.expression for p in rare_plan if p.case_control_set == "CONSTRICT" and p.expression is not None
        and "CONSTRICT" in p.conditions
    ])
    assert 0.15 < afib_constrict < 0.35


def test_truth_row_records_expression_and_borderline_separately(rare_plan):
    plan = next(p for p in rare_plan if p.expression)
    row = truth_row(plan, {"codes": complete_truth(plan.conditions), "rhythm": "SR", **dict.fromkeys(
        ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg", "sokolow_mv", "limb_qrs_mv"), 1.0),
        "lvef": 60.0, "lvef40": 0}, None)
    assert set(json.loads(row["ecg_expression"])) == set(plan.expression)
    assert plan.case_control_set in json.loads(row["true_scp_codes"])
    assert not set(json.loads(row["true_scp_codes"])) & set(BORDERLINE_CODES)


def test_same_seed_same_rare_plan():
    a, b, c = _rare_plan(("CARCINOID", "BRUGADA"), 10, 5, 3), _rare_plan(("CARCINOID", "BRUGADA"), 10, 5, 3), \
        _rare_plan(("CARCINOID", "BRUGADA"), 10, 5, 4)
    def key(plans):
        return [(p.patient, p.conditions, p.expression, p.strat_fold, p.case_control_set) for p in plans]

    assert key(a) == key(b) and key(a) != key(c)


# ------------------------------------------------------------------------------------- ECG effects
def _epsilon_peak(site_index: int, fs_store: int) -> tuple[float, float]:
    """(analogue peak, stored peak) of the epsilon wave alone through a site's device, V1, mV."""
    rec = _record({"ARVC": 0.5, "ARVC_EPSILON": 1.0}, seed=4)
    eps = rec.physiology.qrs.of(PART_SPIKE)
    assert len(eps) == 3
    site = default_sites()[site_index]
    n = 2 * site.native_fs
    chans = render(eps, -0.5, site.native_fs, n)
    eight = np.zeros((8, n))
    eight[2:] = chans[3:]
    stored = acquire(eight, site, 500)
    if fs_store != 500:
        stored = resample(stored, 500, fs_store)
    return float(np.abs(chans[3]).max()), float(np.abs(stored[2]).max())


def test_epsilon_waves_survive_500_hz_but_not_100_hz_or_a_40_hz_low_pass():
    analogue, diagnostic = _epsilon_peak(0, 500)  # university: 0.05-150 Hz, stored at 500 Hz
    assert analogue > 0.09 and diagnostic > 0.6 * analogue
    _, copy_100 = _epsilon_peak(0, 100)  # the records100 copy of the same record
    _, filtered = _epsilon_peak(1, 500)  # community device: 0.5-40 Hz
    assert copy_100 < 0.3 * diagnostic and filtered < 0.3 * diagnostic
    assert EPSILON_SIGMA_S < 0.002


def test_epsilon_wave_is_local_to_the_right_precordial_leads():
    rec = _record({"ARVC": 0.5, "ARVC_EPSILON": 0.5}, seed=6)
    eps = rec.physiology.qrs.of(PART_SPIKE)
    local = np.abs(eps.amp[:, 3:])  # V1..V6
    assert np.all(eps.amp[:, :3] == 0) and np.all(local[:, 4:] == 0)  # non-dipolar, right precordial
    assert np.all(local[:, 0] >= local[:, 3])
    assert np.all(eps.t > 0.06)  # after the depolarisation has begun, tied to the QRS


def test_brugada_type1_shows_on_the_ecg_and_a_silent_diagnosis_does_not():
    def level(rec, lead_index, after_onset_s):
        t = rec.schedule.qrs_t + after_onset_s
        idx = (t[(t > 0) & (t < 9.9)] * rec.fs).astype(int)
        return float(np.median(rec.signal[lead_index, idx]))

    def st_level(rec, lead_index, after_j_s):
        """ST level after the J point against the PR segment (20 ms before QRS onset), as ST is read: the
        device's high-pass removes each lead's mean, so an absolute level understates a sustained shift."""
        return level(rec, lead_index, rec.truth["qrs_ms"] / 1000.0 + after_j_s) - level(rec, lead_index, -0.02)

    silent, type1 = _record({"BRUGADA": 0.5}, seed=8), _record({"BRUGADA": 0.5, "BRUGADA_TYPE1": 0.5}, seed=8)
    healthy = _record({}, seed=8)
    assert np.array_equal(silent.signal, healthy.signal)  # a diagnosis alone changes nothing on the ECG
    assert st_level(type1, 6, 0.02) > st_level(healthy, 6, 0.02) + 0.15  # V1
    saddle = _record({"BRUGADA": 0.5, "BRUGADA_TYPE2": 0.0}, seed=8)
    assert 0.04 < st_level(saddle, 7, 0.04) - st_level(healthy, 7, 0.04) < st_level(type1, 7, 0.02)  # >= 0.05 mV intended


def test_atrial_abnormality_and_t_wave_change_meet_their_criteria():
    for seed in (0, 1, 2):
        lae = _record({"LAO/LAE": 0.0}, seed=seed).physiology
        on, off = lae.p.onset_offset(PART_P)
        assert 1000.0 * (off - on) >= P_MITRALE_MS and lae.pr_s >= off - on
        assert p_leads(lae)[6].min() < -0.04  # terminal negative P in V1
        rae = _record({"RAO/RAE": 0.0}, seed=seed).physiology
        assert p_leads(rae)[1].max() >= P_PULMONALE_MV
        nt = _record({"NT_": 1.0}, seed=seed).physiology
        base = _record({}, seed=seed).physiology
        sel = (nt.t.part == PART_T) & ~nt.t.plateau
        assert np.allclose(nt.t.amp[sel], -0.4 * base.t.amp[sel])


BORDER = {
    "BL_1AVB": lambda t, limit: 190.0 <= t["pr_ms"] < 200.0,
    "BL_QRS": lambda t, limit: 110.0 <= t["qrs_ms"] < 120.0,
    "BL_LNGQT": lambda t, limit: limit - 20.0 < t["qtc_ms"] < limit,
    "BL_LVH": lambda t, limit: 2.95 <= t["sokolow_mv"] < 3.5,
}


@pytest.mark.parametrize("code", sorted(BORDER))
def test_borderline_negatives_fall_just_below_the_criterion(code):
    for seed, sex, sev in ((0, 0, 0.0), (1, 1, 1.0), (2, 0, 1.0)):
        rec = _record({code: sev}, seed=seed, sex=sex)
        assert BORDER[code](rec.truth, 460.0 if sex else 450.0), (code, seed, rec.truth)
        assert rec.truth["codes"] == {"NORM": 1.0, "SR": 1.0}  # no code: a negative


def test_borderline_negatives_occur_in_the_main_cohort_without_their_criterion():
    rng = np.random.default_rng(7)
    draws = [sample_conditions(rng, 62.0, int(rng.integers(2)), 26.0) for _ in range(3000)]
    criterion = {"BL_1AVB": "1AVB", "BL_LNGQT": "LNGQT", "BL_LVH": "LVH", "BL_QRS": "CLBBB"}
    for code, crit in criterion.items():
        share = np.mean([code in d for d in draws])
        assert 0.01 < share < 0.06, (code, share)
        assert not any(code in d and crit in d for d in draws)


# ------------------------------------------------------------------------------------- annotators
def _report_share(code, truth, measures, convention, n=3000, seed=0, cfg=None):
    rng = np.random.default_rng(seed)
    cfg = cfg or AnnotatorConfig(false_positive_rate=0.0)
    return np.mean([code in annotate(rng, truth, measures.get("sokolow_mv", 2.0), cfg,
                                     convention=CONVENTIONS[convention], measures=measures) for _ in range(n)])


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_true_and_reported_labels_differ_at_each_conventions_documented_rate(name):
    conv, cfg, n = CONVENTIONS[name], AnnotatorConfig(false_positive_rate=0.0), 3000
    measures = {"sokolow_mv": 2.0, "cornell_mv": 1.0, "qtc_ms": 400.0, "female": False}
    missed = 1.0 - _report_share("1AVB", complete_truth({"1AVB": 0.0}), measures, name, n=n)
    assert _within(int(round(missed * n)), n, min(1.0, cfg.miss_rate * conv.miss_scale)), (name, missed)
    for bl, called in OVERCALLED_AS.items():
        over = _report_share(called, complete_truth({}), {**measures, "borderline": {bl: 0.5}}, name, n=n)
        assert _within(int(round(over * n)), n, conv.overcall_rate), (name, bl, over)


def test_site_thresholds_decide_lvh_and_long_qt():
    tall_sokolow = {"sokolow_mv": 3.8, "cornell_mv": 1.5, "qtc_ms": 462.0, "female": False}
    lvh = complete_truth({"LVH": 0.8})
    assert _report_share("LVH", lvh, tall_sokolow, "sokolow", n=200) == 1.0
    assert _report_share("LVH", lvh, tall_sokolow, "cornell", n=200) == 0.0  # Cornell voltage not reached
    assert _report_share("LVH", lvh, {**tall_sokolow, "cornell_mv": 3.0}, "cornell", n=200) == 1.0
    lqt = complete_truth({"LNGQT": 0.5})
    assert _report_share("LNGQT", lqt, tall_sokolow, "sokolow", n=200) == 1.0
    assert _report_share("LNGQT", lqt, tall_sokolow, "strict", n=200) == 0.0  # below 470 ms


def test_diagnoses_always_reported_expressions_never():
    rng = np.random.default_rng(0)
    truth = complete_truth({"ARVC": 0.0, "ARVC_EPSILON": 0.0, "BL_1AVB": 0.3})
    for name, conv in CONVENTIONS.items():
        report = annotate(rng, truth, 2.0, AnnotatorConfig(miss_rate=1.0), convention=conv)
        assert "ARVC" in report and not set(report) & (set(EXPRESSION_CODES) | set(BORDERLINE_CODES)), name


def test_default_sites_read_by_different_conventions():
    sites = default_sites()
    assert len({s.convention for s in sites}) == len(sites)
    bad = dataclasses.replace(sites[0], convention="minnesota")
    with pytest.raises(ValueError, match="convention 'minnesota' unknown"):
        bad.validate()
