"""Patient-level bootstrap: exact weighted metrics, cluster draws, no redraw (skips counted), Holm."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgstudy.engine import multiplicity, resample


def test_weighted_metrics_equal_sklearn_on_the_resampled_rows_ties_included():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        n = int(rng.integers(5, 60))
        y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(int)
        s = np.round(rng.random(n), int(rng.integers(1, 3)))  # coarse scores: many ties
        w = rng.integers(0, 4, size=(n, 7))
        got = resample.weighted_metrics(y, s, w)
        for b in range(w.shape[1]):
            rows = np.repeat(np.arange(n), w[:, b])
            yb, sb = y[rows], s[rows]
            if yb.min() == yb.max():
                assert np.isnan(got["auroc"][b]) and np.isnan(got["auprc"][b])
                continue
            assert got["auroc"][b] == pytest.approx(roc_auc_score(yb, sb), abs=1e-12)
            assert got["auprc"][b] == pytest.approx(average_precision_score(yb, sb), abs=1e-12)
            assert got["auroc"][b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[:, b]), abs=1e-12)
            checked += 1
    assert checked > 300


def test_patient_weights_move_whole_patients_and_draw_p_patients():
    patients = np.array(["a", "a", "b", "c", "c", "c", "d"])
    w = resample.patient_weights(patients, 500, seed=1)
    assert w.shape == (7, 500) and w.dtype == np.int32
    assert (w[0] == w[1]).all() and (w[3] == w[4]).all() and (w[4] == w[5]).all()
    per_patient = w[[0, 2, 3, 6]]  # one record per patient
    assert (per_patient.sum(axis=0) == 4).all()  # P = 4 patients drawn in every resample
    assert np.array_equal(w, resample.patient_weights(patients, 500, seed=1))
    assert not np.array_equal(w, resample.patient_weights(patients, 500, seed=2))
    # a patient is missing from about (1 - 1/4)^4 = 32% of resamples
    assert 0.25 < np.mean(w[0] == 0) < 0.39


def test_record_and_patient_bootstrap_differ_when_patients_have_many_records():
    """Ten records per patient, scores shared within a patient: the patient-level interval is wider."""
    rng = np.random.default_rng(3)
    n_pat, per = 40, 10
    y_pat = (rng.random(n_pat) < 0.4).astype(int)
    s_pat = y_pat + rng.normal(size=n_pat)
    y, s = np.repeat(y_pat, per)[:, None], np.repeat(s_pat, per)[:, None]
    patients = np.repeat(np.arange(n_pat), per)
    labels = np.array([0])
    by_patient = resample.resampled_labels(y, s, resample.patient_weights(patients, 400, 0), labels).macro("auroc")
    by_record = resample.resampled_labels(y, s, resample.patient_weights(np.arange(len(y)), 400, 0), labels).macro("auroc")
    assert np.std(by_patient) > 1.8 * np.std(by_record)


def test_a_rare_label_is_skipped_and_counted_never_redrawn():
    n = 40
    y = np.zeros((n, 2), int)
    y[:20, 0] = 1
    y[7, 1] = 1  # one positive patient: absent from ~(39/40)^40 = 36% of resamples
    s = np.random.default_rng(0).random((n, 2))
    w = resample.patient_weights(np.arange(n), 300, seed=4)
    skips = resample.skipped(y, w, np.array([0, 1]))
    assert not skips[:, 0].any() and 0.25 < skips[:, 1].mean() < 0.47
    res = resample.resampled_labels(y, s, w, np.array([0, 1]))
    assert np.isnan(res.values["auroc"][skips[:, 1], 1]).all()
    macro = res.macro("auroc")
    # where label 1 is skipped the macro is label 0 alone, elsewhere the mean of both
    assert np.allclose(macro[skips[:, 1]], res.values["auroc"][skips[:, 1], 0])
    both = ~skips[:, 1]
    assert np.allclose(macro[both], res.values["auroc"][both].mean(axis=1))
    assert res.macro_full("auroc") == pytest.approx(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(2)]))


def test_fixed_label_set_needs_k_of_each_class_in_every_group():
    test = np.zeros((30, 4), int)
    ext = np.zeros((30, 4), int)
    test[:5, 0] = ext[:5, 0] = 1  # 5 positives in both: kept for k <= 5
    test[:9, 1], ext[:2, 1] = 1, 1  # rare on the external site: dropped for k = 3
    test[:28, 2] = ext[:28, 2] = 1  # 2 negatives: dropped for k = 3
    assert resample.fixed_label_set({"test": test, "external": ext}, 3).tolist() == [0]
    assert resample.fixed_label_set({"test": test, "external": ext}, 2).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="different label counts"):
        resample.fixed_label_set({"test": test, "external": ext[:, :3]}, 2)


def test_repeat_counts_draw_r_repeats_per_resample():
    m = resample.repeat_counts(3, 1000, seed=0)
    assert m.shape == (1000, 3) and (m.sum(axis=1) == 3).all()
    assert 0.25 < np.mean(m[:, 0] == 0) < 0.35  # (2/3)^3 = 0.30
    assert (resample.repeat_counts(1, 5, seed=0) == 1).all()


def test_holm_adjusts_like_the_textbook():
    adjusted, levels = multiplicity.holm(np.array([0.01, 0.04, 0.03, 0.005, np.nan]), alpha=0.05)
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(adjusted[4])
    # ranks 1, 2 rejected at alpha/4, alpha/3; Holm stops at rank 3 (0.03 >= 0.05/2): later ones keep that level
    assert levels[:4] == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2, 1 - 0.05 / 4])


def test_adjusted_interval_excludes_zero_exactly_when_holm_rejects():
    rng = np.random.default_rng(7)
    for _ in range(30):
        m = int(rng.integers(1, 12))
        diffs = [rng.normal(rng.normal(0, 0.02), 0.01, size=int(rng.integers(50, 400))) for _ in range(m)]
        p = np.array([multiplicity.bootstrap_p(d) for d in diffs])
        adjusted, levels = multiplicity.holm(p, 0.05)
        for d, p_adj, level in zip(diffs, adjusted, levels):
            low, high = multiplicity.percentile_interval(d, level)
            assert (low > 0 or high < 0) == (p_adj < 0.05)


def test_percentile_interval_is_symmetric_order_statistics():
    values = np.arange(1, 101, dtype=float)  # 1..100
    assert multiplicity.percentile_interval(values, 0.9) == (5.0, 96.0)
    assert multiplicity.percentile_interval(values, 0.999) == (1.0, 100.0)
    assert multiplicity.bootstrap_p(values) == 0.0 and multiplicity.bootstrap_p(values - 50.5) == 1.0


def test_weighted_means_leave_out_undefined_values_and_match_repeated_rows():
    values = np.array([1.0, np.nan, 3.0, 5.0])
    w = np.array([[1, 2, 0], [4, 4, 4], [1, 0, 0], [1, 1, 0]])
    got = resample.weighted_means(values, w)
    # column 0: plain mean of the finite values; column 1: rows repeated by weight; column 2: nothing finite
    assert got[0] == pytest.approx(3.0) and got[1] == pytest.approx(np.mean([1.0, 1.0, 5.0]))
    assert np.isnan(got[2])
    with pytest.raises(ValueError, match="3 values for 4 weight rows"):
        resample.weighted_means(values[:3], w)
