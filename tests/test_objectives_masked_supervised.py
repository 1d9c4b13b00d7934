"""Pretraining objectives ``supervised`` (multi-label BCE) and ``mae`` (masked patch reconstruction)."""

import numpy as np
import pytest
import torch

from ecgstudy.models import build_encoder
from ecgstudy.objectives.augment import AugmentConfig
from ecgstudy.objectives.masked import MAEOptions, MaskedReconstruction, hide_cells
from ecgstudy.objectives.base import OBJECTIVES, ObjectiveContext, build_objective
from ecgstudy.objectives.supervised import Supervised, SupervisedOptions
from ecgstudy.engine.train import autocast

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CONTEXT = ObjectiveContext(fs=100.0, n_samples=400, n_labels=3, pos_weight=(1.0, 2.0, 500.0), augment=AugmentConfig(rlm_p=0.25))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _labelled_batch(n=16, length=400, seed=0):
    """Records with their own rhythm and lead gains (as tests/test_pretrain.py) plus one sinusoid per
    positive label on a label-specific lead group, so the 3 labels are learnable from the signal;
    standardised per lead like the store's signals."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    y = (rng.random((n, 3)) < 0.4).astype(np.float32)
    x = np.empty((n, 12, length), np.float32)
    for i in range(n):
        rate, phase, width = rng.uniform(0.8, 2.0), rng.uniform(0, 1), rng.uniform(0.001, 0.01)
        beat = np.exp(-(((t * rate + phase) % 1.0 - 0.5) ** 2) / width)
        x[i] = rng.normal(0, 1, (12, 1)) * beat + 0.05 * rng.normal(size=(12, length))
        for k in np.flatnonzero(y[i]):
            x[i, k::3] += np.sin(2 * np.pi * (2.0 + 1.5 * k) * t)
    x = (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)
    return {"x": torch.from_numpy(x), "lead_mask": torch.ones(n, 12, dtype=torch.bool), "y": torch.from_numpy(y)}


def _build(name, options, seed=0):
    torch.manual_seed(seed)
    encoder = build_encoder("net1d", "tiny")
    return encoder, build_objective(name, options, encoder, CONTEXT)


def _train(encoder, objective, batch, steps=15, lr=3e-3, seed=0):
    opt = torch.optim.AdamW([*encoder.parameters(), *objective.parameters()], lr=lr)
    gen, losses = _gen(seed), []
    for _ in range(steps):
        loss, logs = objective(encoder, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, logs


def test_both_objectives_are_registered_with_options():
    assert OBJECTIVES["supervised"] is Supervised and Supervised.needs_labels
    assert OBJECTIVES["mae"] is MaskedReconstruction and not MaskedReconstruction.needs_labels
    assert Supervised.archs is None and MaskedReconstruction.archs is None
    SupervisedOptions().validate()
    MAEOptions().validate()
    with pytest.raises(ValueError, match="unknown label task"):
        SupervisedOptions(task="nope").validate()
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEOptions(mask_ratio=1.0).validate()


def test_supervised_loss_decreases_and_logs_bce():
    encoder, objective = _build("supervised", SupervisedOptions())
    assert torch.equal(objective.pos_weight, torch.tensor([1.0, 2.0, 100.0]))  # capped as fine-tuning caps
    losses, logs = _train(encoder, objective, _labelled_batch())
    assert np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4])
    assert set(logs) == {"bce"} and logs["bce"] == pytest.approx(losses[-1])


def test_mae_loss_decreases_and_logs_masked_mse():
    encoder, objective = _build("mae", MAEOptions(patch_s=0.25, decoder_hidden=64))
    losses, logs = _train(encoder, objective, _labelled_batch(), steps=20, lr=1e-2)
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])
    assert set(logs) == {"mse_masked"}


@pytest.mark.parametrize(
    "name,options",
    [("supervised", SupervisedOptions(crop_s=2.5, augment=True)), ("mae", MAEOptions(crop_s=3.0, decoder_hidden=32))],
)
def test_same_seed_same_loss_and_bf16_gives_a_float32_loss(name, options):
    batch = _labelled_batch(n=8)
    runs = []
    for _ in range(2):
        encoder, objective = _build(name, options)
        runs.append(objective(encoder, batch, _gen(5))[0].item())
    assert runs[0] == runs[1]
    other = objective(encoder, batch, _gen(6))[0].item()
    assert other != runs[0]  # crops, augmentations and masks come from the generator
    with autocast(torch.device("cpu"), True):
        loss, _ = objective(encoder, batch, _gen(5))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(runs[0], rel=0.1)


def test_mae_on_lead_i_only_ignores_the_absent_leads():
    encoder, objective = _build("mae", MAEOptions(patch_s=0.25, decoder_hidden=32))
    batch = _labelled_batch(n=4)
    mask = torch.zeros(4, 12, dtype=torch.bool)
    mask[:, 0] = True  # only lead I
    lead_i = {"x": batch["x"] * mask[:, :, None], "lead_mask": mask}
    garbage = {"x": torch.where(mask[:, :, None], batch["x"], 50 * torch.randn(4, 12, 400)), "lead_mask": mask}
    a, logs = objective(encoder, lead_i, _gen(1))
    b, _ = objective(encoder, garbage, _gen(1))
    assert torch.isfinite(a) and a.item() == b.item()  # absent leads: neither inputs nor targets
    hidden = hide_cells(mask, 16, 0.75, True, _gen(1))
    assert hidden[:, 1:].sum() == 0 and (hidden[:, 0].sum(dim=1) == 12).all()
    a.backward()
    assert all(p.grad is not None for p in objective.parameters())


class _StridedEncoder(torch.nn.Module):
    """The smallest encoder of the contract: one strided conv, trailing samples dropped (as wav2vec2)."""

    n_leads, embed_dim, downsampling = 12, 16, 16

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(12, 16, 16, stride=16)

    def forward(self, x, lead_mask):
        return self.conv(x * lead_mask[:, :, None])  # (B, 16, T // 16)


def test_mae_works_with_any_encoder_of_the_contract():
    torch.manual_seed(0)
    encoder = _StridedEncoder()
    objective = build_objective("mae", MAEOptions(patch_s=0.41, decoder_hidden=0), encoder, ObjectiveContext(100.0, 410))
    batch = _labelled_batch(n=4, length=410)  # 10 patches of 41; 25 steps x 16 = 400 samples cover 9 of them
    loss, logs = objective(encoder, batch, _gen())
    assert torch.isfinite(loss) and logs["mse_masked"] > 0
    loss.backward()
    assert encoder.conv.weight.grad is not None


def test_hide_cells_hides_the_ratio_of_present_cells_per_record():
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 6:] = False
    mask[2] = False  # a record without leads: nothing to hide or score
    hidden = hide_cells(mask, 10, 0.75, True, _gen())
    assert hidden[0].sum() == 90 and hidden[1].sum() == 45 and hidden[2].sum() == 0
    assert not (hidden & ~mask[:, :, None]).any()
    whole = hide_cells(mask, 10, 0.75, False, _gen())
    assert (whole[0] == whole[0, :1]).all() and whole[0, 0].sum() == 8  # the same 8 time patches on every lead
    assert not whole[1, 6:].any()
    assert torch.equal(hidden, hide_cells(mask, 10, 0.75, True, _gen()))


def test_each_encoder_step_decodes_the_samples_it_covers():
    objective = MaskedReconstruction(embed_dim=4, n_leads=2, downsampling=8, patch_len=5, decoder_hidden=0)
    with torch.no_grad():
        objective.decoder.weight.zero_()
        objective.decoder.bias.zero_()
        objective.decoder.weight[:, 0, 0] = 1.0  # every output sample = feature channel 0 of its step
    features = torch.zeros(1, 4, 3)
    features[0, 0] = torch.tensor([0.0, 1.0, 2.0])
    out = objective.reconstruct(features, 20)  # step i covers samples [8i, 8i + 8)
    assert out.shape == (1, 2, 20)
    assert torch.equal(out[0, 1], torch.arange(20).div(8, rounding_mode="floor").float())
    assert objective.reconstruct(features, 30).shape == (1, 2, 24)  # no more than 3 steps x 8 samples


def test_configuration_errors_are_clear():
    encoder = build_encoder("net1d", "tiny")
    with pytest.raises(ValueError, match="needs labels"):
        build_objective("supervised", SupervisedOptions(), encoder, ObjectiveContext(fs=100.0, n_samples=400))
    short = ObjectiveContext(100.0, 400, n_labels=3, pos_weight=(1.0, 1.0))
    with pytest.raises(ValueError, match="pos_weight has 2 values for 3 labels"):
        build_objective("supervised", SupervisedOptions(), encoder, short)
    build_objective("supervised", SupervisedOptions(pos_weight=False), encoder, ObjectiveContext(100.0, 400, n_labels=3))
    with pytest.raises(ValueError, match="at least 2 patches"):
        build_objective("mae", MAEOptions(patch_s=3.0), encoder, CONTEXT)
    with pytest.raises(ValueError, match="downsampling"):
        build_objective("mae", MAEOptions(), torch.nn.Linear(2, 2), CONTEXT)
    with pytest.raises(TypeError, match="MAEOptions"):
        build_objective("mae", SupervisedOptions(), encoder, CONTEXT)
