"""Fine-tuning stage: patient-level label fractions, the four strategies, checkpoints, metrics."""

import numpy as np
import pytest
import torch
from _store_builder import build_store

from ecgstudy import config
from ecgstudy.engine.probes import pos_weights
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.stages.evaluate import Bootstrap, finetune_statistics
from ecgstudy.stages.finetune import FinetuneConfig, patient_subsample, train_all
from ecgstudy.models.checkpoint import CheckpointError, load_classifier, load_encoder
from ecgstudy.plots.training import label_efficiency
from ecgstudy.stages.pretrain import PretrainConfig, run_pretrain
from ecgstudy.data.store import ECGDataset, Store
from ecgstudy.engine.train import TrainConfig, predict


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    store = build_store(root / "main", 160, seed=2)
    pre = run_pretrain(PretrainConfig(optim=TrainConfig(epochs=1, batch_size=32, progress=False, bf16=False)), store, root / "pre", seed=0)
    cfg = FinetuneConfig(
        fractions=[0.3, 1.0], min_positives=3,
        optim=TrainConfig(epochs=2, batch_size=32, progress=False, max_evals=2, bf16=False),
        probe=TrainConfig(epochs=30, batch_size=64, lr=1e-2, bf16=False, progress=False),
    )
    result = train_all(cfg, store, pre.checkpoint, root / "models", seed=0)
    stats = finetune_statistics(result.scores, Bootstrap(n_boot=30, min_positives=1), seed=0)
    return {"root": root, "store": store, "encoder": pre.checkpoint, "cfg": cfg, "result": result, "stats": stats}


def test_patient_subsample_is_nested_patient_level_and_seeded():
    patients = np.repeat([f"p{i}" for i in range(50)], 2)  # two records per patient
    rows = np.arange(100)
    small = patient_subsample(patients, rows, 0.1, seed=0)
    big = patient_subsample(patients, rows, 0.5, seed=0)
    assert len(set(patients[small])) == 5 and len(set(patients[big])) == 25
    assert set(small) <= set(big)  # nested
    assert all((patients[big] == p).sum() == 2 for p in set(patients[big]))  # whole patients
    assert np.array_equal(small, patient_subsample(patients, rows, 0.1, seed=0))
    assert not np.array_equal(small, patient_subsample(patients, rows, 0.1, seed=1))
    assert len(patient_subsample(patients, rows, 0.001, seed=0)) == 2  # at least one patient


def test_pos_weights():
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 0]])
    assert torch.allclose(pos_weights(y), torch.tensor([3.0, 1.0]))


def test_every_strategy_and_fraction_is_scored_in_range(setup):
    res, cfg = setup["result"], setup["cfg"]
    intervals, _, comparisons = setup["stats"]
    assert len(res.results) == len(intervals) == 4 * 2 * 2  # strategies x fractions x splits
    assert set(res.results["strategy"]) == {"pretrained", "scratch", "linear_probe", "random_probe"}
    for metric in ("auroc", "auprc"):
        values = intervals[[metric, f"{metric}_low", f"{metric}_high"]].to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
        assert (intervals[f"{metric}_low"] <= intervals[metric] + 1e-12).all()
        assert (intervals[metric] <= intervals[f"{metric}_high"] + 1e-12).all()
        same_set = (intervals["n_labels"].to_numpy() == res.results["n_labels"].to_numpy())  # fixed set = evaluable set
        assert np.allclose(intervals[metric].to_numpy()[same_set], res.results[metric].to_numpy()[same_set], atol=1e-12)
    small = res.results[res.results["fraction"] == 0.3]["n_train"].iloc[0]
    full = res.results[res.results["fraction"] == 1.0]["n_train"].iloc[0]
    assert 0 < small < full
    assert set(comparisons["split"]) == {"test", "external"} and len(comparisons) == 6 * 2 * 2 * 2  # pairs x fractions x splits x metrics
    assert set(res.curves["strategy"]) == set(cfg.strategies)
    assert res.metrics["test"]["pretrained_1"]["auroc"] == pytest.approx(
        res.results.query("strategy == 'pretrained' and fraction == 1.0 and split == 'test'")["auroc"].iloc[0]
    )


