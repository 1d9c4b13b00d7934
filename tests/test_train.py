"""The training engine: learning, schedule, accumulation, seeding, best-epoch selection on validation."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from _synthetic import Blobs
from torch import nn

from ecgstudy.engine.train import TrainConfig, fit, predict, recalibrate_batchnorm, warmup_cosine





def _bce(model, batch):
    logits = model(batch["x"])
    return F.binary_cross_entropy_with_logits(logits.float(), batch["y"]), {"acc": float(((logits > 0) == (batch["y"] > 0.5)).float().mean())}


def _cfg(**kw):
    base = dict(epochs=6, batch_size=32, lr=0.05, bf16=False, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def test_schedule_warms_up_then_decays_to_the_floor():
    values = [warmup_cosine(s, 100, 0.1, 0.05) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:10], values[1:10]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] == pytest.approx(0.05, abs=0.01)


def test_fit_learns_and_writes_history(tmp_path):
    model = _model()
    res = fit(model, _bce, Blobs(), _cfg(), seed=0, history_csv=tmp_path / "h.csv")
    hist = res.history
    assert list(hist["epoch"]) == list(range(1, 7))
    assert hist["train_loss"].iloc[-1] < 0.7 * hist["train_loss"].iloc[0]
    assert hist["acc"].iloc[-1] > 0.8
    assert (hist["samples_per_s"] > 0).all() and hist["step"].iloc[-1] == 6 * 8
    written = pd.read_csv(tmp_path / "h.csv")  # the DVC plots file: same rows, no wall-clock columns
    assert list(written.columns) == [c for c in hist.columns if c not in ("samples_per_s", "seconds")]
    assert len(written) == len(hist)


def test_same_seed_same_numbers_different_seed_different_numbers():
    runs = [fit(_model(), _bce, Blobs(), _cfg(epochs=2), seed=s).history for s in (1, 1, 2)]
    cols = ["train_loss", "acc"]
    pd.testing.assert_frame_equal(runs[0][cols], runs[1][cols])
    assert not runs[0][cols].equals(runs[2][cols])


def test_gradient_accumulation_matches_a_larger_batch():
    a, b = _model(), _model()
    cfg = dict(epochs=2, lr=0.01, grad_clip=0.0, weight_decay=0.0)
    fit(a, _bce, Blobs(128), _cfg(batch_size=32, grad_accum=1, **cfg), seed=0)
    fit(b, _bce, Blobs(128), _cfg(batch_size=16, grad_accum=2, **cfg), seed=0)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)


def test_best_epoch_is_chosen_on_validation_and_patience_stops():
    model = _model()
    scripted = iter([0.9, 0.5, 0.7, 0.8, 0.95, 0.99])  # best at epoch 2, then worse
    snapshots = {}

    def validate(m):
        snapshots[len(snapshots) + 1] = [p.detach().clone() for p in m.parameters()]
        return {"val_loss": next(scripted)}

    res = fit(model, _bce, Blobs(), _cfg(epochs=6, patience=2), seed=0, validate=validate)
    assert res.best_epoch == 2 and res.best_score == 0.5
    assert res.stopped_early and len(res.history) == 4
    for p, q in zip(model.parameters(), snapshots[2]):
        assert torch.equal(p, q)  # the model ends with the best epoch's weights


def test_max_evals_spaces_validation():
    calls = []
    fit(_model(), _bce, Blobs(64), _cfg(epochs=6, max_evals=2), seed=0, validate=lambda m: calls.append(1) or {"val_loss": 1.0})
    assert len(calls) == 2


def test_min_steps_adds_epochs_for_small_sets():
    res = fit(_model(), _bce, Blobs(40), _cfg(epochs=1, min_steps=10, batch_size=16), seed=0)
    assert res.history["step"].iloc[-1] >= 10


def test_frozen_parameters_stay_and_bf16_runs():
    model = _model()
    model[0].requires_grad_(False)
    before = model[0].weight.clone()
    res = fit(model, _bce, Blobs(), _cfg(epochs=2, bf16=True), seed=0)
    assert torch.equal(model[0].weight, before)
    assert np.isfinite(res.history["train_loss"]).all()


def test_predict_keeps_order():
    data = Blobs(50)
    model = _model()
    out, fields = predict(lambda b: model(b["x"]), data, batch_size=16, bf16=False)
    assert out.shape == (50, 1)
    assert np.array_equal(fields["y"][:, 0], data.y)
    with torch.no_grad():
        assert np.allclose(out, model(torch.from_numpy(data.x)).numpy(), atol=1e-6)


def test_batchnorm_recalibration_measures_the_data_and_keeps_weights():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4))
    module[1].running_mean.fill_(5.0)  # stale statistics, as left by pretraining on other inputs
    weights = module[0].weight.clone()
    data = Blobs(256)
    assert recalibrate_batchnorm(module, lambda b: module(b["x"]), data, batch_size=32, bf16=False) == 1
    with torch.no_grad():
        hidden = module[0](torch.from_numpy(data.x))
    assert torch.allclose(module[1].running_mean, hidden.mean(dim=0), atol=1e-5)
    assert torch.equal(module[0].weight, weights) and module[1].momentum == 0.1 and module.training


def test_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0).validate()
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu").validate()
