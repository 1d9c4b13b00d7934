"""neurokit2 measurement: it recovers the simulated heart rate and the interval shifts per condition."""

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data.measure import interval_table, measure_intervals
from ecgstudy.simulate import default_sites, sample_patient, simulate_record

N = 10  # records per condition


def _records(conditions, n=N, noise=True, fs_site=0):
    site = default_sites()[fs_site]
    out = []
    for i in range(n):
        patient = sample_patient(np.random.default_rng(500 + i), patient_id=i, age=60.0)
        out.append(simulate_record(np.random.default_rng(i), conditions, patient, site, noise=noise))
    return out


def _measured(conditions):
    recs = _records(conditions)
    frame = pd.DataFrame([measure_intervals(r.signal, r.fs) for r in recs])
    truth = pd.DataFrame([r.truth for r in recs])
    return frame, truth


@pytest.fixture(scope="module")
def norm():
    return _measured({})


def test_recovers_the_intended_heart_rate(norm):
    frame, truth = norm
    assert frame.hr_bpm.notna().all()
    assert (frame.hr_bpm - truth.hr_bpm).abs().max() < 5.0
    for code in ("STACH", "SBRAD", "AFIB"):
        f, t = _measured({code: 0.6})
        assert (f.hr_bpm - t.hr_bpm).abs().median() < 5.0, code


def test_intervals_are_plausible_and_near_the_truth(norm):
    frame, truth = norm
    assert frame.pr_ms.between(100, 240).all() and frame.qrs_ms.between(50, 130).all()
    assert frame.qt_ms.between(300, 500).all()
    assert abs(frame.pr_ms.median() - truth.pr_ms.median()) < 30


@pytest.mark.parametrize(
    "code, column, min_shift",
    [("CLBBB", "qrs_ms", 8.0), ("CRBBB", "qrs_ms", 8.0), ("1AVB", "pr_ms", 60.0), ("LNGQT", "qt_ms", 30.0)],
)
def test_interval_shift_per_condition(norm, code, column, min_shift):
    frame, _ = _measured({code: 0.6})
    assert frame[column].median() > norm[0][column].median() + min_shift


def test_atrial_fibrillation_is_irregular(norm):
    frame, _ = _measured({"AFIB": 0.5})
    assert frame.rr_cv.median() > 3 * norm[0].rr_cv.median()
    assert frame.rr_cv.median() > 0.1


def test_unmeasurable_signals_give_nan():
    flat = np.zeros((12, 5000))
    assert all(np.isnan(v) for v in measure_intervals(flat, 500).values())
    short = _records({}, n=1, noise=False)[0].signal[:, :500]  # one second: too few beats
    assert all(np.isnan(v) for v in measure_intervals(short, 500).values())
    nan_lead = np.full((12, 1000), np.nan)
    assert np.isnan(measure_intervals(nan_lead, 100)["hr_bpm"])
    with pytest.raises(ValueError, match="lead"):
        measure_intervals(flat, 500, lead="V7")


def test_interval_table_on_arrays_at_100_hz():
    from ecgstudy.simulate.writer import downsample

    recs = _records({}, n=4) + _records({"1AVB": 0.7}, n=4)
    signals = np.stack([downsample(r.counts, 500, 100, 2) / 1000.0 for r in recs]).astype(np.float32)
    labels = pd.DataFrame({"y_NORM": [1] * 4 + [0] * 4, "y_1AVB": [0] * 4 + [1] * 4,
                           "gt_pr_ms": [r.truth["pr_ms"] for r in recs]})
    table = interval_table((signals, labels, 100), ["NORM", "1AVB"], n_per_code=3)
    assert list(table.index) == ["NORM", "1AVB"]
    assert table.loc["NORM", "n_records"] == 3 and table.loc["1AVB", "n_measured"] == 3
    assert table.loc["1AVB", "pr_ms"] > table.loc["NORM", "pr_ms"] + 50
    assert table.loc["1AVB", "gt_pr_ms"] > 200
    # the global P wave, on the same sampled records as the intended median
    assert abs(table.loc["NORM", "global_pr_ms"] - table.loc["NORM", "gt_pr_ms"]) <= 15
    # PR beyond the median beat's window: too few measured, so no median over a selected minority
    assert table.loc["1AVB", "n_measured_global_pr"] < 2 and np.isnan(table.loc["1AVB", "global_pr_ms"])
    table2 = interval_table((signals, {"NORM": labels.y_NORM.to_numpy()}, 100), ["NORM"], n_per_code=10)
    assert table2.loc["NORM", "n_records"] == 4
    with pytest.raises(KeyError, match="y_LVH"):
        interval_table((signals, labels, 100), ["LVH"])


