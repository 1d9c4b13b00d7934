"""wav2vec 2.0 encoder (shapes, sizes, leads, checkpoints, bf16) and the w2v / hybrid objectives."""

import dataclasses

import numpy as np
import pytest
import torch
from _synthetic import structured_batch

from ecgstudy import config
from ecgstudy.models import build_encoder, count_parameters, encoder_from_spec, wav2vec2
from ecgstudy.models.checkpoint import CheckpointError, load_encoder, save_checkpoint
from ecgstudy.objectives.augment import AugmentConfig
from ecgstudy.objectives.base import ObjectiveContext, build_objective
from ecgstudy.objectives.wav2vec import (
    W2V,
    GumbelQuantiser,
    Hybrid,
    HybridOptions,
    W2VOptions,
    span_mask,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# (preset, parameter range): ECG-FM publishes ~91 M for base (asserted within 2 %); tiny must fit the CPU budget.
PRESET_PARAMS = {
    "tiny": (0.5e6, 1.2e6), "small": (2.5e6, 5e6), "medium": (20e6, 35e6), "base": (0.98 * 91e6, 1.02 * 91e6)
}
CONTEXT = ObjectiveContext(fs=100, n_samples=400, augment=AugmentConfig(rlm_p=0.25))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)





@pytest.mark.parametrize("preset", sorted(PRESET_PARAMS))
def test_preset_parameter_counts_and_output_shapes(preset):
    torch.manual_seed(0)
    enc = build_encoder("wav2vec2", preset).eval()
    low, high = PRESET_PARAMS[preset]
    assert low <= count_parameters(enc) <= high
    length = 2503 if preset == "base" else 403  # base at ECG-FM's 5 s x 500 Hz; neither divisible by downsampling
    x = torch.randn(1 if preset == "base" else 2, 12, length)
    with torch.no_grad():
        feats = enc(x)
        pooled = enc.embed(x)
    expected = length // enc.downsampling  # k = s = 2 convolutions drop the remainder
    assert enc.output_length(length) == expected
    assert feats.shape == (len(x), enc.embed_dim, expected) and pooled.shape == (len(x), enc.embed_dim)
    assert torch.allclose(pooled, feats.mean(dim=-1), atol=1e-6)
    spec = wav2vec2.PRESETS[preset]
    assert enc.embed_dim == spec.width and enc.downsampling == 2 ** len(spec.conv_layers)


def test_base_is_ecg_fm_and_post_ln():
    spec = wav2vec2.PRESETS["base"]
    assert spec.conv_layers == ((256, 2, 2),) * 4
    assert (spec.width, spec.layers, spec.heads, spec.ffn) == (768, 12, 12, 3072)
    assert (spec.conv_pos, spec.conv_pos_groups, spec.layer_norm_first) == (128, 16, False)
    encoder = build_encoder("wav2vec2", "base")
    heads = build_objective("w2v", W2VOptions(segment_s=5.0, latent_vars=320, final_dim=256), encoder,
                            ObjectiveContext(fs=500, n_samples=5000))  # ECG-FM's quantiser and projections
    assert count_parameters(encoder) + count_parameters(heads) == pytest.approx(91e6, rel=0.01)


def test_pieces_compose_to_forward_and_time_mask_changes_only_context():
    torch.manual_seed(0)
    enc = build_encoder("wav2vec2", "tiny").eval()
    x = torch.randn(2, 12, 400)
    with torch.no_grad():
        local = enc.local_features(x)
        assert local.shape == (2, 50, enc.local_dim)
        assert torch.allclose(enc.normalise(enc.conv_features(x)), local)
        assert torch.allclose(enc.contextualise(local).transpose(1, 2), enc(x))
        mask = torch.zeros(2, 50, dtype=torch.bool)
        mask[:, 10:20] = True
        assert not torch.allclose(enc.contextualise(local, mask), enc.contextualise(local))
    with pytest.raises(ValueError, match="time_mask"):
        enc.contextualise(local, mask[:, :10])


