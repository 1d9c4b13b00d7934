"""Metrics: agreement with scikit-learn, bootstrap intervals that keep rare positives, paired differences."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgstudy.engine import evaluate


def _scores(y, signal, rng):
    """Scores that rank positives higher by ``signal`` standard deviations."""
    return y * signal + rng.normal(size=y.shape)


def test_fast_metrics_equal_sklearn_including_ties():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(4, 80))
        y = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(int)
        if y.min() == y.max():
            continue
        s = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse scores -> many ties
        assert evaluate.auroc_1d(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert evaluate.auprc_1d(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        checked += 1
    assert checked > 250


def test_macro_skips_labels_without_both_classes():
    rng = np.random.default_rng(1)
    y = (rng.random((50, 3)) < 0.4).astype(int)
    y[:, 2] = 0  # no positive: not evaluable
    s = _scores(y, 1.0, rng)
    per = evaluate.per_label(y, s, "auroc")
    assert np.isnan(per[2]) and np.isfinite(per[:2]).all()
    assert evaluate.macro(y, s) == pytest.approx(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(2)]))
    assert evaluate.summarize(y, s, n_boot=20)["n_labels"] == 2
    assert evaluate.macro_fast(y, s) == pytest.approx(evaluate.macro(y, s), abs=1e-12)


def test_bootstrap_resamples_always_keep_a_rare_positive():
    n = 40
    y = np.zeros((n, 2), int)
    y[:20, 0] = 1
    y[7, 1] = 1  # label 1 has a single positive: a naive resample misses it with p = (39/40)^40 ~ 0.36
    idx = evaluate.bootstrap_indices(y, n_boot=200, seed=3)
    assert idx.shape == (200, n)
    assert all(y[i, 1].sum() >= 1 and y[i, 1].sum() < n for i in idx)
    assert all(0 < y[i, 0].sum() < n for i in idx)
    naive = np.random.default_rng(3).integers(0, n, size=(200, n))
    assert sum(y[i, 1].sum() == 0 for i in naive) > 20  # the rule matters for this label


def test_bootstrap_ci_contains_point_and_is_seeded():
    rng = np.random.default_rng(2)
    y = (rng.random((120, 4)) < 0.2).astype(int)
    s = _scores(y, 1.5, rng)
    a = evaluate.bootstrap_ci(y, s, "auroc", n_boot=150, seed=11)
    b = evaluate.bootstrap_ci(y, s, "auroc", n_boot=150, seed=11)
    c = evaluate.bootstrap_ci(y, s, "auroc", n_boot=150, seed=12)
    assert a == b and a != c
    assert a["low"] <= a["point"] <= a["high"]
    assert 0.5 < a["point"] < 1.0 and a["high"] - a["low"] > 0.01
    summary = evaluate.summarize(y, s, n_boot=100, seed=0)
    for metric in ("auroc", "auprc"):
        assert 0 <= summary[f"{metric}_low"] <= summary[metric] <= summary[f"{metric}_high"] <= 1


def test_wider_interval_with_fewer_records():
    rng = np.random.default_rng(4)
    y = (rng.random((800, 1)) < 0.3).astype(int)
    s = _scores(y, 1.0, rng)
    wide = evaluate.bootstrap_ci(y[:80], s[:80], n_boot=200, seed=0)
    narrow = evaluate.bootstrap_ci(y, s, n_boot=200, seed=0)
    assert wide["high"] - wide["low"] > narrow["high"] - narrow["low"]


def test_paired_bootstrap_detects_a_better_model_and_not_an_identical_one():
    rng = np.random.default_rng(5)
    y = (rng.random((300, 3)) < 0.3).astype(int)
    good, weak = _scores(y, 2.0, rng), _scores(y, 0.3, rng)
    same = evaluate.paired_bootstrap(y, good, good, n_boot=100, seed=0)
    assert same["diff"] == 0 and same["low"] == 0 and same["high"] == 0
    better = evaluate.paired_bootstrap(y, good, weak, n_boot=100, seed=0)
    assert better["diff"] > 0.1 and better["low"] > 0 and better["p_value"] < 0.05
    assert better["diff"] == pytest.approx(evaluate.macro(y, good) - evaluate.macro(y, weak))


def test_lists_of_score_sets_average_repeats():
    rng = np.random.default_rng(6)
    y = (rng.random((100, 1)) < 0.3).astype(int)
    sets = [_scores(y, 1.0, rng) for _ in range(3)]
    res = evaluate.bootstrap_ci(y, sets, n_boot=50, seed=0)
    assert res["point"] == pytest.approx(np.mean([evaluate.macro(y, s) for s in sets]))
    assert res["low"] <= res["point"] <= res["high"]


def test_impossible_bootstrap_and_bad_input_fail_clearly():
    y = np.zeros((40, 1), int)
    y[0] = 1  # each draw keeps the positive with p ~ 0.64: 100 resamples in one try each cannot all succeed
    with pytest.raises(ValueError, match="after 1 draws"):
        evaluate.bootstrap_indices(y, n_boot=100, seed=0, max_tries=1)
    with pytest.raises(ValueError, match="differ in shape"):
        evaluate.macro(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.bootstrap_ci(y, y.astype(float), "f1")
