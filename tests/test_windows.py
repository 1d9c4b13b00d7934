"""Sliding-window evaluation: window starts, the windowed dataset, per-record aggregation."""

import numpy as np
import pytest
import torch
from _store_builder import build_store

from ecgstudy.engine import evaluate
from ecgstudy.data.store import ECGDataset, Store, WindowedDataset, window_starts


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(build_store(tmp_path_factory.mktemp("win") / "s", 12, seed=1))


def lead_i_mean(batch):
    """A 'model' whose logit is the mean of lead I over its input window: (B, 1)."""
    return batch["x"][:, 0, :].mean(dim=-1, keepdim=True)


def test_window_starts():
    assert window_starts(1000, 250, 125).tolist() == [0, 125, 250, 375, 500, 625, 750]  # 10 s, 2.5 s / 1.25 s
    assert window_starts(1000, 1000, 125).tolist() == [0]  # one window = the whole record
    assert window_starts(1000, 350, 300).tolist() == [0, 300, 600]  # windows stay inside; the tail is not covered
    assert window_starts(1000, 400, 900).tolist() == [0]  # a stride longer than the room left: one window
    with pytest.raises(ValueError, match="1200 samples is longer than the records .1000 samples"):
        window_starts(1000, 1200, 125)
    with pytest.raises(ValueError, match="must be >= 1"):
        window_starts(1000, 250, 0)


def test_windowed_dataset_serves_each_window_normalised_on_its_own(store):
    rows = np.array([3, 0, 7])
    base = ECGDataset(store, rows)  # per-lead z-score (the store's)
    view = WindowedDataset(base, 250, 125)
    assert len(view) == 3 * 7
    item = view[7 + 2]  # record 2 of the dataset (store row 0), window 2
    assert item["index"] == 0 and item["window"] == 2 and item["x"].shape == (12, 250)
    raw = np.asarray(store.signals[0, 0, 250:500], dtype=np.float64)
    np.testing.assert_allclose(item["x"][0].numpy(), (raw - raw.mean()) / raw.std(), atol=1e-4)
    assert torch.equal(item["y"], base[1]["y"])
    with pytest.raises(ValueError, match="whole records"):
        WindowedDataset(ECGDataset(store, rows, crop=500), 250, 125)


def test_max_and_mean_of_window_probabilities(store):
    rows = np.array([5, 1, 9, 2])
    data = ECGDataset(store, rows, normalise="none")
    starts = [0, 125, 250, 375, 500, 625, 750]
    lead_i = np.nan_to_num(np.asarray(store.signals[rows, 0], dtype=np.float64))  # (4, 1000)
    expected = 1 / (1 + np.exp(-np.array([[lead_i[r, s:s + 250].mean() for s in starts] for r in range(4)])))
    for how, agg in (("max", expected.max(axis=1)), ("mean", expected.mean(axis=1))):
        p, fields = evaluate.predict_windows(lead_i_mean, data, 250, 125, how, batch_size=5, bf16=False,
                                             keys=("y", "index"))
        assert p.shape == (4, 1)
        np.testing.assert_allclose(p[:, 0], agg, rtol=1e-5)
        assert fields["index"].tolist() == rows.tolist() and np.array_equal(fields["y"], data.y)
    per_window = evaluate.window_outputs(lead_i_mean, data, 250, 125, bf16=False)
    assert per_window.shape == (4, 7, 1)
    np.testing.assert_allclose(1 / (1 + np.exp(-per_window[..., 0])), expected, rtol=1e-5)
    # one window of the whole record is whole-record prediction
    whole, _ = evaluate.predict_windows(lead_i_mean, data, 1000, 125, "max", bf16=False)
    np.testing.assert_allclose(whole[:, 0], 1 / (1 + np.exp(-lead_i.mean(axis=1))), rtol=1e-5)


def test_bad_requests_fail_clearly(store):
    data = ECGDataset(store, [0, 1])
    with pytest.raises(ValueError, match="longer than the records"):
        evaluate.predict_windows(lead_i_mean, data, 1001, 125)
    with pytest.raises(ValueError, match="unknown window aggregation 'median'"):
        evaluate.predict_windows(lead_i_mean, data, 250, 125, "median")
    with pytest.raises(KeyError, match="not \\['lead_mask'\\]"):
        evaluate.predict_windows(lead_i_mean, data, 250, 125, keys=("lead_mask",))
    with pytest.raises(ValueError, match="shape"):
        evaluate.aggregate_windows(np.zeros((3, 4)))
