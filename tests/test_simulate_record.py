"""One simulated record: shape, determinism, ground truth meeting each condition's criterion, masks."""

import numpy as np
import pytest

from ecgstudy.simulate import default_sites, sample_patient, simulate_record
from ecgstudy.simulate.effects import qrs_leads
from ecgstudy.simulate.leads import LEADS
from ecgstudy.simulate.record import build_physiology


def _patient(seed: int, sex: int = 0, age: float = 55.0):
    return sample_patient(np.random.default_rng(1000 + seed), patient_id=seed, age=age, sex=sex)


def _record(conditions, seed=0, noise=False, site=0, sex=0):
    rng = np.random.default_rng(seed)
    return simulate_record(rng, conditions, _patient(seed, sex), default_sites()[site], noise=noise)


def test_shape_units_and_limb_identities():
    rec = _record({"IMI": 0.5}, noise=True)
    assert rec.signal.shape == (12, 5000) and rec.fs == 500
    assert rec.counts.dtype.kind == "i"
    c = rec.counts.astype(int)
    assert np.array_equal(c[2], c[1] - c[0])
    assert np.array_equal(2 * c[3], -(c[0] + c[1]))
    assert np.array_equal(2 * c[4], 2 * c[0] - c[1])
    assert np.array_equal(2 * c[5], 2 * c[1] - c[0])
    assert np.allclose(rec.signal, rec.counts / 1000.0)
    assert 0.2 < np.ptp(rec.signal[1]) < 8.0  # an ECG in millivolts, not volts or microvolts
    for key in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "axis_deg", "rhythm", "codes"):
        assert key in rec.truth


def test_same_seed_same_record_and_other_seed_differs():
    a, b = _record({"CLBBB": 0.4}, seed=3, noise=True), _record({"CLBBB": 0.4}, seed=3, noise=True)
    assert np.array_equal(a.counts, b.counts) and a.truth == b.truth and a.masks == b.masks
    c = simulate_record(np.random.default_rng(4), {"CLBBB": 0.4}, _patient(3), default_sites()[0], noise=True)
    assert not np.array_equal(a.counts, c.counts)


CRITERIA = {
    "1AVB": lambda t: t["pr_ms"] > 200,
    "CLBBB": lambda t: t["qrs_ms"] >= 120,
    "CRBBB": lambda t: t["qrs_ms"] >= 120,
    "IRBBB": lambda t: 110 <= t["qrs_ms"] < 120,
    "LAFB": lambda t: -90 <= t["axis_deg"] <= -45 and t["qrs_ms"] < 120,
    "SBRAD": lambda t: t["hr_bpm"] < 60,
    "STACH": lambda t: t["hr_bpm"] > 100,
    "LNGQT": lambda t: t["qtc_ms"] >= 450,
    "WPW": lambda t: t["pr_ms"] < 120 and t["qrs_ms"] > 110,
    "LVOLT": lambda t: t["limb_qrs_mv"] <= 0.5,
    "RVH": lambda t: t["axis_deg"] > 90,
    "AFIB": lambda t: np.isnan(t["pr_ms"]) and t["rhythm"] == "AFIB",
    "PACE": lambda t: t["rhythm"] == "PACE" and t["qrs_ms"] >= 120,
}


@pytest.mark.parametrize("code", sorted(CRITERIA))
@pytest.mark.parametrize("severity", [0.0, 1.0])
def test_ground_truth_meets_the_criterion_down_to_borderline(code, severity):
    for seed in (0, 1):
        rec = _record({code: severity}, seed=seed)
        assert code in rec.truth["codes"]
        assert CRITERIA[code](rec.truth), (code, severity, seed, rec.truth)
        assert "NORM" not in rec.truth["codes"] or code in ("SBRAD", "STACH")


def test_healthy_record_is_norm_and_sr():
    for seed in range(4):
        truth = _record({}, seed=seed).truth
        assert truth["rhythm"] == "SR" and 60 <= truth["hr_bpm"] <= 100
        assert 120 <= truth["pr_ms"] <= 200 and truth["qrs_ms"] < 110
        assert "SR" in truth["codes"]
        assert ("NORM" in truth["codes"]) == ("LVOLT" not in truth["codes"])


def test_exclusions_and_bad_input():
    truth = _record({"AFIB": 0.5, "1AVB": 0.5}).truth
    assert "AFIB" in truth["codes"] and "1AVB" not in truth["codes"] and "SR" not in truth["codes"]
    with pytest.raises(ValueError, match="unknown condition"):
        _record({"NOPE": 0.5})
    with pytest.raises(ValueError, match="severity"):
        _record({"LVH": 1.5})