def test_masked_leads_do_not_influence_the_output():
    torch.manual_seed(0)
    enc = build_encoder("wav2vec2", "tiny").eval()
    x = torch.randn(3, 12, 400)
    mask = torch.zeros(3, 12, dtype=torch.bool)
    mask[:, 1] = True  # lead II only
    other = x.clone()
    other[:, [0] + list(range(2, 12))] = torch.randn(3, 11, 400) * 5
    with torch.no_grad():
        a, b, full = enc.embed(x, mask), enc.embed(other, mask), enc.embed(x)
    assert torch.allclose(a, b)
    assert not torch.allclose(a, full)


def test_reduced_and_single_lead_inputs_train():
    torch.manual_seed(0)
    enc = build_encoder("wav2vec2", "tiny")
    x = torch.randn(4, 12, 300, requires_grad=True)
    mask = torch.zeros(4, 12, dtype=torch.bool)
    mask[:, 0] = True
    enc.embed(x, mask).sum().backward()
    assert x.grad[:, 1:].abs().sum() == 0 and x.grad[:, 0].abs().sum() > 0  # no signal from absent leads
    single = build_encoder("wav2vec2", "tiny", n_leads=1)  # a lead-I-only model
    assert single(torch.randn(2, 1, 300)).shape == (2, 128, 37)


def test_overrides_rebuild_from_spec_and_bad_requests():
    enc = build_encoder("wav2vec2", "tiny", conv_layers=[[32, 4, 4], [64, 2, 2]], layers=2, layer_norm_first=True)
    again = encoder_from_spec(enc.spec_dict)  # spec_dict holds lists, as YAML and checkpoints do
    assert again.spec == enc.spec and again.downsampling == 8 and len(again.layers) == 2
    assert again(torch.randn(1, 12, 200)).shape == (1, 128, 25)
    with pytest.raises(ValueError, match="unknown wav2vec2 preset"):
        build_encoder("wav2vec2", "huge")
    with pytest.raises(ValueError, match="unknown wav2vec2 override"):
        build_encoder("wav2vec2", "tiny", widht=64)
    with pytest.raises(ValueError, match="not divisible by heads"):
        build_encoder("wav2vec2", "tiny", heads=3)
    with pytest.raises(ValueError, match=r"conv_layers\[0\]"):
        build_encoder("wav2vec2", "tiny", conv_layers=[[64, 2]])
    with pytest.raises(ValueError, match=r"\(B, 12, T\)"):
        enc(torch.randn(2, 8, 100))
    with pytest.raises(ValueError, match="too short"):
        enc(torch.randn(2, 12, 7))


