"""Patient-level splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data.splits import assign_splits, check_patient_integrity, random_patient_splits


def _catalog(n_patients: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rng.integers(1, 4, n_patients))
    return pd.DataFrame(
        {
            "patient_id": patients.astype(str),
            "site": np.where(patients % 7 == 0, "external", "a"),
            "strat_fold": (patients % 10) + 1,
        }
    )


def _leaks(catalog: pd.DataFrame, split: pd.Series) -> int:
    return int((pd.DataFrame({"p": catalog["patient_id"], "s": split}).groupby("p")["s"].nunique() > 1).sum())


def test_official_folds_map_to_train_val_test():
    cat = _catalog()
    split = assign_splits(cat, external_sites=())
    expected = cat["strat_fold"].map(lambda f: "train" if f <= 8 else ("val" if f == 9 else "test"))
    assert (split == expected).all()


def test_external_site_takes_whole_patients():
    cat = _catalog()
    cat.loc[cat.index[cat["patient_id"] == "14"][0], "site"] = "a"  # one of patient 14's records elsewhere
    split = assign_splits(cat, external_sites=["external"])
    assert (split[cat["patient_id"] == "14"] == "external").all()
    assert (split[cat["site"] == "external"] == "external").all()
    assert _leaks(cat, split) == 0


def test_random_split_is_patient_grouped_seeded_and_sized():
    cat = _catalog().drop(columns="strat_fold")
    a = assign_splits(cat, val_fraction=0.1, test_fraction=0.2, seed=3)
    b = assign_splits(cat.sample(frac=1.0, random_state=1).sort_index(), val_fraction=0.1, test_fraction=0.2, seed=3)
    c = assign_splits(cat, val_fraction=0.1, test_fraction=0.2, seed=4)
    assert (a == b).all() and not (a == c).all()
    assert _leaks(cat, a) == 0
    per_patient = pd.DataFrame({"p": cat["patient_id"], "s": a}).drop_duplicates()["s"].value_counts()
    assert per_patient["test"] == 40 and per_patient["val"] == 20 and per_patient["train"] == 140


def test_use_folds_false_ignores_strat_fold():
    cat = _catalog()
    split = assign_splits(cat, use_folds=False, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert _leaks(cat, split) == 0
    test_patients = cat.loc[split == "test", "patient_id"].nunique()
    assert test_patients == 40  # 20% of 200 patients, where fold 10 would hold 20


def test_folds_that_split_a_patient_are_an_error():
    cat = pd.DataFrame({"patient_id": ["1", "1", "2"], "strat_fold": [1, 10, 3]})
    with pytest.raises(ValueError, match=r"more than one split.*'1'"):
        assign_splits(cat)


def test_bad_fold_values_are_an_error():
    with pytest.raises(ValueError, match="strat_fold"):
        assign_splits(pd.DataFrame({"patient_id": ["1", "2"], "strat_fold": [1, 11]}))


def test_fractions_are_checked():
    with pytest.raises(ValueError, match="sum < 1"):
        random_patient_splits(pd.Series(["1", "2"]), 0.5, 0.5, 0)


def test_integrity_check_names_patients():
    with pytest.raises(ValueError, match="'b'"):
        check_patient_integrity(pd.Series(["a", "b", "b"]), pd.Series(["train", "train", "test"]))