def test_severity_orders_the_physiology():
    mild, severe = _record({"1AVB": 0.1}).truth, _record({"1AVB": 0.9}).truth
    assert severe["pr_ms"] > mild["pr_ms"] + 80
    mild, severe = _record({"CLBBB": 0.0}).truth, _record({"CLBBB": 1.0}).truth
    assert severe["qrs_ms"] > mild["qrs_ms"] + 30


def test_lvh_raises_sokolow_lyon_voltage():
    base = np.median([_record({}, seed=s).truth["sokolow_mv"] for s in range(5)])
    lvh = np.median([_record({"LVH": 0.8}, seed=s).truth["sokolow_mv"] for s in range(5)])
    assert lvh > base + 1.0 and lvh > 3.5


@pytest.mark.parametrize(
    "code, leads", [("IMI", {"II", "III", "aVF"}), ("ASMI", {"V1", "V2", "V3"}), ("AMI", {"V2", "V3", "V4"})]
)
def test_infarct_masks_point_at_the_territory_where_the_qrs_changes(code, leads, monkeypatch):
    from ecgstudy.simulate import lvef

    monkeypatch.setattr(lvef, "LOSS", {})  # keep the infarct's own effect apart from a lower LVEF's
    rec = _record({code: 0.8}, seed=2)
    rows = [r for r in rec.masks if r[0] == code]
    assert {r[1] for r in rows} == leads
    assert all(0.0 <= s < e <= 10.0 for _, _, s, e in rows)
    # the signal changes most in those leads: same patient and draws, with and without the infarct
    patient = _patient(2)
    normal = qrs_leads(build_physiology(np.random.default_rng(7), {}, patient))
    infarct = qrs_leads(build_physiology(np.random.default_rng(7), {code: 0.8}, patient))
    n = min(normal.shape[1], infarct.shape[1])
    change = np.abs(infarct[:, :n] - normal[:, :n]).max(axis=1)
    top = {LEADS[i] for i in np.argsort(change)[::-1][:4]}
    assert leads <= top, (code, dict(zip(LEADS, change.round(2))))


def test_mask_spans_follow_the_beats():
    rec = _record({"CLBBB": 0.5, "1AVB": 0.5}, seed=5)
    qrs = [(s, e) for c, lead, s, e in rec.masks if c == "CLBBB" and lead == "V6"]
    visible = rec.schedule.qrs_t[(rec.schedule.qrs_t > 0.05) & (rec.schedule.qrs_t < 9.3)]
    assert len(qrs) >= visible.size
    for t in visible:  # every complex starts inside a CLBBB span
        assert any(s - 1e-6 <= t <= e for s, e in qrs)
    pr = [(s, e) for c, lead, s, e in rec.masks if c == "1AVB" and lead == "II"]
    assert pr and all(0.15 < e - s < 0.5 for s, e in pr if 0 < s and e < 10)


def test_rare_signatures_are_where_the_criteria_look():
    def st_level(rec, lead, after_j_s):
        k = LEADS.index(lead)
        t = rec.schedule.qrs_t + rec.truth["qrs_ms"] / 1000.0 + after_j_s
        idx = (t[(t > 0) & (t < 9.9)] * rec.fs).astype(int)
        return float(np.median(rec.signal[k, idx]))

    base, brugada = _record({}, seed=8), _record({"BRUGADA": 0.5, "BRUGADA_TYPE1": 0.5}, seed=8)
    assert st_level(brugada, "V1", 0.02) > st_level(base, "V1", 0.02) + 0.15
    assert abs(st_level(brugada, "V5", 0.02) - st_level(base, "V5", 0.02)) < 0.05
    hyperk = _record({"HYPERK": 0.6, "HYPERK_ECG": 0.6}, seed=8)
    t_wave = lambda r: max(st_level(r, "V3", dt) for dt in np.arange(0.05, 0.3, 0.01))  # noqa: E731
    assert t_wave(hyperk) > 1.5 * t_wave(base)
    assert "BRUGADA" in brugada.truth["codes"] and "NORM" not in brugada.truth["codes"]


def test_sites_differ_in_bandwidth_and_mains():
    def power(rec, f_lo, f_hi):
        spec = np.abs(np.fft.rfft(rec.signal[6])) ** 2
        f = np.fft.rfftfreq(rec.signal.shape[1], 1.0 / rec.fs)
        return spec[(f >= f_lo) & (f < f_hi)].mean()

    univ, clinic, ext = (_record({}, seed=9, noise=True, site=s) for s in range(3))
    assert power(clinic, 70, 120) < 0.1 * power(univ, 70, 120)  # 250 Hz device with a 40 Hz low-pass
    assert power(univ, 49.5, 50.5) > 5 * power(univ, 59.5, 60.5)  # 50 Hz mains in Europe
    assert power(ext, 59.5, 60.5) > 5 * power(ext, 49.5, 50.5)  # 60 Hz mains at the external site
