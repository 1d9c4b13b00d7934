"""Checkpoints: round trip, provenance carried, strict key checks, weights-only loading."""

import pytest
import torch

from ecgstudy.models import Classifier, build_encoder
from ecgstudy.models.checkpoint import (
    CheckpointError,
    check_preprocessing,
    load_classifier,
    load_encoder,
    preprocessing_spec,
    save_checkpoint,
)

META = {"fs": 100.0, "n_samples": 1000, "leads": ["I", "II"], "preprocessing": {"normalise": "per_lead_zscore"}}


def _classifier(seed=0):
    torch.manual_seed(seed)
    model = Classifier(build_encoder("net1d", "tiny"), n_labels=3)
    # move batch-norm statistics away from their defaults, so buffers are checked too
    model.train()
    model(torch.randn(8, 12, 300))
    return model.eval()


def test_classifier_round_trip_reproduces_outputs_and_provenance(tmp_path):
    model = _classifier()
    path = save_checkpoint(
        tmp_path / "m.pt", model, config={"lr": 1e-3, "fractions": (0.1, 1.0)},
        preprocessing=preprocessing_spec(META), labels=["NORM", "AFIB", "LVH"], extra={"best_epoch": 4},
    )
    loaded, info = load_classifier(path)
    x = torch.randn(2, 12, 300)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert info["labels"] == ["NORM", "AFIB", "LVH"]
    assert info["config"] == {"lr": 1e-3, "fractions": [0.1, 1.0]}
    assert info["preprocessing"] == {"normalise": "per_lead_zscore", "fs": 100.0, "n_samples": 1000, "leads": ["I", "II"]}
    assert info["extra"]["best_epoch"] == 4
    # the file holds tensors and plain values only
    payload = torch.load(path, weights_only=True)
    assert payload["kind"] == "classifier"


def test_encoder_from_classifier_and_from_encoder_checkpoints(tmp_path):
    model = _classifier()
    save_checkpoint(tmp_path / "c.pt", model, config={}, preprocessing={}, labels=["a", "b", "c"])
    save_checkpoint(tmp_path / "e.pt", model.encoder, config={}, preprocessing={}, labels=[])
    x = torch.randn(2, 12, 300)
    for name in ("c.pt", "e.pt"):
        enc, info = load_encoder(tmp_path / name)
        with torch.no_grad():
            assert torch.equal(enc.embed(x), model.encoder.embed(x))
    with pytest.raises(CheckpointError, match="not a classifier"):
        load_classifier(tmp_path / "e.pt")


def _tamper(path, change):
    payload = torch.load(path, weights_only=True)
    change(payload["state_dict"])
    torch.save(payload, path)


def test_missing_key_fails_listing_it(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _classifier(), config={}, preprocessing={}, labels=["a", "b", "c"])
    _tamper(path, lambda s: s.pop("encoder.stem.weight"))
    with pytest.raises(CheckpointError, match=r"missing keys \[encoder\.stem\.weight\]"):
        load_classifier(path)


def test_unexpected_key_fails_listing_it(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _classifier(), config={}, preprocessing={}, labels=["a", "b", "c"])
    _tamper(path, lambda s: s.update({"encoder.extra_layer.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected keys \[encoder\.extra_layer\.weight\]"):
        load_classifier(path)
    with pytest.raises(CheckpointError, match="extra_layer"):
        load_encoder(path)


def test_shape_mismatch_fails(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _classifier(), config={}, preprocessing={}, labels=["a", "b", "c"])
    _tamper(path, lambda s: s.update({"head.bias": torch.zeros(5)}))
    with pytest.raises(CheckpointError, match=r"shape mismatches \[head\.bias \(5,\) != \(3,\)\]"):
        load_classifier(path)


def test_not_a_checkpoint_and_non_plain_config(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="format marker"):
        load_encoder(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "absent.pt")
    with pytest.raises(TypeError, match=r"config\.bad"):
        save_checkpoint(tmp_path / "x.pt", _classifier(), config={"bad": object()}, preprocessing={}, labels=["a", "b", "c"])


def test_preprocessing_mismatch_is_reported():
    spec = preprocessing_spec(META)
    check_preprocessing(spec, {**META, "n_samples": 500}, "m.pt")  # other lengths are fine
    with pytest.raises(CheckpointError, match="fs: model 100.0 vs store 500"):
        check_preprocessing(spec, {**META, "fs": 500}, "m.pt")
    with pytest.raises(CheckpointError, match="normalise"):
        check_preprocessing(spec, {**META, "preprocessing": {"normalise": "none"}}, "m.pt")
