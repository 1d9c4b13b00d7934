"""Pretraining: augmentations, CMSC objective, the registry and the stage (runs, comparison, resume)."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from _store_builder import build_store
from _synthetic import structured_batch

from ecgstudy import config
from ecgstudy.stages.evaluate import Bootstrap, probe_statistics
from ecgstudy.models import build_encoder
from ecgstudy.models.checkpoint import load_encoder
from ecgstudy.engine import evaluate
from ecgstudy.engine.train import recalibrate_batchnorm
from ecgstudy.stages import artifacts
from ecgstudy.stages.pretrain import ObjectiveOptions, PretrainConfig, PretrainRun, ProbeConfig, run_pretrain
from ecgstudy.stages.pretrain.stage import pretrain_run
from ecgstudy.objectives.supervised import SupervisedOptions
from ecgstudy.objectives.wav2vec import W2VOptions
from ecgstudy.objectives.augment import AugmentConfig, augment, random_crop, random_lead_mask
from ecgstudy.objectives.base import (
    CMSC,
    OBJECTIVES,
    CMSCOptions,
    ObjectiveContext,
    adjacent_segments,
    build_objective,
    info_nce,
    register,
)
from ecgstudy.data.store import Store
from ecgstudy.engine.train import TrainConfig


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



def test_cmsc_loss_decreases_on_structured_data():
    torch.manual_seed(0)
    encoder = build_encoder("net1d", "tiny")
    objective = CMSC(encoder.embed_dim, segment_len=200, temperature=0.1, proj_hidden=64, proj_dim=32,
                     augment=AugmentConfig(rlm_p=0.25))
    params = list(encoder.parameters()) + list(objective.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    batch, gen = structured_batch(), _gen(0)
    losses = []
    for _ in range(20):
        loss, logs = objective(encoder, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert logs["top1"] > 0.5


def test_registry_builds_objectives_for_their_encoders():
    assert {"cmsc", "supervised", "mae", "w2v", "hybrid"} <= set(OBJECTIVES)
    encoder = build_encoder("net1d", "tiny")
    obj = build_objective("cmsc", CMSCOptions(segment_s=2.5), encoder, ObjectiveContext(fs=100, n_samples=1000))
    assert obj.segment_len == 250  # 2.5 s at 100 Hz
    with pytest.raises(ValueError, match="unknown pretraining objective"):
        build_objective("nope", CMSCOptions(), encoder, None)
    with pytest.raises(TypeError, match="CMSCOptions"):
        build_objective("cmsc", W2VOptions(), encoder, ObjectiveContext(fs=100, n_samples=1000))
    with pytest.raises(ValueError, match="wav2vec2"):  # masked prediction needs the transformer's pieces
        build_objective("w2v", W2VOptions(), encoder, ObjectiveContext(fs=100, n_samples=1000))
    with pytest.raises(ValueError, match="registered twice"):
        register("cmsc")(CMSC)


def test_config_rejects_bad_runs():
    with pytest.raises(config.ConfigError, match=r"split\(s\) \['test'\] would leak"):
        config.from_dict(PretrainConfig, {"splits": ["train", "test"]}, "pretrain")
    with pytest.raises(config.ConfigError, match=r"split\(s\) \['external'\] would leak"):
        config.from_dict(PretrainConfig, {"splits": ["train", "external"]}, "pretrain")
    with pytest.raises(config.ConfigError, match=r"split\(s\) \['val'\] would leak"):  # val selects models downstream
        config.from_dict(PretrainConfig, {"splits": ["train", "val"]}, "pretrain")
    with pytest.raises(config.ConfigError, match=r"run\(s\) \['mae'\] set epochs, but pretrain.steps"):
        config.from_dict(PretrainConfig, {"runs": [{"name": "cmsc"}, {"name": "mae", "objective": "mae", "epochs": 3}]}, "pretrain")
    assert config.from_dict(PretrainConfig, {"steps": 0, "runs": [{"name": "cmsc", "epochs": 3}]}, "pretrain").runs[0].epochs == 3
    with pytest.raises(config.ConfigError, match="objective"):
        config.from_dict(PretrainConfig, {"runs": [{"name": "x", "objective": "simclr9"}], "keep": "x"}, "pretrain")
    with pytest.raises(config.ConfigError, match="needs arch"):
        config.from_dict(PretrainConfig, {"runs": [{"name": "x", "objective": "w2v"}], "keep": "x"}, "pretrain")
    with pytest.raises(config.ConfigError, match="keep"):
        config.from_dict(PretrainConfig, {"keep": "absent"}, "pretrain")
    with pytest.raises(config.ConfigError, match="unique"):
        config.from_dict(PretrainConfig, {"runs": [{"name": "a"}, {"name": "a"}], "keep": "a"}, "pretrain")
    with pytest.raises(config.ConfigError, match="mask_ratio"):
        config.from_dict(PretrainConfig, {"objectives": {"mae": {"mask_ratio": 1.5}}}, "pretrain")
    cfg = config.from_dict(PretrainConfig, {"optim": {"epochs": 2}, "augment": {"rlm_p": 0.3}}, "pretrain")
    assert cfg.optim.epochs == 2 and cfg.augment.rlm_p == 0.3 and cfg.objectives.cmsc.segment_s == 4.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store") / "main", 120)


def _small(runs, keep, **kw):
    return PretrainConfig(
        runs=[PretrainRun(**r) for r in runs], keep=keep,
        optim=TrainConfig(epochs=2, batch_size=16, progress=False, bf16=False),
        probe=ProbeConfig(min_positives=2, optim=TrainConfig(epochs=5, batch_size=64, lr=0.01, bf16=False, progress=False),
                          repeats=2, weight_decay_grid=[0.01, 10.0]),
        **{"steps": 0, **kw},
    )


def test_run_pretrain_trains_every_run_keeps_one_and_compares_with_random_init(store, tmp_path):
    cfg = _small([{"name": "cmsc"}, {"name": "mae", "objective": "mae", "epochs": 1}], keep="mae", resume=False)
    assert cfg.workers == 2  # the runs train in two one-thread worker processes; again: one after another, here
    res = run_pretrain(cfg, store, tmp_path / "a", seed=0, plots_dir=tmp_path / "plots")
    again = run_pretrain(dataclasses.replace(cfg, workers=1), store, tmp_path / "b", seed=0)
    assert list(res.runs) == ["cmsc", "mae"] and len(res.runs["mae"].history) == 1
    for name in ("cmsc", "mae"):
        pd.testing.assert_frame_equal(res.runs[name].history[["train_loss", "val_loss"]],
                                      again.runs[name].history[["train_loss", "val_loss"]])
        a, _ = load_encoder(res.runs[name].checkpoint)
        b, _ = load_encoder(again.runs[name].checkpoint)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
        assert pd.read_csv(tmp_path / "plots" / f"{name}.csv").shape[0] == len(res.runs[name].history)
    assert (tmp_path / "a" / "encoder.pt").read_bytes() == (tmp_path / "a" / "mae.pt").read_bytes()
    encoder, info = load_encoder(res.checkpoint)
    assert info["preprocessing"]["fs"] == 100.0 and info["preprocessing"]["normalise"] == "per_lead_zscore"
    assert info["config"]["objective"] == "mae" and info["config"]["seed"] == 0
    assert res.metrics["mae"]["n_params"] == sum(p.numel() for p in encoder.parameters())
    table = res.comparison.set_index("run")
    assert list(table.index) == ["cmsc", "mae"]
    # both runs are net1d-tiny from the same seed on the same records: identical twins, identical twin scores
    assert table["random_auroc"].nunique() == 1 and table["encoder"].tolist() == ["net1d-tiny"] * 2
    assert table.loc["cmsc", "same_encoder"] == "mae" and (table["repeats"] == 2).all()
    assert np.allclose(table["diff"], table["auroc"] - table["random_auroc"])
    y = res.scores.y["val"]
    for name in ("cmsc", "mae"):  # every repeat of every encoder and twin is saved; the table is their mean
        keys = [(name, "r0", "val"), (name, "r1", "val"), ("random_init", name, "r0", "val"), ("random_init", name, "r1", "val")]
        assert all(k in res.scores.scores for k in keys)
        mean = np.mean([evaluate.macro(y, res.scores.scores[k]) for k in keys[:2]])
        assert table.loc[name, "auroc"] == pytest.approx(mean)
        assert res.scores.meta["tuning"][name]["chosen"] in (0.01, 10.0)
        assert res.scores.meta["tuning"][f"random_init/{name}"]["twin"].startswith("twin ")
    assert res.scores.meta["repeats"] == 2
    assert not np.array_equal(res.scores.get("cmsc", "r0", "val"), res.scores.get("cmsc", "r1", "val"))  # seeds differ
    # k = 1: the fixed label set is every probed label evaluable on val, as in the stage's own point values
    gains = probe_statistics(res.scores, Bootstrap(n_boot=20, min_positives=1), seed=0).set_index("run")
    assert np.allclose(gains["diff"], table["diff"], atol=1e-12)  # the saved scores reproduce the gain
    assert (gains["low"] <= gains["diff"]).all() and (gains["diff"] <= gains["high"]).all()
    assert res.metrics["keep"] == "mae" and "probe_val_auroc" in res.metrics["cmsc"]


def test_every_objective_runs_in_the_stage(store, tmp_path):
    runs = [
        {"name": "sup", "objective": "supervised"},
        {"name": "w2v", "objective": "w2v", "arch": "wav2vec2"},
        {"name": "hybrid", "objective": "hybrid", "arch": "wav2vec2"},
    ]
    cfg = _small(runs, keep="hybrid", resume=False, objectives=ObjectiveOptions(supervised=SupervisedOptions(min_positives=2)))
    cfg = dataclasses.replace(cfg, optim=TrainConfig(epochs=1, batch_size=16, progress=False, bf16=False))
    res = run_pretrain(cfg, store, tmp_path, seed=1)
    assert set(res.runs) == {"sup", "w2v", "hybrid"}
    for run in res.runs.values():
        assert np.isfinite(run.history["train_loss"]).all() and np.isfinite(run.history["val_loss"]).all()
    assert res.runs["sup"].metrics["n_train_records"] <= len(Store(store).indices("train"))
    assert "val_cmsc_top1" in res.runs["hybrid"].history
    assert set(res.comparison["encoder"]) == {"net1d-tiny", "wav2vec2-tiny"}
    encoder, _ = load_encoder(res.checkpoint)
    assert encoder.arch == "wav2vec2"


def test_interrupted_stage_resumes_from_its_state(store, tmp_path):
    cfg = _small([{"name": "cmsc"}], keep="cmsc")
    straight = run_pretrain(dataclasses.replace(cfg, resume=False), store, tmp_path / "a", seed=3)
    resume_dir = tmp_path / "state"
    with pytest.raises(RuntimeError, match="stop"):
        def stop(row):
            raise RuntimeError("stop after epoch 1")
        pretrain_run(cfg.runs[0], cfg, Store(store), tmp_path / "b", seed=3, state_path=resume_dir / "cmsc.state.pt",
                     on_epoch_end=stop)
    assert (resume_dir / "cmsc.state.pt").is_file()
    resumed = run_pretrain(cfg, store, tmp_path / "b", seed=3, resume_dir=resume_dir)
    pd.testing.assert_frame_equal(straight.runs["cmsc"].history.drop(columns=["seconds", "samples_per_s"]),
                                  resumed.runs["cmsc"].history.drop(columns=["seconds", "samples_per_s"]))
    a, _ = load_encoder(straight.checkpoint)
    b, _ = load_encoder(resumed.checkpoint)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not (resume_dir / "cmsc.state.pt").exists()  # a finished run's state is removed


def test_runs_get_matched_compute_whatever_their_record_counts(store, tmp_path):
    cfg = _small([{"name": "cmsc"}, {"name": "sup", "objective": "supervised"}], keep="cmsc", resume=False, steps=5,
                 objectives=ObjectiveOptions(supervised=SupervisedOptions(min_positives=2)))
    res = run_pretrain(cfg, store, tmp_path, seed=0)
    cmsc, sup = res.metrics["cmsc"], res.metrics["sup"]
    assert sup["n_train_records"] < cmsc["n_train_records"]  # the supervised run reads only labelled records
    assert cmsc["optimizer_steps"] == sup["optimizer_steps"] == 5
    assert cmsc["samples_seen"] == sup["samples_seen"] == 5 * 16
    for run in res.runs.values():
        assert int(run.history["step"].iloc[-1]) == 5  # the last (partial) epoch stops at the budget


def test_random_init_twin_is_the_runs_init_with_batchnorm_reestimated_on_its_records(store, tmp_path):
    cfg = _small([{"name": "cmsc"}], keep="cmsc", resume=False)
    res = run_pretrain(cfg, store, tmp_path, seed=4)
    twin, info = load_encoder(artifacts.twin_path(tmp_path, "cmsc"))
    assert info["extra"]["random_init_of"] == "cmsc" and info["preprocessing"] == load_encoder(res.checkpoint)[1]["preprocessing"]
    torch.manual_seed(4)
    init = build_encoder("net1d", "tiny")  # what pretrain_run starts from
    default_bn = {k: v.clone() for k, v in init.state_dict().items() if "running" in k}
    weights = {k: v for k, v in twin.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert all(torch.equal(v, init.state_dict()[k]) for k, v in weights.items())  # the run's own initial weights
    from ecgstudy.data.store import ECGDataset

    s = Store(store)
    recalibrate_batchnorm(init, lambda b: init.embed(b["x"], b["lead_mask"].bool()), ECGDataset(s, s.indices("train")),
                          batch_size=16, bf16=False)
    for key, value in default_bn.items():
        assert not torch.equal(twin.state_dict()[key], value), key  # re-estimated, not the defaults
        assert torch.allclose(twin.state_dict()[key], init.state_dict()[key], atol=1e-5), key  # on the same records


def test_the_random_init_twin_has_a_model_card_saying_it_was_never_trained(store, tmp_path):
    from ecgstudy.apply.cards import card_paths, describe

    cfg = _small([{"name": "cmsc"}], keep="cmsc", resume=False)
    res = run_pretrain(cfg, store, tmp_path, seed=4)
    twin = artifacts.twin_path(tmp_path, "cmsc")
    card = json.loads(card_paths(twin)[0].read_text())
    assert card["kind"] == "encoder" and card["pretraining"]["random_init_of"] == "cmsc"
    assert card["pretraining"]["records"] == 0 and card["pretraining"]["epochs_run"] == 0
    assert card["pretraining"]["batchnorm_recalibrated_on_records"] == res.runs["cmsc"].metrics["n_train_records"] > 0
    assert card["pretraining"]["val_probe_auroc"] == pytest.approx(
        float(res.comparison.set_index("run").loc["cmsc", "random_auroc"]))
    assert "random initialisation" in describe(twin)