# ----------------------------------------------------------------- global (12-lead) measurer vs intended
from ecgstudy.data.measure import GLOBAL_MEASURES, measure_global  # noqa: E402


def _global(conditions, fs=500, n=6):
    from ecgstudy.simulate.writer import downsample

    rows, truth = [], []
    for i in range(n):
        site = default_sites()[i % 3]
        patient = sample_patient(np.random.default_rng(700 + i), patient_id=i)
        rec = simulate_record(np.random.default_rng(i), conditions, patient, site)
        sig = rec.signal if fs == 500 else downsample(rec.counts, 500, fs, site.lsb_uv) / 1000.0
        rows.append(measure_global(sig, fs))
        truth.append(rec.truth)
    return pd.DataFrame(rows).median(), pd.DataFrame(truth)[["qrs_ms", "qt_ms", "sokolow_mv", "limb_qrs_mv"]].median()


@pytest.mark.parametrize("fs", [500, 100])
@pytest.mark.parametrize("conditions", [{}, {"CRBBB": 0.5}, {"CLBBB": 0.5}, {"IRBBB": 0.5}, {"LVH": 0.7}])
def test_global_qrs_and_voltages_measure_what_was_intended(conditions, fs):
    m, gt = _global(conditions, fs)
    assert abs(m.qrs_ms - gt.qrs_ms) <= 20.0, (conditions, m.qrs_ms, gt.qrs_ms)
    assert abs(m.sokolow_mv - gt.sokolow_mv) <= 0.4 and abs(m.limb_qrs_mv - gt.limb_qrs_mv) <= 0.3


def test_complete_bundle_branch_blocks_measure_wide_and_lvh_measures_high():
    norm, _ = _global({})
    for code in ("CRBBB", "CLBBB"):
        m, _ = _global({code: 0.2})
        assert m.qrs_ms >= 120.0 and m.qrs_ms > norm.qrs_ms + 25.0, code
    lvh, _ = _global({"LVH": 0.8})
    assert lvh.sokolow_mv >= 3.5 and lvh.sokolow_mv > norm.sokolow_mv + 1.0


def test_long_qt_measured_by_both_measurers():
    for conditions in ({}, {"LNGQT": 0.6}):
        m, gt = _global(conditions)
        assert abs(m.qt_ms - gt.qt_ms) <= 40.0, (conditions, m.qt_ms, gt.qt_ms)
        frame, truth = _measured(conditions)
        assert abs(frame.qt_ms.median() - truth.qt_ms.median()) <= 35.0


def test_global_measurer_gives_nan_when_it_cannot_measure():
    assert all(np.isnan(v) for v in measure_global(np.zeros((12, 5000)), 500).values())
    assert all(np.isnan(v) for v in measure_global(np.zeros((3, 5000)), 500).values())
    short = _records({}, n=1, noise=False)[0].signal[:, :500]
    assert set(measure_global(short, 500)) == set(GLOBAL_MEASURES)
    assert np.isnan(measure_global(short, 500)["qrs_ms"])


def test_interval_table_has_both_measurers_and_the_intended_values():
    recs = _records({}, n=3) + _records({"CRBBB": 0.5}, n=3)
    signals = np.stack([r.signal for r in recs]).astype(np.float32)
    labels = pd.DataFrame({"y_NORM": [1] * 3 + [0] * 3, "y_CRBBB": [0] * 3 + [1] * 3,
                           "gt_qrs_ms": [r.truth["qrs_ms"] for r in recs],
                           "gt_sokolow_mv": [r.truth["sokolow_mv"] for r in recs]})
    table = interval_table((signals, labels, 500), ["NORM", "CRBBB"], n_per_code=3)
    for col in ("qrs_ms", "global_qrs_ms", "global_qt_ms", "global_sokolow_mv", "gt_qrs_ms", "gt_sokolow_mv"):
        assert col in table.columns
    assert table.loc["CRBBB", "global_qrs_ms"] > table.loc["NORM", "global_qrs_ms"] + 25
    assert abs(table.loc["CRBBB", "global_qrs_ms"] - table.loc["CRBBB", "gt_qrs_ms"]) <= 20


