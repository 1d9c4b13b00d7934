"""How far age and sex can be read from measurements (ecgstudy.data.demographics)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data import demographics


def _synthetic(n_patients=150, copies=1, informative=True, n_noise=4, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, n_patients).astype(float)
    age = rng.uniform(20, 80, n_patients)
    noise = rng.standard_normal((n_patients, n_noise))
    cols = {f"f{i}": noise[:, i] for i in range(n_noise)}
    if informative:
        cols["sex_marker"] = sex + 0.3 * rng.standard_normal(n_patients)
        cols["age_marker"] = age / 10.0 + 0.5 * rng.standard_normal(n_patients)
    frame = pd.DataFrame(cols)
    rep = np.repeat(np.arange(n_patients), copies)
    return frame.iloc[rep].reset_index(drop=True), age[rep], sex[rep], rep


def test_informative_features_are_read_and_noise_is_not():
    feats, age, sex, patients = _synthetic()
    good = demographics.readability(feats, age, sex, patients, seed=0)
    assert good["sex_auroc"] > 0.95 and good["age_mae"] < 0.5 * good["age_mae_mean_predictor"]
    assert good["age_r"] > 0.9
    feats, age, sex, patients = _synthetic(informative=False)
    none = demographics.readability(feats, age, sex, patients, seed=0)
    assert 0.35 < none["sex_auroc"] < 0.65 and none["age_mae"] > 0.9 * none["age_mae_mean_predictor"]


def test_a_patients_records_never_train_the_model_that_scores_them():
    # 60 noise features, 3 identical records per patient: a model that saw a patient's twin record would
    # memorise it (more features than patients per fold); grouped folds leave nothing to read
    feats, age, sex, patients = _synthetic(n_patients=80, copies=3, informative=False, n_noise=60)
    r = demographics.readability(feats, age, sex, patients, seed=1)
    assert 0.3 < r["sex_auroc"] < 0.7, r
    assert r["n_records"] == 240 and r["n_patients"] == 80


def _store(n=60, site_age_gap=0.0):
    from ecgstudy.simulate import sample_patient, simulate_record

    signals, rows = [], []
    for i in range(n):
        p = sample_patient(np.random.default_rng(i), patient_id=i)
        signals.append(simulate_record(np.random.default_rng(100 + i), {}, p).signal.astype(np.float32))
        rows.append({"record_id": 1000 + i, "patient_id": i, "age": p.age if i % 10 else np.nan, "sex": p.sex,
                     "site": f"S{i % 2}"})
    return SimpleNamespace(signals=np.stack(signals), records=pd.DataFrame(rows), fs=500)


def test_table_measures_known_demographics_per_store_and_skips_small_stores():
    store = _store()
    small = SimpleNamespace(signals=store.signals[:40], records=store.records.iloc[:40], fs=500)
    table, pred = demographics.readability_table({"main": store, "rare": small}, seed=0,
                                                 names=("main", "rare", "absent"))
    assert list(table.columns) == demographics.COLUMNS
    assert table["store"].tolist() == ["main"] * 3 and (table["records"] == "all").all()  # no NORM column: no healthy
    assert table["features"].tolist() == ["global", "per_lead", demographics.SITE_ONLY]
    assert (table["n_records"] == 54).all()  # six records without an age are left out
    assert table.set_index("features").loc["per_lead", "n_features"] == 59
    assert table.set_index("features").loc[demographics.SITE_ONLY, "n_features"] == 2  # two sites, one-hot
    assert len(pred) == 3 * 54 and set(pred["record_id"]) == set(store.records["record_id"][store.records["age"].notna()])
    row = table.set_index("features").loc["per_lead"]
    mine = pred[pred.features == "per_lead"]
    assert row["age_mae"] == pytest.approx(np.mean(np.abs(mine.pred_age - mine.age)))
    again, _ = demographics.readability_table({"main": store}, seed=0)
    pd.testing.assert_frame_equal(table, again)  # same seed, same numbers


def test_healthy_records_are_read_on_their_own_without_changing_the_all_records_rows(monkeypatch):
    store = _store()
    without, _ = demographics.readability_table({"main": store}, seed=0)
    n = len(store.records)
    records = store.records.assign(y_NORM=[int(i % 3 != 0) for i in range(n)], y_SR=1,  # a rhythm statement
                                   y_IMI=[int(i % 7 == 1) for i in range(n)])  # a diagnostic one: not healthy
    labelled = SimpleNamespace(signals=store.signals, records=records, fs=store.fs)
    assert demographics.readability_table({"main": labelled}, seed=0)[0]["records"].eq("all").all()  # 36 < 50
    monkeypatch.setattr(demographics, "MIN_RECORDS", 30)
    table, pred = demographics.readability_table({"main": labelled}, seed=0)
    assert table["records"].tolist() == ["all"] * 3 + ["healthy"] * 3
    pd.testing.assert_frame_equal(table[table.records == "all"].reset_index(drop=True), without)
    healthy_known = records[(records.y_NORM == 1) & (records.y_IMI == 0) & records.age.notna()]
    assert 30 <= len(healthy_known) < len(records[(records.y_NORM == 1) & records.age.notna()])
    assert (table.loc[table.records == "healthy", "n_records"] == len(healthy_known)).all()
    mine = pred[pred.records == "healthy"]
    assert set(mine.record_id) == set(healthy_known.record_id) and len(mine) == 3 * len(healthy_known)
    per_lead = table[(table.records == "healthy") & (table.features == "per_lead")].iloc[0]
    scored = mine[mine.features == "per_lead"]
    assert per_lead["age_mae"] == pytest.approx(np.mean(np.abs(scored.pred_age - scored.age)))


def test_a_missing_lead_is_blanked_not_read_as_zero_volts():
    store = _store(n=2)
    signals = store.signals.copy()
    signals[0, 8] = np.nan  # V3 missing
    signals[1, 9] = 0.0  # V4 disconnected (flat)
    feats = demographics.measured_features(signals, np.array([0, 1]), 500.0)
    assert feats.loc[0, ["R_V3", "S_V3", "ST_V3", "T_V3"]].isna().all() and np.isfinite(feats.loc[0, "R_V2"])
    assert feats.loc[1, ["R_V4", "S_V4", "ST_V4", "T_V4"]].isna().all() and np.isfinite(feats.loc[1, "qrs_ms"])
    whole = demographics.measured_features(store.signals, np.array([0]), 500.0)
    assert np.isfinite(whole.loc[0, ["R_V3", "T_V3"]].to_numpy(float)).all()


def test_balanced_accuracy_uses_the_half_probability_cut():
    r = demographics.scores(np.array([30.0, 40, 50, 60]), np.array([0.0, 0, 1, 1]), np.array([35.0, 35, 55, 55]),
                            np.array([0.2, 0.6, 0.7, 0.9]))
    assert r["sex_auroc"] == 1.0 and r["sex_balanced_accuracy"] == 0.75  # one man above the cut
    assert r["age_mae"] == 5.0 and r["age_mae_mean_predictor"] == 10.0


def test_known_demographics_needs_both_columns_and_valid_codes():
    rec = pd.DataFrame({"age": [40, np.nan, 50, 60], "sex": [0, 1, 2, 1]})
    assert demographics.known_demographics(rec).tolist() == [0, 3]
    assert demographics.known_demographics(rec.drop(columns="sex")).size == 0


@pytest.mark.parametrize("bad", [{"sex": [0] * 60}])
def test_one_sex_only_gives_no_sex_auroc(bad):
    feats, age, _, patients = _synthetic(n_patients=60)
    r = demographics.readability(feats, age, np.asarray(bad["sex"], float), patients, seed=0)
    assert np.isnan(r["sex_auroc"]) and np.isnan(r["sex_balanced_accuracy"]) and np.isfinite(r["age_mae"])
