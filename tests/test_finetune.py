"""Fine-tuning stage: patient-level label fractions, repeats, equal tuning, the four strategies, guards."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from _store_builder import build_store

from ecgstudy import config
from ecgstudy.data.labels import task_labels
from ecgstudy.engine.probes import pos_weights
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.engine.tuning import repeat_seed
from ecgstudy.plots.training import label_efficiency
from ecgstudy.stages.evaluate import Bootstrap, finetune_statistics
from ecgstudy.stages import artifacts
from ecgstudy.stages.finetune import FinetuneConfig, patient_subsample, train_all
from ecgstudy.stages.outputs import without_timings
from ecgstudy.models.checkpoint import CheckpointError, load_classifier, load_encoder, save_checkpoint
from ecgstudy.stages.pretrain import PretrainConfig, PretrainRun, run_pretrain
from ecgstudy.data.store import ECGDataset, Store
from ecgstudy.engine.train import TrainConfig, predict


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _pretrain(store, folder, seed=0):
    cfg = PretrainConfig(runs=[PretrainRun()], keep="cmsc", steps=3, resume=False,
                         optim=TrainConfig(epochs=1, batch_size=32, progress=False, bf16=False))
    return run_pretrain(cfg, store, folder, seed=seed)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    store = build_store(root / "main", 160, seed=2)
    pre = _pretrain(store, root / "pre")
    cfg = FinetuneConfig(
        fractions=[0.3, 1.0], min_positives=3, repeats=2, lr_grid=[1e-3, 3e-3], weight_decay_grid=[0.01, 10.0],
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


def test_every_strategy_fraction_and_repeat_is_scored_in_range(setup):
    res, cfg = setup["result"], setup["cfg"]
    assert len(res.results) == 4 * 2 * 2 * 2  # strategies x fractions x repeats x splits
    assert set(res.results["strategy"]) == {"pretrained", "scratch", "linear_probe", "random_probe"}
    for metric in ("auroc", "auprc"):
        values = res.results[metric].to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    small = res.results[res.results["fraction"] == 0.3]["n_train"].iloc[0]
    full = res.results[res.results["fraction"] == 1.0]["n_train"].iloc[0]
    assert 0 < small < full
    assert set(res.curves["strategy"]) == set(cfg.strategies) and set(res.curves["repeat"]) == {0, 1}
    group = res.results.query("strategy == 'pretrained' and fraction == 1.0 and split == 'test'")
    assert res.metrics["test"]["pretrained_1"]["auroc"] == pytest.approx(group["auroc"].mean())
    assert res.metrics["test"]["pretrained_1"]["repeats"] == 2 and res.metrics["repeats"] == 2
    assert res.results["stopped_at_last_epoch"].dtype == bool and res.results["best_epoch"].between(1, 30).all()
    assert res.metrics["baseline_init"].startswith("twin ")  # random arms start from the pretrained run's twin
    assert not res.results["pretraining_label_leak"].any()


def test_repeats_draw_distinct_subsamples_and_seeds_shared_by_every_strategy(setup):
    res, scores = setup["result"], setup["result"].scores
    per_cell = res.results.groupby(["fraction", "repeat"])["n_train"].nunique()
    assert (per_cell == 1).all()  # every strategy of a repeat trains on the same subsample
    store = Store(setup["store"])
    tl = task_labels(store, "all", 3, within=store.indices("train"))
    train = np.asarray([i for i in store.indices("train") if tl.keep[i]])
    patients = store.records["patient_id"].astype(str).to_numpy()
    draws = [patient_subsample(patients, train, 0.3, repeat_seed(0, k)) for k in range(2)]
    assert not np.array_equal(draws[0], draws[1])  # repeats draw different label subsamples
    for k, rows in enumerate(draws):  # the stage trained repeat k on draw k
        assert res.results.query(f"fraction == 0.3 and repeat == {k}")["n_train"].unique().tolist() == [len(rows)]
    for strategy in setup["cfg"].strategies:
        for fraction in ("0.3", "1"):
            r0, r1 = scores.get(strategy, fraction, "r0", "test"), scores.get(strategy, fraction, "r1", "test")
            assert not np.array_equal(r0, r1), (strategy, fraction)  # even at fraction 1 the seeds differ
    assert scores.meta["repeats"] == 2 and len(scores.meta["models"]) == 4 * 2 * 2
    _, info = load_classifier(setup["root"] / "models" / "scratch_0.3.pt")
    assert info["config"]["repeat"] == 0 and info["config"]["seed"] == repeat_seed(0, 0)


def test_every_arm_gets_the_same_search_and_records_it(setup):
    res, meta = setup["result"], setup["result"].scores.meta
    tuning = res.tuning
    assert len(tuning) == 2 * (2 * 2 + 2 * 2)  # fractions x (two full arms x 2 lrs + two probe arms x 2 decays)
    for (strategy, fraction), rows in tuning.groupby(["strategy", "fraction"]):
        assert rows["chosen"].sum() == 1
        record = meta["tuning"][f"{strategy}/{fraction:g}"]
        chosen = rows.loc[rows["chosen"], "value"].iloc[0]
        assert record["chosen"] == chosen and record["grid"] == rows["value"].tolist()
        assert chosen == rows["value"].iloc[int(np.nanargmax(rows["val_score"].to_numpy()))]  # best validation score
        used = res.results.query("strategy == @strategy and fraction == @fraction")["tuned_value"].unique()
        assert list(used) == [chosen]  # every repeat trains with the chosen value
    assert set(tuning.loc[tuning["strategy"].isin(["pretrained", "scratch"]), "param"]) == {"lr"}
    assert set(tuning.loc[tuning["strategy"].isin(["linear_probe", "random_probe"]), "param"]) == {"weight_decay"}


def test_random_probe_uses_the_batchnorm_recalibrated_twin(setup):
    twin, _ = load_encoder(artifacts.twin_path(setup["encoder"].parent, "cmsc"))
    probe, _ = load_classifier(setup["root"] / "models" / "random_probe_1.pt")
    for key, value in twin.state_dict().items():
        assert torch.equal(probe.encoder.state_dict()[key], value), key
    running_var = [v for k, v in twin.state_dict().items() if k.endswith("running_var")]
    assert running_var and any(not torch.allclose(v, torch.ones_like(v)) for v in running_var)  # re-estimated


def test_checkpoints_reproduce_the_reported_predictions(setup):
    res, store_dir = setup["result"], setup["store"]
    model, info = load_classifier(setup["root"] / "models" / "scratch_1.pt")
    assert info["labels"] == res.labels and info["config"]["strategy"] == "scratch"
    store = Store(store_dir)
    tl = task_labels(store, "all", 3, within=store.indices("train"))
    test = [i for i in store.indices("test") if tl.keep[i]]
    logits, fields = predict(lambda b: model(b["x"], b["lead_mask"].bool()), ECGDataset(store, test, labels=tl.y), bf16=False)  # as the stage predicted (optim.bf16)
    from ecgstudy.engine import evaluate

    row = res.results.query("strategy == 'scratch' and fraction == 1.0 and split == 'test' and repeat == 0").iloc[0]
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


def test_saved_scores_round_trip(setup, tmp_path):
    scores = setup["result"].scores
    saved = ScoreFile.load(scores.save(tmp_path / "scores.npz"))
    assert saved.meta["strategies"] == setup["cfg"].strategies and saved.meta["fractions"] == [0.3, 1.0]
    assert saved.meta["tuning"] == json.loads(json.dumps(scores.meta["tuning"]))
    assert all(key[-2] in ("r0", "r1") for key in saved.scores)  # every model key ends with its repeat
    for key, value in scores.scores.items():
        assert np.array_equal(saved.scores[key], value)
    again = finetune_statistics(saved, Bootstrap(n_boot=30, min_positives=1), seed=0)
    for before, after in zip(setup["stats"], again):
        assert before.equals(after)  # bit for bit: the evaluate stage sees what training produced
    fig = label_efficiency(again[0], tmp_path / "fig.png")
    assert fig.stat().st_size > 10_000


def test_same_seed_same_numbers(setup):
    cfg = FinetuneConfig(
        strategies=["scratch", "random_probe"], fractions=[0.3], min_positives=3, eval_splits=["test"], repeats=1,
        lr_grid=[1e-3], weight_decay_grid=[0.01],
        optim=TrainConfig(epochs=1, batch_size=32, progress=False, bf16=False), probe=TrainConfig(epochs=5, bf16=False, progress=False),
    )
    a = train_all(cfg, setup["store"], setup["encoder"], setup["root"] / "again_a", seed=5)
    b = train_all(cfg, setup["store"], setup["encoder"], setup["root"] / "again_b", seed=5)
    assert np.array_equal(a.results[["auroc", "auprc"]].to_numpy(), b.results[["auroc", "auprc"]].to_numpy())
    for key, scores in a.scores.scores.items():
        assert np.array_equal(scores, b.scores.scores[key])


def test_groups_in_worker_processes_give_the_numbers_of_one_process(setup, tmp_path):
    """The setup trained its 4 full fine-tune groups in 2 one-thread workers; one one-thread process (this one,
    torch_one_thread) gives the same results, curves, searches, thresholds and saved scores, in the same order."""
    assert setup["cfg"].workers == 2
    serial = train_all(dataclasses.replace(setup["cfg"], workers=1), setup["store"], setup["encoder"], tmp_path / "m",
                       seed=0)
    parallel = setup["result"]
    for name in ("results", "curves", "tuning", "decisions", "calibration"):
        pd.testing.assert_frame_equal(without_timings(getattr(serial, name)), without_timings(getattr(parallel, name)))
    assert serial.scores.meta == parallel.scores.meta and list(serial.scores.scores) == list(parallel.scores.scores)
    for key, scores in serial.scores.scores.items():
        assert np.array_equal(scores, parallel.scores.scores[key])
    cfg = setup["cfg"]  # rows in the order of the old loop: fraction, then strategy, then repeat, then split
    expected = [(f, s, k) for f in cfg.fractions for s in cfg.strategies for k in range(cfg.repeats) for _ in cfg.eval_splits]
    assert list(parallel.results[["fraction", "strategy", "repeat"]].itertuples(index=False, name=None)) == expected


def test_mismatched_preprocessing_and_bad_config_fail(setup, tmp_path):
    other = build_store(tmp_path / "other", 40, fs=50.0, n_samples=500)
    with pytest.raises(CheckpointError, match="fs: model 100.0 vs store 50.0"):
        train_all(setup["cfg"], other, setup["encoder"], tmp_path / "m", seed=0)
    with pytest.raises(config.ConfigError, match="unknown strategies"):
        config.from_dict(FinetuneConfig, {"strategies": ["pretrained", "magic"]}, "finetune")
    with pytest.raises(config.ConfigError, match="fractions"):
        config.from_dict(FinetuneConfig, {"fractions": [0.0, 1.0]}, "finetune")
    with pytest.raises(config.ConfigError, match="workers must be >= 1"):
        config.from_dict(FinetuneConfig, {"workers": 0}, "finetune")


def _tiny(**kw):
    base = dict(strategies=["scratch", "random_probe"], fractions=[0.3], min_positives=3, eval_splits=["test"], repeats=1,
                lr_grid=[1e-4, 3e-3], weight_decay_grid=[0.01, 10.0],
                optim=TrainConfig(epochs=2, batch_size=32, progress=False, max_evals=2, bf16=False),
                probe=TrainConfig(epochs=10, bf16=False, progress=False))
    return FinetuneConfig(**{**base, **kw})


def test_tuning_chooses_on_validation_only_a_poisoned_test_split_changes_nothing(setup, tmp_path):
    poisoned = tmp_path / "poisoned"
    shutil.copytree(setup["store"], poisoned)
    records = pd.read_parquet(poisoned / "records.parquet")
    test = np.flatnonzero(records["split"].to_numpy() == "test")
    for column in [c for c in records if c.startswith("y_")]:
        records.loc[test, column] = 1 - records.loc[test, column]  # every test label flipped
    records.to_parquet(poisoned / "records.parquet", index=False)
    signals = np.load(poisoned / "signals.npy")
    signals[test] = np.random.default_rng(0).normal(size=signals[test].shape).astype(np.float32)  # and its signals noise
    np.save(poisoned / "signals.npy", signals)
    clean = train_all(_tiny(), setup["store"], setup["encoder"], tmp_path / "a", seed=1)
    dirty = train_all(_tiny(), poisoned, setup["encoder"], tmp_path / "b", seed=1)
    assert dirty.scores.meta["tuning"] == clean.scores.meta["tuning"]  # same scores per value, same choices
    pd.testing.assert_frame_equal(dirty.tuning.drop(columns="train_seconds"), clean.tuning.drop(columns="train_seconds"))
    assert not np.allclose(dirty.results["auroc"], clean.results["auroc"])  # the poison did reach the test scores


def _with_provenance(encoder_path, target, **data):
    model, info = load_encoder(encoder_path)
    extra = {**info["extra"], "pretraining_data": {**info["extra"]["pretraining_data"], **data}}
    if "labels" in data:
        extra["pretraining_labels"] = data["labels"]
    return save_checkpoint(target, model, config=info["config"], preprocessing=info["preprocessing"], labels=[], extra=extra)


def test_guards_refuse_leaky_encoders_or_mark_them(setup, tmp_path):
    store = Store(setup["store"])
    ids = store.records["record_id"].astype(str).to_numpy()
    test_ids = ids[store.indices("test")][:3].tolist()
    leaky = _with_provenance(setup["encoder"], tmp_path / "leaky.pt", record_ids=[*ids[store.indices("train")], *test_ids])
    with pytest.raises(ValueError, match=r"pretrained on [123] record\(s\) of the 'test' split"):
        train_all(_tiny(), setup["store"], leaky, tmp_path / "m", seed=0)
    # supervised pretraining on the evaluated labels of the training records: refused, or run and marked
    supervised = _with_provenance(setup["encoder"], tmp_path / "sup.pt", labels=["IMI", "LVH"])
    with pytest.raises(ValueError, match="supervised pretraining used 2 of the evaluated labels"):
        train_all(_tiny(), setup["store"], supervised, tmp_path / "m", seed=0)
    marked = train_all(_tiny(strategies=["pretrained", "scratch"], lr_grid=[1e-3], allow_label_overlap=True),
                       setup["store"], supervised, tmp_path / "m", seed=0)
    flags = marked.results.set_index("strategy")["pretraining_label_leak"]
    assert flags["pretrained"] and not flags["scratch"]
    assert marked.metrics["pretraining_label_leak"] == {"IMI": "IMI", "LVH": "LVH"}
    # the same labels learnt on other records (a separate pretraining corpus) are no leak
    elsewhere = _with_provenance(setup["encoder"], tmp_path / "other.pt", labels=["IMI", "LVH"], record_ids=["elsewhere1"])
    clean = train_all(_tiny(strategies=["pretrained"], lr_grid=[1e-3]), setup["store"], elsewhere, tmp_path / "m", seed=0)
    assert not clean.results["pretraining_label_leak"].any()
