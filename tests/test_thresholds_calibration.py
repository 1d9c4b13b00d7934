"""Decision thresholds chosen on validation, their test operating points, and calibration (reliability, ECE)."""

import numpy as np
import pandas as pd
import pytest

from ecgstudy.engine import calibration, thresholds as th


def test_youden_picks_the_threshold_that_separates_the_classes():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    threshold, basis = th.choose_threshold(y, p, "youden")
    # at 0.6: sensitivity 3/4, specificity 4/4 (J = 0.75); at 0.35: 4/4 and 3/4 (J = 0.75): the higher wins
    assert threshold == 0.6 and "youden" in basis
    assert th.choose_threshold(y, p, "sensitivity:1.0")[0] == 0.35  # highest threshold missing no positive
    assert th.choose_threshold(y, p, "sensitivity:0.7")[0] == 0.6
    assert th.choose_threshold(y, p, "f1")[0] in (0.35, 0.6)


def test_a_label_with_one_class_on_validation_falls_back_and_says_so():
    threshold, basis = th.choose_threshold(np.zeros(5), np.linspace(0, 1, 5))
    assert threshold == th.FALLBACK and "one class" in basis


@pytest.mark.parametrize("rule", ["youden:1", "sensitivity", "sensitivity:0", "sensitivity:1.5", "max"])
def test_bad_rules_name_the_valid_forms(rule):
    with pytest.raises(ValueError, match="youden"):
        th.parse_rule(rule)


def test_choose_thresholds_table_reports_validation_rates():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(200, 2))
    p = y * 0.5 + rng.uniform(0, 0.5, size=y.shape)  # separable: positives above 0.5, negatives below
    table = th.choose_thresholds(y, p, ["A", "B"])
    assert list(table["label"]) == ["A", "B"]
    assert (table["val_sensitivity"] == 1.0).all() and (table["val_specificity"] == 1.0).all()
    assert (table["threshold"] >= 0.5).all()


def test_wilson_and_hanley_mcneil_match_published_values():
    low, high = th.wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)  # Wilson score interval of 8/10 (Newcombe, Stat Med 1998)
    assert th.wilson(0, 0) != th.wilson(0, 0)  # nan pair
    # Hanley & McNeil 1982: AUC 0.8, 50 positives and 50 negatives -> SE about 0.0447
    low, high = th.hanley_mcneil(0.8, 50, 50)
    assert (high - low) / (2 * th.Z95) == pytest.approx(0.0447, abs=5e-4)


def test_operating_points_count_decisions_at_the_stored_thresholds():
    y = np.array([[1], [1], [0], [0], [0]])
    p = np.array([[0.9], [0.4], [0.6], [0.1], [0.2]])
    row = th.operating_points(y, p, np.array([0.5]), ["A"]).iloc[0]
    assert row["sensitivity"] == 0.5 and row["specificity"] == pytest.approx(2 / 3)
    assert row["sensitivity_low"] < 0.5 < row["sensitivity_high"]
    assert row["auroc"] == pytest.approx(5 / 6)
    assert 0 <= row["ece"] <= 1


def test_ece_is_zero_when_observed_rates_equal_predictions_and_measures_the_gap():
    p = np.repeat([0.25, 0.75], 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])  # a quarter / three quarters positive in the two bins
    assert calibration.ece(y, p) == pytest.approx(0.0)
    assert calibration.ece(np.ones(4), np.full(4, 0.3)) == pytest.approx(0.7)
    table = calibration.reliability(y, p, n_bins=4)
    assert table["n"].tolist() == [0, 4, 0, 4] and np.isnan(table["observed"].iloc[0])
    assert calibration.reliability(np.array([1]), np.array([1.0]), n_bins=10)["n"].iloc[-1] == 1  # 1.0 in the last bin
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        calibration.ece(np.ones(2), np.array([0.5, 1.5]))


def test_reliability_table_has_one_block_per_label():
    y = np.array([[1, 0], [0, 1]])
    table = calibration.reliability_table(y, np.array([[0.9, 0.2], [0.1, 0.8]]), ["A", "B"], n_bins=5)
    assert isinstance(table, pd.DataFrame) and len(table) == 10 and set(table["label"]) == {"A", "B"}
