"""Rare-disease transfer models usable outside the study: the transfer stage's saved classifiers, applied by
``ecgstudy predict`` to the raw rare-set folder they were curated from, give the stage's own test-part
probabilities; their thresholds come from out-of-fold training probabilities, and each has a model card."""

import numpy as np
import pytest
import torch

from ecgstudy import cli, config
from ecgstudy.apply.cards import card_paths
from ecgstudy.apply.predict import predict_folder
from ecgstudy.data.store import Store
from ecgstudy.models import build_encoder
from ecgstudy.models.checkpoint import preprocessing_spec, read_checkpoint, save_checkpoint
from ecgstudy.stages.transfer import STRATEGIES, TransferConfig, model_name, saved_sizes, train_all

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _cfg(**overrides) -> TransferConfig:
    return config.from_dict(TransferConfig, {
        "n_train_cases": [2, "all"], "repeats": 1, "cv_folds": 2, "weight_decay_grid": [0.01, 1.0],
        "optim": {"epochs": 1, "min_steps": 3, "batch_size": 16, "progress": False, "bf16": False},
        "probe": {"epochs": 1, "min_steps": 20, "bf16": False, "progress": False}, **overrides}, "transfer")


@pytest.fixture(scope="module")
def saved(simulated_cohort, tmp_path_factory):
    """Two rare conditions trained by ``transfer.train_all`` with a tiny encoder, saving the largest size's models."""
    root = tmp_path_factory.mktemp("transfer_models")
    store = Store(simulated_cohort / "rare")
    conditions = sorted(store.records["case_control_set"].dropna().astype(str).unique())[:2]
    torch.manual_seed(0)
    encoder = root / "encoder.pt"
    save_checkpoint(encoder, build_encoder("net1d", "tiny"), config={"objective": "none", "splits": ["train"]},
                    preprocessing=preprocessing_spec(store.meta), labels=[], extra={"n_train": 0})
    cfg = _cfg(conditions=conditions)
    result = train_all(cfg, simulated_cohort / "rare", encoder, seed=0, models_dir=root / "models")
    return {"result": result, "cfg": cfg, "conditions": conditions, "root": root, "encoder": encoder,
            "store": store, "raw": simulated_cohort / "raw" / "rare"}


def test_the_largest_size_of_every_condition_and_strategy_is_saved(saved):
    result = saved["result"]
    largest = result.results.groupby("condition")["n_cases"].max()
    expected = {model_name(c, s, largest[c]).removesuffix(".pt") for c in saved["conditions"] for s in STRATEGIES}
    assert set(result.checkpoints) == expected
    assert sorted(p.name for p in (saved["root"] / "models").glob("*.pt")) == sorted(f"{m}.pt" for m in expected)
    assert saved_sizes("largest", [2, 5, 9]) == [9] and saved_sizes("all", [2, 5]) == [2, 5]
    assert saved_sizes("none", [2, 5]) == [] and saved_sizes("largest", []) == []


def test_predict_on_a_transfer_checkpoint_reproduces_the_stage_test_probabilities(saved):
    result = saved["result"]
    checked = 0
    for name, path in result.checkpoints.items():
        payload = read_checkpoint(path)
        cond, strategy, n_cases = payload["config"]["condition"], payload["config"]["strategy"], payload["config"]["n_cases"]
        reported = result.scores.get(f"n{n_cases}", strategy, "r0", cond)  # (N_test, 1): the stage's own numbers
        test_ids = payload["extra"]["test_records"]
        assert len(test_ids) == len(reported) >= 4
        table = predict_folder(path, "simulated", saved["raw"], progress=False).table.set_index("record_id")
        assert (table.loc[test_ids, "status"] != "excluded").all()
        np.testing.assert_allclose(table.loc[test_ids, [f"p_{cond}"]].to_numpy(), reported, rtol=0, atol=2e-6)
        threshold = payload["extra"]["thresholds"]["values"][cond]
        decided = table.loc[test_ids, f"decision_{cond}"].astype(int).to_numpy()
        assert np.array_equal(decided, (reported[:, 0] >= threshold).astype(int))
        checked += 1
    assert checked == 2 * len(STRATEGIES)


def test_thresholds_come_from_out_of_fold_training_probabilities_never_the_test_part(saved):
    result, store = saved["result"], saved["store"]
    patient_of = dict(zip(store.records["record_id"].astype(str), store.records["patient_id"].astype(str)))
    for path in result.checkpoints.values():
        extra = read_checkpoint(path)["extra"]
        train, test = extra["training_records"], extra["test_records"]
        assert len(train) == extra["n_train"] and not {patient_of[r] for r in train} & {patient_of[r] for r in test}
        stored = extra["thresholds"]
        assert stored["rule"] == "youden" and stored["chosen_on"] == "train (out-of-fold, 2 patient folds)"
        (label, basis), = stored["basis"].items()
        assert "out-of-fold probabilities" in basis and f"{len(train)} training records" in basis
        assert 0 <= stored["values"][label] <= 1
    decisions = result.decisions
    assert len(decisions) == len(result.checkpoints) and set(decisions["split"]) == {"test"}
    for row in decisions.itertuples():
        stored = read_checkpoint(result.checkpoints[row.model])["extra"]["thresholds"]["values"][row.condition]
        assert row.threshold == pytest.approx(stored)
        y = result.scores.y[row.condition][:, 0]
        p = result.scores.get(f"n{row.n_cases}", row.strategy, "r0", row.condition)[:, 0]
        assert row.sensitivity == pytest.approx(((p >= stored) & (y == 1)).sum() / (y == 1).sum())
    bins = result.calibration
    assert set(bins["model"]) == set(result.checkpoints)
    assert (bins.groupby("model")["n"].sum() == bins.groupby("model")["n"].sum().index.map(
        lambda m: len(read_checkpoint(result.checkpoints[m])["extra"]["test_records"]))).all()


def test_every_saved_model_has_a_card_that_describe_prints(saved, capsys):
    result = saved["result"]
    for name, path in result.checkpoints.items():
        json_path, md_path = card_paths(path)
        assert json_path.is_file() and md_path.is_file()
        text = md_path.read_text()
        for needed in ("## Training data and splits", "rare case-control set", "## Decision thresholds",
                       "out-of-fold", "## Evaluation: test split", "no validation split", "not a validated detector"):
            assert needed in text, (name, needed)
        assert "Thresholds were chosen on the validation split" not in text
        assert ("random init" in text) == name.split("_n")[0].endswith("scratch")
    path = next(iter(result.checkpoints.values()))
    assert cli.main(["describe", str(path)]) == 0
    assert capsys.readouterr().out == card_paths(path)[1].read_text()


def test_saving_changes_no_score_and_none_saves_nothing(saved, tmp_path):
    first = saved["conditions"][0]
    cfg = _cfg(conditions=[first], n_train_cases=["all"], strategies=["foundation_probe", "scratch"], checkpoints="none")
    result = train_all(cfg, saved["store"].path, saved["encoder"], seed=0, models_dir=tmp_path)
    assert result.checkpoints == {} and not list(tmp_path.iterdir())
    for key, p in result.scores.scores.items():  # the saved run trained fold models in between: same numbers
        np.testing.assert_array_equal(p, saved["result"].scores.scores[key])
    assert len(result.scores.scores) == 2
    assert list(result.decisions.columns[:5]) == ["model", "condition", "strategy", "n_cases", "split"]
    with pytest.raises(config.ConfigError):
        _cfg(checkpoints="some")
    with pytest.raises(config.ConfigError, match="threshold rule"):
        _cfg(threshold_rule="best")
