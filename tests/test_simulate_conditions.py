"""Condition sampling (prevalence, co-occurrence, exclusions), the annotator model and the folds."""

from collections import Counter

import numpy as np
import pandas as pd

from ecgstudy.paths import resource
from ecgstudy.simulate.annotate import AnnotatorConfig, annotate
from ecgstudy.simulate.conditions import (
    BORDERLINE_CODES,
    CATALOGUE,
    EXPRESSION_CODES,
    MAIN_CODES,
    RARE_CODES,
    complete_truth,
    sample_conditions,
)
from ecgstudy.simulate.folds import stratified_folds

REQUIRED = {"NORM", "SR", "AFIB", "AFLT", "STACH", "SBRAD", "1AVB", "CLBBB", "CRBBB", "IRBBB", "LAFB", "LVH", "RVH",
            "IMI", "ASMI", "AMI", "ISC_", "NST_", "LNGQT", "PVC", "PAC", "LVOLT", "WPW", "PACE"}


def _draws(n=3000, age=62.0, seed=0, sex=None):
    rng = np.random.default_rng(seed)
    return [sample_conditions(rng, age, int(rng.integers(2)) if sex is None else sex, 26.0) for _ in range(n)]


def test_vocabulary_is_ptbxl_plus_rare():
    vocab = set(pd.read_csv(resource("ptbxl_scp_statements.csv"), index_col=0).index)
    assert REQUIRED <= set(MAIN_CODES) <= vocab
    assert len(RARE_CODES) >= 3 and not set(RARE_CODES) & vocab
    assert not (set(EXPRESSION_CODES) | set(BORDERLINE_CODES)) & vocab  # never reported statements


def test_prevalence_age_and_cooccurrence():
    draws = _draws()
    counts = Counter(c for d in draws for c in d)
    for code in REQUIRED - {"NORM", "SR"}:
        assert counts[code] > 10, code  # every condition occurs
    assert 0.03 < counts["AFIB"] / len(draws) < 0.15
    young, old = _draws(1500, age=35, seed=1), _draws(1500, age=80, seed=1)
    assert sum("AFIB" in d for d in old) > 3 * sum("AFIB" in d for d in young)
    with_lvh = [d for d in draws if "LVH" in d]
    without = [d for d in draws if "LVH" not in d]
    assert np.mean(["ISC_" in d for d in with_lvh]) > 1.5 * np.mean(["ISC_" in d for d in without])
    with_rbbb = [d for d in draws if "CRBBB" in d]
    assert np.mean(["LAFB" in d for d in with_rbbb]) > 2 * np.mean(["LAFB" in d for d in draws])


def test_exclusions_hold():
    for d in _draws(2000, seed=3):
        assert not ("AFIB" in d and ("1AVB" in d or "AFLT" in d or "STACH" in d))
        assert not ("CLBBB" in d and ("CRBBB" in d or "IRBBB" in d or "LAFB" in d))
        assert not ("PACE" in d and ("CLBBB" in d or "IMI" in d))
        assert not ("STACH" in d and "SBRAD" in d)
        assert all(0.0 <= v <= 1.0 for v in d.values())


def test_complete_truth_derives_sr_and_norm():
    assert complete_truth({}) == {"NORM": 1.0, "SR": 1.0}
    assert complete_truth({"PVC": 0.2}) == {"NORM": 1.0, "PVC": 0.2, "SR": 1.0}
    assert complete_truth({"SBRAD": 0.2}) == {"NORM": 1.0, "SBRAD": 0.2}
    assert "NORM" not in complete_truth({"IMI": 0.5}) and "SR" in complete_truth({"IMI": 0.5})
    assert complete_truth({"AFIB": 0.5}) == {"AFIB": 0.5}


def _report_rate(code, severity, cfg, n=400, second_opinion=False, seed=0):
    rng = np.random.default_rng(seed)
    truth = complete_truth({code: severity})
    return np.mean([code in annotate(rng, truth, 2.0, cfg, second_opinion) for _ in range(n)])


def test_annotator_misses_borderline_more_than_clear_cases():
    cfg = AnnotatorConfig()
    assert _report_rate("1AVB", 0.0, cfg) < 0.75
    assert _report_rate("1AVB", 0.8, cfg) == 1.0
    assert _report_rate("AFIB", 0.0, cfg) == 1.0  # never missed
    assert _report_rate("1AVB", 0.0, cfg, second_opinion=True) > _report_rate("1AVB", 0.0, cfg)
    assert _report_rate("1AVB", 0.0, AnnotatorConfig(miss_rate=0.0, false_positive_rate=0.0)) == 1.0


def test_annotator_confuses_look_alikes_and_reports_ptbxl_style():
    rng = np.random.default_rng(1)
    truth = complete_truth({"CRBBB": 0.0})
    reports = [annotate(rng, truth, 2.0, AnnotatorConfig(miss_rate=1.0, confusion_rate=1.0)) for _ in range(50)]
    assert all("IRBBB" in r and "CRBBB" not in r for r in reports)
    report = annotate(rng, complete_truth({"IMI": 0.9}), 2.0, AnnotatorConfig())
    assert report["IMI"] == 100.0 and report["SR"] == 0.0 and "NORM" not in report
    healthy = annotate(rng, complete_truth({}), 2.0, AnnotatorConfig(false_positive_rate=0.0))
    assert healthy == {"NORM": 100.0, "SR": 0.0}
    voltage = [annotate(rng, complete_truth({}), 4.2, AnnotatorConfig(voltage_lvh_rate=1.0)) for _ in range(5)]
    assert all("LVH" in r and "NORM" not in r for r in voltage)


def test_folds_respect_patients_and_spread_labels():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(300), rng.integers(1, 4, 300))
    labels = [["RARE"] if p % 30 == 0 else ["NORM"] for p in patients]
    folds = stratified_folds(np.random.default_rng(1), patients, labels)
    frame = pd.DataFrame({"p": patients, "f": folds, "rare": [lab == ["RARE"] for lab in labels]})
    assert frame.groupby("p").f.nunique().max() == 1
    assert set(frame.f) == set(range(1, 11))
    rare_folds = frame[frame.rare].drop_duplicates("p").f.value_counts()
    assert rare_folds.max() == 1  # 10 rare patients over 10 folds: one each
    assert np.array_equal(folds, stratified_folds(np.random.default_rng(1), patients, labels))


def test_every_catalogued_condition_has_mask_segments_and_effect():
    for code, cond in CATALOGUE.items():
        if code in ("NORM", "SR"):
            continue
        if cond.kind == "diagnosis":  # a clinical diagnosis shows only through its expression codes
            assert cond.effect is None and not cond.segments, code
            continue
        assert cond.effect is not None and cond.segments, code