# ----------------------------------------------------------------- per-lead amplitudes
from ecgstudy.data.measure import LEAD_MEASURES, measure_leads  # noqa: E402


def test_lead_amplitudes_follow_the_signal_lead_by_lead():
    rec = _records({}, n=1, noise=False)[0]
    base = measure_leads(rec.signal, rec.fs)
    assert set(base) == set(LEAD_MEASURES)
    for k in GLOBAL_MEASURES:  # the global part is measure_global's
        assert base[k] == pytest.approx(measure_global(rec.signal, rec.fs)[k], nan_ok=True)
    assert abs(base["hr_bpm"] - rec.truth["hr_bpm"]) < 3.0
    assert base["T_II"] > 0.05 and base["T_aVR"] < -0.05  # upright T in II, inverted in aVR (normal)
    assert base["R_II"] > 0.2 and base["S_aVR"] < -0.2
    doubled = rec.signal.copy()
    doubled[8] *= 2.0  # V3 only: the global QRS window barely moves (V3 is one of eight leads)
    m = measure_leads(doubled, rec.fs)
    for kind in ("R", "S", "T"):
        assert m[f"{kind}_V3"] == pytest.approx(2.0 * base[f"{kind}_V3"], rel=0.1, abs=0.02), kind
        assert m[f"{kind}_V5"] == pytest.approx(base[f"{kind}_V5"], rel=0.1, abs=0.02), kind


def test_lead_amplitudes_are_nan_when_the_record_cannot_be_measured():
    assert all(np.isnan(v) for v in measure_leads(np.zeros((12, 5000)), 500).values())
    assert set(measure_leads(np.zeros((12, 5000)), 500)) == set(LEAD_MEASURES)


# ----------------------------------------------------------------- axes and 10-s heart-rate variability
from ecgstudy.data.measure import AXIS_RHYTHM_MEASURES, frontal_axis_from_areas, rmssd_ms  # noqa: E402


def test_frontal_axis_from_areas_is_hexaxial():
    assert frontal_axis_from_areas(1.0, 0.0) == pytest.approx(0.0)
    assert frontal_axis_from_areas(0.0, 1.0) == pytest.approx(90.0)
    assert frontal_axis_from_areas(1.0, -1.0) == pytest.approx(-45.0)
    assert frontal_axis_from_areas(-1.0, 0.0) == pytest.approx(180.0)


def test_rmssd_leaves_out_ectopic_intervals():
    rr = np.array([0.80, 0.82, 0.80, 0.82, 0.80])
    assert rmssd_ms(rr) == pytest.approx(20.0)
    # a premature beat and its compensatory pause: those intervals and their differences are left out
    assert rmssd_ms(np.array([0.80, 0.82, 0.80, 0.48, 1.12, 0.80, 0.82])) == pytest.approx(20.0)
    assert np.isnan(rmssd_ms(np.array([0.8, 0.8])))


def test_measured_axes_follow_the_intended_qrs_axis_and_the_t_wave():
    from ecgstudy.simulate import sample_patient, simulate_record

    for seed, age in ((3, 25.0), (4, 80.0)):
        p = sample_patient(np.random.default_rng(seed), seed, age=age)
        rec = simulate_record(np.random.default_rng(seed), {}, p)
        m = measure_leads(rec.signal, rec.fs)
        assert set(AXIS_RHYTHM_MEASURES) <= set(m)
        assert m["qrs_axis_deg"] == pytest.approx(rec.truth["axis_deg"], abs=6.0)
        assert -30.0 < m["t_axis_deg"] < 110.0  # a normal T, concordant with a normal QRS
        d = (m["t_axis_deg"] - m["qrs_axis_deg"] + 180.0) % 360.0 - 180.0
        assert m["qrs_t_angle_deg"] == pytest.approx(abs(d))
        assert 2.0 < m["rmssd_ms"] < 150.0
    flipped = rec.signal.copy()
    flipped[[0, 5]] *= -1.0  # I and aVF inverted: every frontal axis turns by 180 deg, the angle stays
    f = measure_leads(flipped, rec.fs)
    assert abs((f["qrs_axis_deg"] - m["qrs_axis_deg"]) % 360.0 - 180.0) < 1.0
    assert f["qrs_t_angle_deg"] == pytest.approx(m["qrs_t_angle_deg"], abs=1.0)


