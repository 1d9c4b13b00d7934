"""Encoders and heads: shapes, parameter counts of the presets, lead masking, reduced-lead inputs."""

import math

import pytest
import torch

from ecgstudy.models import Classifier, build_encoder, count_parameters, encoder_from_spec, net1d

# (preset, parameter range): ECGFounder publishes ~31 M for base; tiny must fit the CPU budget.
PRESET_PARAMS = {"tiny": (0.3e6, 1.0e6), "small": (1.0e6, 1.5e6), "medium": (3e6, 8e6), "base": (29e6, 33e6)}


@pytest.mark.parametrize("preset", sorted(PRESET_PARAMS))
def test_preset_parameter_counts_and_output_shapes(preset):
    torch.manual_seed(0)
    enc = build_encoder("net1d", preset)
    low, high = PRESET_PARAMS[preset]
    assert low <= count_parameters(enc) <= high
    length = 5000 if preset == "base" else 1000  # base at ECGFounder's 12 x 5000 input
    batch = 1 if preset == "base" else 2
    x = torch.randn(batch, 12, length)
    enc.eval()
    with torch.no_grad():
        feats = enc(x)
    assert feats.shape == (batch, enc.embed_dim, math.ceil(length / enc.downsampling))
    assert torch.allclose(enc.embed(x), feats.mean(dim=-1))
    assert enc.embed_dim == net1d.PRESETS[preset].filters[-1]


def test_odd_lengths_and_batch_one():
    enc = build_encoder("net1d", "tiny").eval()
    with torch.no_grad():
        for length in (250, 333, 999):
            assert enc(torch.randn(1, 12, length)).shape == (1, 256, math.ceil(length / 256))


def test_masked_leads_do_not_influence_the_output():
    torch.manual_seed(0)
    enc = build_encoder("net1d", "tiny").eval()
    x = torch.randn(3, 12, 500)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[:, 0] = True  # lead I only
    other = x.clone()
    other[:, 1:] = torch.randn(3, 11, 500) * 5  # different content on the masked leads
    with torch.no_grad():
        a, b = enc.embed(x, mask), enc.embed(other, mask)
        full = enc.embed(x)
    assert torch.allclose(a, b)
    assert not torch.allclose(a, full)  # the mask really changes what the encoder sees


def test_reduced_lead_classifier_end_to_end():
    torch.manual_seed(0)
    model = Classifier(build_encoder("net1d", "tiny"), n_labels=3)
    x = torch.randn(4, 12, 400, requires_grad=True)
    mask = torch.zeros(4, 12, dtype=torch.bool)
    mask[:, 0] = True
    logits = model(x, mask)
    assert logits.shape == (4, 3)
    logits.sum().backward()
    assert x.grad[:, 1:].abs().sum() == 0  # no signal flows from absent leads
    assert x.grad[:, 0].abs().sum() > 0
    assert model.embed(x, mask).shape == (4, model.encoder.embed_dim)


def test_frozen_classifier_keeps_encoder_in_eval_and_without_grad():
    model = Classifier(build_encoder("net1d", "tiny"), n_labels=2, freeze_encoder=True)
    model.train()
    assert not model.encoder.training and model.head.training
    assert all(not p.requires_grad for p in model.encoder.parameters())
    assert count_parameters(model, trainable_only=True) == 256 * 2 + 2
    model.set_frozen(False)
    model.train()
    assert model.encoder.training


def test_rebuild_from_spec_and_overrides():
    enc = build_encoder("net1d", "tiny", n_leads=1, kernel_size=8)
    again = encoder_from_spec(enc.spec_dict)
    assert again.spec == enc.spec and again.n_leads == 1
    assert again(torch.randn(2, 1, 300)).shape[1] == enc.embed_dim


def test_bad_requests_fail_clearly():
    with pytest.raises(ValueError, match="unknown encoder architecture"):
        build_encoder("resnet9000", "tiny")
    with pytest.raises(ValueError, match="unknown net1d preset"):
        build_encoder("net1d", "huge")
    with pytest.raises(ValueError, match="unknown net1d override"):
        build_encoder("net1d", "tiny", widht=3)
    enc = build_encoder("net1d", "tiny")
    with pytest.raises(ValueError, match=r"\(B, 12, T\)"):
        enc(torch.randn(2, 8, 100))
