"""Store descriptions used by the curate notebook, on a real (small) simulated and curated cohort."""

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data import describe
from ecgstudy.data.labels import LABEL_PREFIX
from ecgstudy.data.store import Store


@pytest.fixture(scope="module")
def store(simulated_cohort):
    return Store(simulated_cohort / "main")


def test_split_table_counts_every_record_once(store):
    table = describe.split_table(store)
    record_cols = [c for c in table.columns if c.endswith("_records")]
    assert table[record_cols].to_numpy().sum() == len(store)
    for col in record_cols:
        split = col.removesuffix("_records")
        assert table[f"{split}_patients"].sum() <= table[col].sum()


def test_prevalence_table_matches_label_means(store):
    table = describe.prevalence_table(store, by="split")
    code = table.index[0]
    expected = 100 * store.records[LABEL_PREFIX + code].mean()
    assert table.loc[code, "all"] == pytest.approx(round(expected, 1))
    assert table.loc["n", "all"] == len(store)


def test_example_per_condition_picks_positive_records(store):
    codes = describe.gallery_codes(store, min_positives=2)
    assert codes and "SR" not in codes
    picked = describe.example_per_condition(store, codes, split=None)
    assert set(picked) <= set(codes)
    for code, row in picked.items():
        assert store.records[LABEL_PREFIX + code].iloc[row] == 1
    # deterministic
    assert picked == describe.example_per_condition(store, codes, split=None)


def test_example_prefers_record_where_condition_is_alone(store):
    rec = store.records
    codes = describe.gallery_codes(store, min_positives=2)
    others = [c for c in store.labels if c not in ("NORM", "SR")]
    n_abnormal = rec[[LABEL_PREFIX + c for c in others]].sum(axis=1).to_numpy()
    for code, row in describe.example_per_condition(store, codes, split=None).items():
        positives = np.flatnonzero(rec[LABEL_PREFIX + code].to_numpy() == 1)
        assert n_abnormal[row] == n_abnormal[positives].min(), code


def test_true_codes_need_ground_truth(store, tmp_path):
    truth = describe.true_codes(store)
    assert len(truth) == len(store) and all(isinstance(t, dict) for t in truth)


def test_curation_metrics_reports_shifts_from_the_interval_table(store):
    intervals = pd.DataFrame(
        {"hr_bpm": [70.0, 72.0], "pr_ms": [160.0, 260.0], "qrs_ms": [90.0, 92.0], "qt_ms": [400.0, 398.0],
         "rr_cv": [0.02, 0.02], "gt_hr_bpm": [71.0, 70.0]},
        index=pd.Index(["NORM", "1AVB"], name="code"),
    )
    summaries = {"main": {"n_kept": len(store), "excluded_by_reason": {"flat_lead": 2}}}
    metrics = describe.curation_metrics(store, summaries, intervals)
    assert metrics["measured_shift"] == {"1AVB_pr_ms_minus_NORM": 100.0}
    assert metrics["main_excluded"] == 2 and metrics["records"] == len(store)
    assert metrics["hr_median_abs_error_bpm"] == pytest.approx(1.5)
    assert sum(metrics["split"].values()) == len(store)


def test_primary_diagnosis_categories():
    info = {"NORM": {"diagnostic_class": "NORM"}, "IMI": {"diagnostic_class": "MI"},
            "LVH": {"diagnostic_class": "HYP"}, "AFIB": {"diagnostic_class": ""}}
    records = pd.DataFrame({"y_NORM": [1, 0, 0, 0], "y_IMI": [0, 1, 1, 0], "y_LVH": [0, 0, 1, 0],
                            "y_AFIB": [0, 0, 0, 1]})
    assert list(describe.primary_diagnosis(records, info)) == ["NORM", "MI", "several", "none"]
    assert list(describe.primary_diagnosis(records[["y_AFIB"]], info)) == ["none"] * 4  # no diagnostic class