def test_checkpoint_round_trip_is_strict(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("wav2vec2", "tiny", layers=2).eval()
    path = save_checkpoint(tmp_path / "w2v.pt", enc, config={"arch": "wav2vec2"},
                           preprocessing={"fs": 100.0, "n_samples": 1000, "leads": ["I"] * 12}, labels=[])
    loaded, info = load_encoder(path)
    x = torch.randn(2, 12, 400)
    with torch.no_grad():
        assert torch.equal(loaded(x), enc(x))
    assert info["spec"]["arch"] == "wav2vec2" and loaded.spec == enc.spec
    payload = torch.load(path, weights_only=True)
    name = "pos_conv.conv.parametrizations.weight.original0"  # weight-norm gain: must travel too
    edits = ((lambda s: s.pop(name), "missing keys"), (lambda s: s.update(extra=torch.ones(1)), "unexpected keys"))
    for edit, message in edits:
        broken = {**payload, "state_dict": dict(payload["state_dict"])}
        edit(broken["state_dict"])
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(CheckpointError, match=message):
            load_encoder(tmp_path / "broken.pt")


def test_bf16_autocast_forward_matches_fp32():
    torch.manual_seed(0)
    enc = build_encoder("wav2vec2", "tiny").eval()
    x = torch.randn(2, 12, 400)
    with torch.no_grad():
        ref = enc.embed(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc.embed(x)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert torch.nn.functional.cosine_similarity(low.float(), ref).min() > 0.99


def test_span_mask_equal_counts_and_seeded():
    mask = span_mask(64, 50, 0.65, 10, 2, _gen(1))
    counts = mask.sum(dim=1)
    assert (counts == counts[0]).all() and counts[0] >= 2
    assert 0.2 < mask.float().mean() < 0.8  # 3-4 overlapping spans of 10, thinned to the batch's fewest
    assert torch.equal(mask, span_mask(64, 50, 0.65, 10, 2, _gen(1)))
    short = span_mask(4, 3, 0.65, 10, 2, _gen())  # span shrinks to leave room for 2 distinct starts
    assert (short.sum(dim=1) >= 2).all()
    with pytest.raises(ValueError, match="at least 2 time steps"):
        span_mask(4, 1, 0.65, 10, 2, _gen())


def test_quantiser_codes_and_perplexity():
    torch.manual_seed(0)
    quantiser = GumbelQuantiser(16, groups=2, entries=8, out_dim=12)
    h = torch.randn(200, 16)
    q, codes, code_ppl, prob_ppl = quantiser(h, 2.0, None)
    assert q.shape == (200, 12) and codes.shape == (200, 2) and 1 <= float(code_ppl) <= 16 >= float(prob_ppl.detach())
    assert torch.equal(q[:, :6], quantiser.codebook[0, codes[:, 0]])  # hard codes select codebook rows
    noisy, _, _, _ = quantiser(h, 2.0, _gen())
    assert torch.allclose(noisy, quantiser(h, 2.0, _gen())[0]) and noisy.requires_grad


def _train(objective, encoder, batch, steps, lr=1e-3, seed=0):
    """Adam steps on one batch; per-step loss and logs."""
    opt = torch.optim.Adam(list(encoder.parameters()) + list(objective.parameters()), lr=lr)
    generator = _gen(seed)
    history = []
    for _ in range(steps):
        loss, logs = objective(encoder, batch, generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"loss": float(loss.detach()), **logs})
    return history


def test_w2v_loss_decreases_and_logs():
    torch.manual_seed(0)
    encoder = build_encoder("wav2vec2", "tiny")
    objective = build_objective("w2v", W2VOptions(segment_s=3.0), encoder, CONTEXT)
    history = _train(objective, encoder, structured_batch(n=8), 12)
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert {"top1", "code_perplexity", "loss_contrastive", "loss_diversity", "feature_pen"} <= set(history[-1])
    assert 0 <= history[-1]["top1"] <= 1 and 1 <= history[-1]["code_perplexity"] <= 2 * 64
    assert int(objective.step) == 12 and history[-1]["gumbel_temp"] == pytest.approx(2.0 * 0.995**11)


def test_hybrid_loss_decreases_and_cmsc_learns():
    torch.manual_seed(0)
    encoder = build_encoder("wav2vec2", "tiny")
    objective = build_objective("hybrid", HybridOptions(w2v=W2VOptions(segment_s=2.0)), encoder, CONTEXT)
    assert isinstance(objective, Hybrid) and objective.segment_len == 200
    history = _train(objective, encoder, structured_batch(n=8), 15)
    losses = [h["loss"] for h in history]
    cmsc = [h["loss_cmsc"] for h in history]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]) and np.mean(cmsc[-3:]) < np.mean(cmsc[:3])
    assert {"top1", "cmsc_top1", "loss_w2v", "code_perplexity"} <= set(history[-1])


def test_objectives_refuse_other_encoders_and_options():
    net1d = build_encoder("net1d", "tiny")
    for name, options in (("w2v", W2VOptions()), ("hybrid", HybridOptions())):
        with pytest.raises(ValueError, match=r"needs an encoder of architecture \['wav2vec2'\], got 'net1d'"):
            build_objective(name, options, net1d, CONTEXT)
    with pytest.raises(TypeError, match="takes HybridOptions"):
        build_objective("hybrid", W2VOptions(), build_encoder("wav2vec2", "tiny"), CONTEXT)