# ----------------------------------------------------------------- global P wave: PR interval and P duration
from ecgstudy.data.measure import P_WAVE_MEASURES  # noqa: E402
from ecgstudy.simulate.waves import PART_P  # noqa: E402


def _p_records(conditions, n, fs, seed0=900):
    """``n`` records of the default sites at ``fs`` Hz: (measured PR, P duration; intended PR, P duration), (n, 4)."""
    from ecgstudy.simulate.writer import downsample

    out = []
    for i in range(n):
        site = default_sites()[i % 3]
        patient = sample_patient(np.random.default_rng(seed0 + i), patient_id=i)
        rec = simulate_record(np.random.default_rng(seed0 + i), conditions, patient, site)
        sig = rec.signal if fs == 500 else downsample(rec.counts, 500, fs, site.lsb_uv) / 1000.0
        m = measure_leads(sig, fs)
        on, off = rec.physiology.p.onset_offset(PART_P)
        out.append((m["pr_ms"], m["p_ms"], rec.truth["pr_ms"], 1000.0 * (off - on)))
    return np.array(out)


@pytest.mark.parametrize("fs", [500, 100])
def test_pr_and_p_duration_measure_what_was_intended(fs):
    a = _p_records({}, 30, fs)
    assert set(P_WAVE_MEASURES) <= set(LEAD_MEASURES)
    ok = np.isfinite(a[:, 0]) & np.isfinite(a[:, 1])
    assert ok.mean() >= 0.9  # sinus records: a P wave nearly always found
    pr, p, pr_true, p_true = a[ok].T
    assert np.ptp(pr_true) > 40.0  # the intended PRs spread enough for a correlation to mean something
    assert np.median(np.abs(pr - pr_true)) < 6.0 and np.corrcoef(pr, pr_true)[0, 1] > 0.8
    assert np.median(np.abs(p - p_true)) < 8.0 and np.corrcoef(p, p_true)[0, 1] > 0.5


def test_no_p_wave_in_atrial_fibrillation():
    a = _p_records({"AFIB": 0.5}, 20, 500)
    assert np.isnan(a[:, 0]).mean() >= 0.8 and np.isnan(a[:, 1]).mean() >= 0.8


def test_longer_intended_pr_and_p_give_longer_measured_ones_on_the_same_patient():
    import dataclasses

    patient = sample_patient(np.random.default_rng(3), patient_id=3, age=50.0)

    def measured(pr_ms, p_ms):
        morph = dataclasses.replace(patient.morphology, pr_ms=pr_ms, p_ms=p_ms)
        rec = simulate_record(np.random.default_rng(3), {}, dataclasses.replace(patient, morphology=morph))
        m = measure_leads(rec.signal, rec.fs)
        return m["pr_ms"], m["p_ms"]

    prs = [measured(pr, 95.0)[0] for pr in (125.0, 150.0, 175.0, 200.0)]
    assert np.all(np.diff(prs) > 15.0) and np.all(np.diff(prs) < 35.0), prs
    ps = [measured(180.0, p)[1] for p in (80.0, 100.0, 120.0)]
    assert np.all(np.diff(ps) > 10.0) and np.all(np.diff(ps) < 30.0), ps


def test_p_wave_is_nan_without_a_beat_locked_p_wave():
    import dataclasses

    found, missing = [], []
    for i in range(6):  # the same patients with their P wave, and without it (P amplitude 0, noise on)
        patient = sample_patient(np.random.default_rng(40 + i), patient_id=i)
        for p_amp, out in ((patient.morphology.p_amp, found), (0.0, missing)):
            morph = dataclasses.replace(patient.morphology, p_amp=p_amp)
            rec = simulate_record(np.random.default_rng(40 + i), {}, dataclasses.replace(patient, morphology=morph),
                                  default_sites()[i % 3])
            out.append(measure_leads(rec.signal, rec.fs)["pr_ms"])
    assert np.isfinite(found).all() and np.isnan(missing).mean() >= 0.8, (found, missing)
    noise = 0.05 * np.random.default_rng(0).standard_normal((12, 5000))  # no QRS: nothing measured, no error
    assert np.isnan(measure_leads(noise, 500)["pr_ms"])
    paced = _p_records({"PACE": 0.5}, 6, 500)
    assert np.isnan(paced[:, 0]).mean() >= 0.5
