"""Fine-tuning at the PTB-XL benchmark protocol: random training crops, sliding-window validation and test."""

import numpy as np
import pytest
import torch
from _store_builder import build_store

from ecgstudy import config
from ecgstudy.engine import evaluate
from ecgstudy.stages import finetune
from ecgstudy.stages.finetune import FinetuneConfig, train_all
from ecgstudy.data.labels import task_labels
from ecgstudy.models import build_encoder
from ecgstudy.models.checkpoint import load_classifier, preprocessing_spec, save_checkpoint
from ecgstudy.data.store import ECGDataset, Store

pytestmark = pytest.mark.usefixtures("torch_one_thread")

BENCHMARK = {"train_crop_s": 2.5, "eval_window_s": 2.5, "eval_stride_s": 1.25, "eval_aggregate": "max"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ftw")
    store_dir = build_store(root / "main", 120, seed=5)
    torch.manual_seed(0)
    encoder = save_checkpoint(root / "encoder.pt", build_encoder("net1d", "tiny"), config={},
                              preprocessing=preprocessing_spec(Store(store_dir).meta), labels=[])
    cfg = config.from_dict(FinetuneConfig, {
        **BENCHMARK, "strategies": ["scratch", "linear_probe"], "fractions": [1.0], "eval_splits": ["test"],
        "min_positives": 3,
        "optim": {"epochs": 2, "min_steps": 0, "batch_size": 32, "bf16": False, "progress": False, "max_evals": 2},
        "probe": {"epochs": 10, "min_steps": 0, "batch_size": 64, "bf16": False, "progress": False},
    }, "finetune")
    return {"root": root, "store": store_dir, "encoder": encoder, "cfg": cfg}


def test_config_checks_lengths_against_the_records():
    cfg = config.from_dict(FinetuneConfig, BENCHMARK, "finetune")
    assert cfg.input_samples(100.0, 1000) == (250, (250, 125))
    assert FinetuneConfig().input_samples(100.0, 1000) == (None, None)  # default: whole records, as before
    assert "max of the window probabilities" in cfg.protocol()["eval_inputs"]
    with pytest.raises(ValueError, match=r"finetune.eval_window_s = 12.0 s is 1200 samples .* 1000 samples"):
        config.from_dict(FinetuneConfig, {"eval_window_s": 12.0}, "finetune").input_samples(100.0, 1000)
    with pytest.raises(config.ConfigError, match="train_crop_s must be positive"):
        config.from_dict(FinetuneConfig, {"train_crop_s": 0.0}, "finetune")
    with pytest.raises(config.ConfigError, match="eval_aggregate"):
        config.from_dict(FinetuneConfig, {"eval_aggregate": "median"}, "finetune")


def test_benchmark_protocol_end_to_end(setup, monkeypatch):
    seen = {}
    real_train_full = finetune.train_full  # the stage's reference to the engine function

    def spy(encoder, train_set, val_set, *args, **kwargs):
        seen.update(crop=train_set.crop, random=train_set.random_crop, val_crop=val_set.crop, windows=kwargs["windows"])
        return real_train_full(encoder, train_set, val_set, *args, **kwargs)

    monkeypatch.setattr(finetune, "train_full", spy)
    res = train_all(setup["cfg"], setup["store"], setup["encoder"], setup["root"] / "models", seed=0)
    # full fine-tunes: random 2.5 s training crops; validation on whole records cut into windows
    assert seen == {"crop": 250, "random": True, "val_crop": 1000, "windows": (250, 125, "max")}
    assert res.metrics["protocol"]["train_inputs"].startswith("random 2.5 s crops")
    assert np.isfinite(res.results[["auroc", "auprc"]].to_numpy()).all()

    # the reported test scores are the max over sliding windows of each saved model
    store = Store(setup["store"])
    tl = task_labels(store, "all", 3, within=store.indices("train"))
    test = ECGDataset(store, [i for i in store.indices("test") if tl.keep[i]], labels=tl.y)
    for strategy in ("scratch", "linear_probe"):
        model, info = load_classifier(setup["root"] / "models" / f"{strategy}_1.pt")
        assert info["config"]["eval_window_s"] == 2.5
        probs, fields = evaluate.predict_windows(lambda b: model(b["x"], b["lead_mask"].bool()), test, 250, 125,
                                                 "max", bf16=False)
        row = res.results.query("strategy == @strategy").iloc[0]
        assert evaluate.macro(fields["y"], probs) == pytest.approx(row["auroc"], abs=1e-6)


def test_training_crops_change_every_epoch(setup):
    store = Store(setup["store"])
    data = ECGDataset(store, store.indices("train")[:20], crop=250, random_crop=True, seed=0)
    first = [data.crop_start(i) for i in range(20)]
    data.set_epoch(1)
    assert [data.crop_start(i) for i in range(20)] != first
    assert all(0 <= s <= 750 for s in first)