def test_segments_must_fit_and_options_validate():
    enc = build_encoder("wav2vec2", "tiny")
    with pytest.raises(ValueError, match="exceeds records of 400"):
        W2V.from_config(W2VOptions(segment_s=5.0), enc, CONTEXT)
    with pytest.raises(ValueError, match="do not fit records of 400"):
        Hybrid.from_config(HybridOptions(), enc, CONTEXT)  # 2 x 4 s in 4 s records
    with pytest.raises(ValueError, match="at least 3"):
        W2V.from_config(W2VOptions(segment_s=0.2), enc, CONTEXT)  # 20 samples -> 2 tokens
    with pytest.raises(config.ConfigError, match="final_dim"):
        config.from_dict(W2VOptions, {"final_dim": 127}, "w2v")
    with pytest.raises(config.ConfigError, match="hybrid.w2v.mask_lenght"):
        config.from_dict(HybridOptions, {"w2v": {"mask_lenght": 3}}, "hybrid")
    opts = config.from_dict(HybridOptions, {"w2v": {"num_negatives": 5}, "cmsc_weight": 0.5}, "hybrid")
    assert opts.w2v.num_negatives == 5 and opts.w2v.mask_prob == 0.65 and opts.cmsc_weight == 0.5


@pytest.mark.parametrize("name", ["w2v", "hybrid"])
def test_same_seed_same_loss_and_bf16(name):
    options = W2VOptions(segment_s=2.0) if name == "w2v" else HybridOptions(w2v=W2VOptions(segment_s=2.0))
    batch = structured_batch(n=8)

    def run(seed, bf16=False, train=True):
        torch.manual_seed(0)  # encoder init and dropout
        encoder = build_encoder("wav2vec2", "tiny").train(train)
        objective = build_objective(name, options, encoder, CONTEXT).train(train)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, logs = objective(encoder, batch, _gen(seed))
        loss.backward()
        return loss.detach(), logs

    loss, _ = run(1)
    again, _ = run(1)
    other, _ = run(2)
    assert loss.dtype == torch.float32 and float(loss) == float(again) and float(loss) != float(other)
    ref, _ = run(1, train=False)
    low, _ = run(1, bf16=True, train=False)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert float(low) == pytest.approx(float(ref), rel=0.05)


def test_eval_mode_is_deterministic_and_does_not_anneal():
    torch.manual_seed(0)
    encoder = build_encoder("wav2vec2", "tiny").eval()
    objective = build_objective("w2v", dataclasses.replace(W2VOptions(segment_s=2.0), gumbel_temp_decay=1.0),
                                encoder, CONTEXT).eval()
    batch = structured_batch(n=4)
    with torch.no_grad():
        a, _ = objective(encoder, batch, _gen(3))
        b, _ = objective(encoder, batch, _gen(3))
    assert float(a) == float(b) and int(objective.step) == 0 and objective.gumbel_temperature == 2.0


def _sine_batch(n=16, length=400, seed=0):
    """Sinusoids of a per-record frequency and phase, per-lead gains: every token predictable from context."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    freq, phase = rng.uniform(0.5, 3.0, (n, 1, 1)), rng.uniform(0, 2 * np.pi, (n, 1, 1))
    x = rng.normal(0, 1, (n, 12, 1)) * np.sin(2 * np.pi * freq * t + phase) + 0.02 * rng.normal(size=(n, 12, length))
    return {"x": torch.from_numpy(x.astype(np.float32)), "lead_mask": torch.ones(n, 12, dtype=torch.bool)}


@pytest.mark.slow
def test_w2v_contrastive_part_learns_beyond_chance():
    """About 15 s: the masked-prediction term itself (not only the extra losses) improves."""
    torch.manual_seed(0)
    encoder = build_encoder("wav2vec2", "tiny")
    objective = build_objective("w2v", W2VOptions(segment_s=3.0), encoder, CONTEXT)
    history = _train(objective, encoder, _sine_batch(), 100)
    first = np.mean([h["loss_contrastive"] for h in history[:10]])
    last = np.mean([h["loss_contrastive"] for h in history[-10:]])
    assert last < first - 0.2 and np.mean([h["top1"] for h in history[-10:]]) > 0.2
