"""Pretraining: augmentations, CMSC objective, the registry and the stage function."""

import numpy as np
import pandas as pd
import pytest
import torch
from _store_builder import build_store

from ecgstudy import config
from ecgstudy.models import build_encoder
from ecgstudy.models.checkpoint import load_encoder
from ecgstudy.pretrain import PretrainConfig, run_pretrain
from ecgstudy.pretrain.augment import AugmentConfig, augment, random_crop, random_lead_mask
from ecgstudy.pretrain.objectives import (
    CMSC,
    OBJECTIVES,
    ObjectiveContext,
    adjacent_segments,
    build_objective,
    info_nce,
    register,
)
from ecgstudy.train import TrainConfig


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_lead_mask_keeps_a_lead_and_only_drops_present_ones():
    mask = torch.ones(500, 12, dtype=torch.bool)
    mask[:100, 6:] = False
    new = random_lead_mask(mask, 0.9, _gen())
    assert (new & ~mask).sum() == 0  # never adds a lead
    assert new.any(dim=1).all()  # every record keeps one
    assert 0.05 < new[100:].float().mean() < 0.2  # about 10 % survive at p = 0.9
    assert torch.equal(new, random_lead_mask(mask, 0.9, _gen()))  # seeded


def test_augment_zeroes_masked_leads_and_is_seeded():
    x = torch.randn(4, 12, 100)
    mask = torch.ones(4, 12, dtype=torch.bool)
    cfg = AugmentConfig(rlm_p=0.5)
    a, ma = augment(x, mask, cfg, _gen(1))
    b, mb = augment(x, mask, cfg, _gen(1))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert (a[~ma] == 0).all() and not torch.equal(a[ma], x[ma])
    plain, same = augment(x, mask, AugmentConfig(scale=0, baseline=0, noise=0, rlm_p=0), _gen())
    assert torch.equal(plain, x) and torch.equal(same, mask)


def test_crops_and_adjacent_segments_come_from_the_record():
    x = torch.arange(3 * 1000, dtype=torch.float32).reshape(3, 1, 1000).expand(3, 12, 1000)
    a, b = adjacent_segments(x, torch.ones(3, 12, dtype=torch.bool), 250, _gen())
    assert a.shape == b.shape == (3, 12, 250)
    assert torch.equal(b[..., 0], a[..., -1] + 1)  # b starts where a ends
    assert torch.equal(a[:, :, 1:] - a[:, :, :-1], torch.ones(3, 12, 249))
    c = random_crop(x, 300, _gen())
    assert c.shape == (3, 12, 300) and torch.equal(c[:, 0, 1:] - c[:, 0, :-1], torch.ones(3, 299))
    with pytest.raises(ValueError, match="do not fit"):
        adjacent_segments(x, None, 600, _gen())


def test_info_nce_rewards_matching_pairs():
    z = torch.randn(16, 32)
    good, acc = info_nce(z, z + 0.01 * torch.randn(16, 32), 0.1)
    bad, _ = info_nce(z, torch.randn(16, 32), 0.1)
    assert acc == 1.0 and good < 0.1 < bad


def _structured_batch(n=16, length=400, seed=0):
    """Records with their own rhythm, lead gains and waveform: segments of one record look alike."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    x = np.empty((n, 12, length), np.float32)
    for i in range(n):
        rate, phase, width = rng.uniform(0.8, 2.0), rng.uniform(0, 1), rng.uniform(0.001, 0.01)
        beat = np.exp(-(((t * rate + phase) % 1.0 - 0.5) ** 2) / width)
        x[i] = rng.normal(0, 1, (12, 1)) * beat + 0.05 * rng.normal(size=(12, length))
    return {"x": torch.from_numpy(x), "lead_mask": torch.ones(n, 12, dtype=torch.bool)}


def test_cmsc_loss_decreases_on_structured_data():
    torch.manual_seed(0)
    encoder = build_encoder("net1d", "tiny")
    objective = CMSC(encoder.embed_dim, segment_len=200, temperature=0.1, proj_hidden=64, proj_dim=32,
                     augment=AugmentConfig(rlm_p=0.25))
    params = list(encoder.parameters()) + list(objective.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    batch, gen = _structured_batch(), _gen(0)
    losses = []
    for _ in range(20):
        loss, logs = objective(encoder, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert logs["top1"] > 0.5


def test_registry():
    assert "cmsc" in OBJECTIVES
    cfg = PretrainConfig(segment_s=2.5)
    obj = build_objective("cmsc", cfg, 256, ObjectiveContext(fs=100, n_samples=1000))
    assert obj.segment_len == 250  # 2.5 s at 100 Hz
    with pytest.raises(ValueError, match="unknown pretraining objective"):
        build_objective("nope", cfg, 256, None)
    with pytest.raises(ValueError, match="registered twice"):
        register("cmsc")(CMSC)


def test_config_rejects_test_split_and_unknown_objective():
    with pytest.raises(config.ConfigError, match="test split"):
        config.from_dict(PretrainConfig, {"splits": ["train", "test"]}, "pretrain")
    with pytest.raises(config.ConfigError, match="objective"):
        config.from_dict(PretrainConfig, {"objective": "simclr9"}, "pretrain")
    cfg = config.from_dict(PretrainConfig, {"optim": {"epochs": 2}, "augment": {"rlm_p": 0.3}}, "pretrain")
    assert cfg.optim.epochs == 2 and cfg.augment.rlm_p == 0.3


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store") / "main", 120)


def test_run_pretrain_writes_a_loadable_encoder_and_is_seeded(store, tmp_path):
    cfg = PretrainConfig(optim=TrainConfig(epochs=2, batch_size=16, progress=False))
    res = run_pretrain(cfg, store, tmp_path / "a", seed=0, history_csv=tmp_path / "loss.csv")
    again = run_pretrain(cfg, store, tmp_path / "b", seed=0)
    assert len(res.history) == 2 and {"train_loss", "val_loss", "top1", "val_top1"} <= set(res.history)
    pd.testing.assert_frame_equal(res.history[["train_loss", "val_loss"]], again.history[["train_loss", "val_loss"]])
    assert pd.read_csv(tmp_path / "loss.csv").shape[0] == 2
    encoder, info = load_encoder(res.checkpoint)
    assert info["preprocessing"]["fs"] == 100.0 and info["preprocessing"]["normalise"] == "per_lead_zscore"
    assert info["config"]["objective"] == "cmsc" and info["config"]["seed"] == 0
    assert res.metrics["n_params"] == sum(p.numel() for p in encoder.parameters())
    assert 1 <= res.metrics["best_epoch"] <= 2