def test_checkpoints_reproduce_the_reported_predictions(setup):
    res, store_dir = setup["result"], setup["store"]
    model, info = load_classifier(setup["root"] / "models" / "scratch_1.pt")
    assert info["labels"] == res.labels and info["config"]["strategy"] == "scratch"
    store = Store(store_dir)
    from ecgstudy.data.labels import task_labels

    tl = task_labels(store, "all", 3, within=store.indices("train"))
    test = [i for i in store.indices("test") if tl.keep[i]]
    logits, fields = predict(lambda b: model(b["x"], b["lead_mask"].bool()), ECGDataset(store, test, labels=tl.y), bf16=False)  # as the stage predicted (optim.bf16)
    from ecgstudy.engine import evaluate

    row = res.results.query("strategy == 'scratch' and fraction == 1.0 and split == 'test'").iloc[0]
    assert evaluate.macro(fields["y"], logits) == pytest.approx(row["auroc"], abs=1e-9)


def test_probe_standardises_features_and_folds_it_into_the_head():
    from ecgstudy.engine import evaluate
    from ecgstudy.engine.probes import train_probe
    from ecgstudy.models import build_encoder

    rng = np.random.default_rng(0)
    y = (rng.random((200, 2)) < 0.4).astype(np.float32)
    z = rng.normal(size=(200, 256)).astype(np.float32)
    z[:, :2] += 2.0 * y
    z = 1000.0 * z + 300.0  # a feature scale a raw linear probe could not handle at this learning rate
    cfg = TrainConfig(epochs=40, batch_size=64, lr=1e-2, bf16=False, progress=False)
    model, _ = train_probe(build_encoder("net1d", "tiny"), z, y, None, None, cfg, seed=0)
    with torch.no_grad():
        logits = model.head(torch.as_tensor(z)).numpy()  # raw features through the folded head
    assert evaluate.macro(y, logits) > 0.9


def test_linear_probe_leaves_the_encoder_untouched(setup):
    pretrained, _ = load_encoder(setup["encoder"])
    for fraction in ("0.3", "1"):
        probe, _ = load_classifier(setup["root"] / "models" / f"linear_probe_{fraction}.pt")
        for key, value in pretrained.state_dict().items():
            assert torch.equal(probe.encoder.state_dict()[key], value), key  # weights and BN statistics
    tuned, _ = load_classifier(setup["root"] / "models" / "pretrained_1.pt")
    assert not torch.equal(tuned.encoder.stem.weight, pretrained.stem.weight)  # full fine-tuning did move it


def test_saved_scores_give_the_same_statistics_and_figure(setup, tmp_path):
    saved = ScoreFile.load(setup["result"].scores.save(tmp_path / "scores.npz"))
    assert saved.meta["strategies"] == setup["cfg"].strategies and saved.meta["fractions"] == [0.3, 1.0]
    again = finetune_statistics(saved, Bootstrap(n_boot=30, min_positives=1), seed=0)
    for before, after in zip(setup["stats"], again):
        assert before.equals(after)  # bit for bit: the evaluate stage sees what training produced
    fig = label_efficiency(again[0], tmp_path / "fig.png")
    assert fig.stat().st_size > 10_000


def test_same_seed_same_numbers(setup):
    cfg = FinetuneConfig(
        strategies=["scratch", "random_probe"], fractions=[0.3], min_positives=3, eval_splits=["test"],
        optim=TrainConfig(epochs=1, batch_size=32, progress=False, bf16=False), probe=TrainConfig(epochs=5, bf16=False, progress=False),
    )
    a = train_all(cfg, setup["store"], setup["encoder"], setup["root"] / "again_a", seed=5)
    b = train_all(cfg, setup["store"], setup["encoder"], setup["root"] / "again_b", seed=5)
    assert np.array_equal(a.results[["auroc", "auprc"]].to_numpy(), b.results[["auroc", "auprc"]].to_numpy())
    for key, scores in a.scores.scores.items():
        assert np.array_equal(scores, b.scores.scores[key])


def test_mismatched_preprocessing_and_bad_config_fail(setup, tmp_path):
    other = build_store(tmp_path / "other", 40, fs=50.0, n_samples=500)
    with pytest.raises(CheckpointError, match="fs: model 100.0 vs store 50.0"):
        train_all(setup["cfg"], other, setup["encoder"], tmp_path / "m", seed=0)
    with pytest.raises(config.ConfigError, match="unknown strategies"):
        config.from_dict(FinetuneConfig, {"strategies": ["pretrained", "magic"]}, "finetune")
    with pytest.raises(config.ConfigError, match="fractions"):
        config.from_dict(FinetuneConfig, {"fractions": [0.0, 1.0]}, "finetune")
