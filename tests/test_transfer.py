"""Rare-disease transfer: patient-disjoint stratified splits, training-set draws, scored strategies."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from _store_builder import build_store

from ecgstudy import config
from ecgstudy.plots.training import transfer_comparison
from ecgstudy.stages.pretrain import PretrainConfig, PretrainRun, run_pretrain
from ecgstudy.engine.train import TrainConfig
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.stages.evaluate import Bootstrap, transfer_statistics
from ecgstudy.models.checkpoint import load_classifier
from ecgstudy.stages.outputs import without_timings
from ecgstudy.stages.transfer import TransferConfig, _sizes, draw_training_set, split_patients, train_all


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tr")
    main = build_store(root / "main", 100, seed=3)
    rare = build_store(root / "rare", rare_sets={"BRUGADA": 12, "HYPERK": 10}, seed=4)
    pre = run_pretrain(PretrainConfig(runs=[PretrainRun()], keep="cmsc", steps=3, resume=False,
                                      optim=TrainConfig(epochs=1, batch_size=32, progress=False, bf16=False)), main, root / "pre", seed=0)
    cfg = config.from_dict(
        TransferConfig,
        {"n_train_cases": [3, "all"], "repeats": 2,
         "optim": {"epochs": 1, "min_steps": 4, "batch_size": 16, "progress": False, "bf16": False},
         "probe": {"epochs": 1, "min_steps": 30, "bf16": False, "progress": False}, "weight_decay_grid": [0.01, 10.0]},
        "transfer",
    )
    result = train_all(cfg, rare, pre.checkpoint, seed=0)
    stats = transfer_statistics(result.scores, Bootstrap(n_boot=50, min_positives=1), seed=0)
    return {"rare": rare, "encoder": pre.checkpoint, "cfg": cfg, "result": result, "stats": stats}


def test_split_is_patient_disjoint_and_stratified():
    patients = np.repeat([f"p{i}" for i in range(30)], 2)
    is_case = np.repeat(np.arange(30) < 10, 2)  # 10 case patients, 20 control patients
    test = split_patients(is_case, patients, 0.3, np.random.default_rng(0))
    assert not set(patients[test]) & set(patients[~test])
    assert len(set(patients[test & is_case])) == 3 and len(set(patients[test & ~is_case])) == 6


def test_training_sets_keep_the_case_control_ratio_and_nest_by_seed():
    patients = np.array([f"p{i}" for i in range(60)])
    is_case = np.arange(60) < 20
    pool = np.arange(60)
    rows = draw_training_set(is_case, patients, pool, 5, np.random.default_rng(1))
    assert is_case[rows].sum() == 5 and (~is_case[rows]).sum() == 10
    assert np.array_equal(rows, draw_training_set(is_case, patients, pool, 5, np.random.default_rng(1)))
    assert is_case[draw_training_set(is_case, patients, pool, 500, np.random.default_rng(1))].sum() == 20
    assert _sizes([10, 20, "all"], 15) == [10, 15]


def test_every_condition_size_and_strategy_is_scored(setup):
    res = setup["result"]
    intervals, comparisons = setup["stats"]
    assert set(res.results["condition"]) == {"BRUGADA", "HYPERK"}
    assert set(res.results["strategy"]) == {"foundation", "foundation_probe", "scratch"}
    values = intervals[["auroc", "auroc_low", "auroc_high"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()
    assert (intervals["auroc_low"] <= intervals["auroc"] + 1e-12).all()
    assert (intervals["auroc"] <= intervals["auroc_high"] + 1e-12).all()
    assert np.allclose(intervals["auroc"].to_numpy(), res.results["auroc"].to_numpy(), atol=1e-12)  # same means of repeats
    assert (res.results["repeats"] == 2).all() and (intervals["repeats"] == 2).all()
    assert len(res.runs) == 2 * 2 * 3 * 2  # conditions x sizes x strategies x repeats
    # the mean over repeats is what the table reports
    one = res.results.query("condition == 'HYPERK' and n_cases == 3 and strategy == 'scratch'").iloc[0]
    runs = res.runs.query("condition == 'HYPERK' and n_cases == 3 and strategy == 'scratch'")
    assert one["auroc"] == pytest.approx(runs["auroc"].mean())
    per_condition = comparisons[(comparisons["metric"] == "auroc") & (comparisons["condition"] != "mean over conditions")]
    assert len(per_condition) == 2 * 2 * 2  # conditions x sizes x foundation strategies
    assert (res.sets[["test_cases", "test_controls", "pool_cases"]] > 0).all().all()


def test_saved_scores_give_the_same_statistics_and_figure(setup, tmp_path):
    saved = ScoreFile.load(setup["result"].scores.save(tmp_path / "scores.npz"))
    assert list(saved.y) == ["BRUGADA", "HYPERK"] and len(saved.scores) == len(setup["result"].runs)
    again = transfer_statistics(saved, Bootstrap(n_boot=50, min_positives=1), seed=0)
    for before, after in zip(setup["stats"], again):
        pd.testing.assert_frame_equal(before, after)
    assert transfer_comparison(again[0], tmp_path / "t.png").stat().st_size > 10_000


def test_same_seed_same_numbers(setup):
    cfg = config.from_dict(
        TransferConfig,
        {"conditions": ["HYPERK"], "n_train_cases": [3], "repeats": 1, "strategies": ["scratch", "foundation_probe"],
         "optim": {"epochs": 1, "min_steps": 2, "batch_size": 16, "progress": False, "bf16": False},
         "probe": {"epochs": 1, "min_steps": 10, "bf16": False, "progress": False}},
        "transfer",
    )
    a = train_all(cfg, setup["rare"], setup["encoder"], seed=3)
    b = train_all(cfg, setup["rare"], setup["encoder"], seed=3)
    pd.testing.assert_frame_equal(a.results, b.results)


def test_conditions_in_worker_processes_give_the_numbers_of_one_process(setup, tmp_path):
    """2 conditions in 2 one-thread workers, saving their models, against this one-thread process: the same
    tables, scores, probe searches, saved models and their thresholds, in the same order."""
    cfg = dataclasses.replace(setup["cfg"], n_train_cases=["all"], repeats=1)
    assert cfg.workers == 2
    serial = train_all(dataclasses.replace(cfg, workers=1), setup["rare"], setup["encoder"], seed=0,
                       models_dir=tmp_path / "serial")
    parallel = train_all(cfg, setup["rare"], setup["encoder"], seed=0, models_dir=tmp_path / "parallel")
    for name in ("results", "runs", "sets", "decisions", "calibration"):
        pd.testing.assert_frame_equal(without_timings(getattr(serial, name)), without_timings(getattr(parallel, name)))
    assert list(serial.checkpoints) == list(parallel.checkpoints) and len(serial.checkpoints) == 2 * len(cfg.strategies)
    for name, path in serial.checkpoints.items():
        a, b = load_classifier(path)[0].state_dict(), load_classifier(parallel.checkpoints[name])[0].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert serial.scores.meta == parallel.scores.meta and list(serial.scores.scores) == list(parallel.scores.scores)
    for key, p in serial.scores.scores.items():
        np.testing.assert_array_equal(p, parallel.scores.scores[key])


def test_bad_inputs_fail(setup, tmp_path):
    with pytest.raises(ValueError, match="case_control_set"):
        train_all(setup["cfg"], build_store(tmp_path / "plain", 30), setup["encoder"], seed=0)
    cfg = config.from_dict(TransferConfig, {"conditions": ["ARVC"]}, "transfer")
    with pytest.raises(ValueError, match="ARVC"):
        train_all(cfg, setup["rare"], setup["encoder"], seed=0)
    with pytest.raises(config.ConfigError):
        config.from_dict(TransferConfig, {"n_train_cases": [10, "most"]}, "transfer")


def test_repeats_pair_arms_say_when_draws_coincide_and_tune_the_probe_by_inner_cv(setup):
    res, meta = setup["result"], setup["result"].scores.meta
    sizes = res.results.groupby("n_cases")["draws_differ"].first()
    assert bool(sizes.loc[3]) and not bool(sizes.iloc[-1])  # n = all: the whole pool every time, seeds only differ
    per_repeat = res.runs.groupby(["condition", "n_cases", "repeat"])["n_train"].nunique()
    assert (per_repeat == 1).all()  # every strategy of a repeat trains on the same drawn set
    for cond in ("BRUGADA", "HYPERK"):
        for n in res.results.query("condition == @cond")["n_cases"].unique():
            record = meta["tuning"][f"{cond}/n{n}/foundation_probe"]
            assert record["grid"] == [0.01, 10.0] and "patient folds" in record["selection"]
            used = res.runs.query("condition == @cond and n_cases == @n and strategy == 'foundation_probe'")["weight_decay"]
            assert set(used) == {record["chosen"]}  # chosen on repeat 0's training set, reused by every repeat
    assert meta["repeats"] == 2 and meta["baseline_init"].startswith("twin ")  # scratch starts from the twin
    assert res.runs.query("strategy != 'foundation_probe'")["weight_decay"].isna().all()
