"""Store and ECGDataset (contract 3) on a store curated from the PTB-XL fixtures."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ecgstudy.data.labels import task_labels
from ecgstudy.data.store import ECGDataset, Store, StoreError


@pytest.fixture(scope="module")
def store(ptbxl_store) -> Store:
    return Store(ptbxl_store)


def _row(store: Store, record_id: str) -> int:
    return int(store.records.index[store.records["record_id"] == record_id][0])


def test_store_attributes(store):
    n = len(store.records)
    assert n == 15  # 14 good records + record 24 with a NaN lead (min_leads=11)
    assert store.signals.shape == (n, 12, 1000) and store.signals.dtype == np.float32
    assert store.lead_mask.shape == (n, 12) and store.lead_mask.dtype == bool
    assert store.fs == 100 and store.n_samples == 1000 and len(store.labels) == 71
    assert store.label_matrix().shape == (n, 71) and store.label_matrix().dtype == np.float32
    assert store.label_matrix(["NORM"])[:, 0].tolist() == store.records["y_NORM"].astype(float).tolist()
    with pytest.raises(KeyError, match="BOGUS"):
        store.label_matrix(["BOGUS"])


def test_indices_by_split(store):
    idx = store.indices("train")
    assert idx.dtype == np.int64 and (store.records["split"].to_numpy()[idx] == "train").all()
    both = store.indices(["val", "test"])
    assert len(both) == len(store.indices("val")) + len(store.indices("test"))
    total = sum(len(store.indices(s)) for s in ("train", "val", "test", "external"))
    assert total == len(store)
    with pytest.raises(ValueError, match="validation"):
        store.indices("validation")


def test_incomplete_or_inconsistent_stores_are_refused(tmp_path, ptbxl_store):
    with pytest.raises(StoreError, match="not found"):
        Store(tmp_path / "nothing")
    copy = tmp_path / "copy"
    shutil.copytree(ptbxl_store, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["n_samples"] = 500
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="inconsistent"):
        Store(copy)
    (copy / "meta.json").unlink()
    with pytest.raises(StoreError, match="meta.json"):
        Store(copy)


def test_items_have_the_contract_shapes(store):
    ds = ECGDataset(store, store.indices("train"))
    item = ds[0]
    assert item["x"].shape == (12, 1000) and item["x"].dtype == torch.float32
    assert item["lead_mask"].shape == (12,) and item["lead_mask"].dtype == torch.bool
    assert item["y"].shape == (71,) and item["y"].dtype == torch.float32
    assert item["index"] == int(store.indices("train")[0])
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["x"].shape == (4, 12, 1000) and batch["y"].shape == (4, 71)


def test_default_normalisation_is_the_stores_per_lead_zscore(store):
    row = _row(store, "1")
    x = ECGDataset(store, [row])[0]["x"].numpy()
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=1), 1, atol=1e-3)
    raw = ECGDataset(store, [row], normalise="none")[0]["x"].numpy()
    np.testing.assert_array_equal(raw, store.signals[row])  # mV, untouched


def test_missing_lead_is_zero_after_normalisation(store):
    row = _row(store, "24")
    assert np.isnan(store.signals[row, 7]).all()
    for method in ("per_lead_zscore", "record_zscore", "none"):
        item = ECGDataset(store, [row], normalise=method)[0]
        assert torch.isfinite(item["x"]).all()
        assert (item["x"][7] == 0).all() and not item["lead_mask"][7] and item["lead_mask"].sum() == 11
        assert item["x"][6].abs().sum() > 0


def test_centre_and_random_crops(store):
    rows = store.indices("train")
    centre = ECGDataset(store, rows, crop=250, normalise="none")
    np.testing.assert_array_equal(centre[0]["x"].numpy(), store.signals[rows[0], :, 375:625])
    rand = ECGDataset(store, rows, crop=250, random_crop=True, seed=7, normalise="none")
    starts = [rand.crop_start(i) for i in range(len(rows))]
    assert all(0 <= s <= 750 for s in starts) and len(set(starts)) > 1
    again = ECGDataset(store, rows, crop=250, random_crop=True, seed=7, normalise="none")
    assert [again.crop_start(i) for i in range(len(rows))] == starts
    s = starts[0]
    np.testing.assert_array_equal(rand[0]["x"].numpy(), store.signals[rows[0], :, s : s + 250])
    rand.set_epoch(1)
    assert [rand.crop_start(i) for i in range(len(rows))] != starts
    with pytest.raises(ValueError, match="crop"):
        ECGDataset(store, rows, crop=2000)


def test_task_labels_feed_the_dataset(store):
    task = task_labels(store, "superdiagnostic")
    assert task.names == ["CD", "HYP", "MI", "NORM", "STTC"]
    kept = np.flatnonzero(task.keep)
    expected = ["1", "2", "3", "4", "5", "6", "7", "10", "11", "12", "13", "24"]  # 8, 9, 14: no diagnostic code
    assert store.records.loc[kept, "record_id"].tolist() == expected
    ds = ECGDataset(store, kept, labels=task)
    row3 = list(kept).index(_row(store, "3"))
    assert ds[row3]["y"].tolist() == [0, 0, 1, 0, 0]
    codes = ECGDataset(store, kept, labels=["NORM", "IMI"])
    assert codes[row3]["y"].tolist() == [0, 1]
    matrix = ECGDataset(store, kept, labels=task.y)
    assert torch.equal(matrix[row3]["y"], ds[row3]["y"])


def test_store_pickles_without_its_signals(store):
    _ = store.signals
    clone = pickle.loads(pickle.dumps(store))
    assert clone._signals is None and len(pickle.dumps(store)) < store.signals.nbytes
    np.testing.assert_array_equal(clone.signals[0], store.signals[0])
