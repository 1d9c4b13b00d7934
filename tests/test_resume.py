"""Exact resume of fit from its state file: interrupted + resumed == uninterrupted, bit for bit."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ecgstudy.engine.train import TrainConfig, fit
from ecgstudy.engine.state import TrainStateError

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TIMING = ["seconds", "samples_per_s"]  # wall-clock columns: differ between any two runs


class _JitteredBlobs(Dataset):
    """Two gaussian classes in 8 dimensions; items jitter with (seed, epoch, index) like ECGDataset crops."""

    def __init__(self, n=96, seed=0):
        rng = np.random.default_rng(seed)
        self.y = (rng.random(n) < 0.5).astype(np.float32)
        self.x = (rng.normal(size=(n, 8)) + 1.5 * self.y[:, None]).astype(np.float32)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        jitter = np.random.default_rng([7, self.epoch, i]).normal(0, 0.1, 8).astype(np.float32)
        return {"x": torch.from_numpy(self.x[i] + jitter), "y": torch.tensor([self.y[i]])}


class _Interrupt(Exception):
    pass


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))


def _run(tmp_path, *, stop_at=None, state=True, cfg=None, fingerprint=None):
    """One fit with dropout (torch RNG), a caller generator (input noise), validation and batch norm."""
    cfg = cfg or TrainConfig(epochs=5, batch_size=16, grad_accum=2, lr=0.02, patience=3, bf16=True, progress=False, device="cpu")
    model = _model()
    noise = torch.Generator().manual_seed(123)
    val = _JitteredBlobs(48, seed=1)

    def loss_fn(m, batch):
        x = batch["x"] + 0.2 * torch.randn(batch["x"].shape, generator=noise)
        logits = m(x)
        return F.binary_cross_entropy_with_logits(logits.float(), batch["y"]), {"mean_logit": float(logits.detach().mean())}

    def validate(m):
        logits = m(torch.from_numpy(val.x))
        return {"val_loss": float(F.binary_cross_entropy_with_logits(logits, torch.from_numpy(val.y)[:, None]))}

    def interrupt(row):
        if row["epoch"] == stop_at:
            raise _Interrupt

    result = fit(
        model, loss_fn, _JitteredBlobs(), cfg, seed=3, validate=validate, generators={"noise": noise},
        state_path=tmp_path / "state.pt" if state else None, fingerprint=fingerprint, on_epoch_end=interrupt,
    )
    return model, result, noise


def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(tmp_path):
    reference, expected, ref_noise = _run(tmp_path / "a", state=False)
    with pytest.raises(_Interrupt):
        _run(tmp_path / "b", stop_at=2)
    model, result, noise = _run(tmp_path / "b")
    assert result.resumed_after == 2 and expected.resumed_after == 0
    for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name  # parameters and batch-norm buffers, bit for bit
    pd.testing.assert_frame_equal(expected.history.drop(columns=TIMING), result.history.drop(columns=TIMING))
    assert (result.best_epoch, result.best_score) == (expected.best_epoch, expected.best_score)
    assert result.stopped_early == expected.stopped_early
    assert torch.equal(ref_noise.get_state(), noise.get_state())  # the caller's generator continued where it stood


def test_a_completed_run_is_returned_without_training(tmp_path):
    first_model, first, _ = _run(tmp_path)
    again_model, again, _ = _run(tmp_path, stop_at=1)  # the same command again; training an epoch would raise
    assert again.resumed_after == len(first.history)
    pd.testing.assert_frame_equal(first.history, again.history)  # restored rows, timings included
    assert again.best_epoch == first.best_epoch
    for a, b in zip(first_model.state_dict().values(), again_model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_state_of_another_run_is_refused_naming_the_keys(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.02, bf16=False, progress=False, device="cpu")
    _run(tmp_path, cfg=cfg, fingerprint={"data": "v1"})
    with pytest.raises(ValueError, match=r"train\.lr: 0\.02 -> 0\.05") as info:
        _run(tmp_path, cfg=TrainConfig(**{**cfg.__dict__, "lr": 0.05}), fingerprint={"data": "v1"})
    assert "state.pt" in str(info.value) and "Delete the file" in str(info.value)
    with pytest.raises(ValueError, match=r"caller\.data: 'v1' -> 'v2'"):
        _run(tmp_path, cfg=cfg, fingerprint={"data": "v2"})
    _run(tmp_path, cfg=TrainConfig(**{**cfg.__dict__, "progress": True}), fingerprint={"data": "v1"})  # display only


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_a_corrupt_state_file_gives_an_error_naming_it(tmp_path, damage):
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.02, bf16=False, progress=False, device="cpu")
    path = tmp_path / "state.pt"
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        _run(tmp_path, cfg=cfg)
        path.write_bytes(path.read_bytes()[:1000])
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(TrainStateError, match="state.pt") as info:
        _run(tmp_path, cfg=cfg)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind by the writer
