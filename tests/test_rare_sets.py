"""Rare-disease case-control sets drawn from a curated main store, and the transfer stage on them."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _store_builder import build_store

from ecgstudy import config
from ecgstudy.data import describe, rare_sets
from ecgstudy.stages import transfer
from ecgstudy.data.curation import CurateConfig
from ecgstudy.models import build_encoder
from ecgstudy.models.checkpoint import preprocessing_spec, save_checkpoint
from ecgstudy.data.rare_sets import RareSetsConfig, build_rare_store, draw_set
from ecgstudy.data.store import Store
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.stages.evaluate import Bootstrap, transfer_statistics
from ecgstudy.stages.outputs import TIMING_COLUMNS
from ecgstudy.stages.transfer import TransferConfig, train_all

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def main_store(tmp_path_factory):
    """160 records of 80 patients (two each); IMI made rare: positive for 2 patients only."""
    path = build_store(tmp_path_factory.mktemp("rs") / "main", 160, seed=7)
    records = pd.read_parquet(path / "records.parquet")
    records["y_IMI"] = records["patient_id"].isin(["p00003", "p00011"]).astype(np.int8)
    records.to_parquet(path / "records.parquet", index=False)
    return path


@pytest.fixture(scope="module")
def built(main_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("rs_out") / "rare"
    cfg = RareSetsConfig(codes=("AFIB", "IMI", "LVH"), controls_per_case=2, min_cases=5)
    return out, cfg, build_rare_store(main_store, out, cfg, seed=3)


def test_draw_set_keeps_patients_whole():
    patients = np.repeat([f"p{i}" for i in range(20)], 3)  # 20 patients, 3 records each
    has_code = np.zeros(60, bool)
    has_code[[0, 4, 5, 30]] = True  # patients p0 (1 of 3 records), p1 (2 of 3), p10 (1 of 3)
    eligible = np.ones(60, bool)
    eligible[57:] = False  # p19 is in a split that may not enter
    cases, controls, left_out = draw_set(has_code, patients, eligible, 2, np.random.default_rng(0))
    assert cases.tolist() == [0, 4, 5, 30]
    assert left_out.tolist() == [1, 2, 3, 31, 32]  # the case patients' records without the code
    control_patients = set(patients[controls])
    assert len(control_patients) == 6 and not control_patients & {"p0", "p1", "p10", "p19"}
    assert all((patients[controls] == p).sum() == 3 for p in control_patients)  # whole patients
    again = draw_set(has_code, patients, eligible, 2, np.random.default_rng(0))
    assert np.array_equal(again[1], controls)
    few = draw_set(has_code, patients, eligible, 50, np.random.default_rng(0))[1]  # more asked than exist
    assert len(set(patients[few])) == 16


def test_store_holds_cases_and_whole_patient_controls(main_store, built):
    out, cfg, summary = built
    main, rare = Store(main_store), Store(out)
    rec = rare.records
    assert summary["written"] and summary["n_kept"] == len(rec) == rare.signals.shape[0]
    assert [s["status"] for s in summary["sets"]] == ["built", "skipped", "built"]
    assert set(rec[rare_sets.SET_COLUMN]) == {"AFIB", "LVH"}
    for info in (s for s in summary["sets"] if s["status"] == "built"):
        code = info["code"]
        part = rec[rec[rare_sets.SET_COLUMN] == code]
        is_case = part[f"y_{code}"] == 1
        case_patients, control_patients = set(part["patient_id"][is_case]), set(part["patient_id"][~is_case])
        assert not case_patients & control_patients
        assert len(case_patients) == info["case_patients"] and is_case.sum() == info["case_records"]
        candidates = set(main.records["patient_id"]) - case_patients
        assert len(control_patients) == info["control_patients"] == min(2 * len(case_patients), len(candidates))
        # every record of the main store with the code is a case; controls come with all their records
        all_cases = main.records[main.records[f"y_{code}"] == 1]["record_id"]
        assert set(part["record_id"][is_case]) == set(all_cases)
        control_records = main.records[main.records["patient_id"].isin(control_patients)]["record_id"]
        assert set(part["record_id"][~is_case]) == set(control_records)
        # signals, lead masks and labels are the main store's
        rows = main.records.reset_index().set_index("record_id").loc[part["record_id"], "index"].to_numpy()
        np.testing.assert_array_equal(rare.signals[part.index.to_numpy()], main.signals[rows])
        np.testing.assert_array_equal(rare.lead_mask[part.index.to_numpy()], main.lead_mask[rows])
    skipped = summary["sets"][1]
    assert skipped["case_patients"] == 2 and "< min_cases 5" in skipped["reason"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["rare_sets"]["seed"] == 3 and meta["rare_sets"]["settings"]["controls_per_case"] == 2
    assert meta["preprocessing"] == main.meta["preprocessing"] and meta["n_records"] == len(rec)
    excluded = rare.excluded()
    assert (excluded["reason"] == rare_sets.CASE_PATIENT_OTHER_RECORD).all()
    assert len(excluded) == sum(s["left_out_records"] for s in summary["sets"]) > 0
    table = rare_sets.set_table(summary)
    assert list(table["code"]) == ["AFIB", "IMI", "LVH"] and table.loc[1, "status"] == "skipped"
    main_summary = {"n_kept": len(main.records), "excluded_by_reason": {}}
    metrics = describe.curation_metrics(main, {"main": main_summary, "rare": summary}, pd.DataFrame())
    assert metrics["rare_kept"] == len(rec) and metrics["rare_excluded"] == len(excluded)
    assert metrics["rare_set_IMI"] == {"status": "skipped", "case_patients": 2, "control_patients": 0}


def test_controls_of_a_code_do_not_depend_on_the_other_codes(main_store, built, tmp_path):
    out, cfg, _ = built
    alone = build_rare_store(main_store, tmp_path / "alone", RareSetsConfig(codes=("LVH",), controls_per_case=2,
                                                                            min_cases=5), seed=3)
    assert alone["sets"][0] == next(s for s in built[2]["sets"] if s["code"] == "LVH")
    a, b = Store(out).records, Store(tmp_path / "alone").records
    assert set(a[a["case_control_set"] == "LVH"]["record_id"]) == set(b["record_id"])


def test_nothing_to_build_removes_a_stale_store(main_store, tmp_path):
    out = tmp_path / "rare"
    build_rare_store(main_store, out, RareSetsConfig(codes=("AFIB",), min_cases=5), seed=0)
    assert (out / "meta.json").is_file()
    summary = build_rare_store(main_store, out, RareSetsConfig(codes=("IMI",), min_cases=5), seed=0)
    assert not summary["written"] and not out.exists() and summary["sets"][0]["status"] == "skipped"
    empty = build_rare_store(main_store, out, RareSetsConfig(), seed=0)
    assert not empty["written"] and empty["sets"] == [] and "empty" in empty["reason"]
    assert rare_sets.set_table(empty)["status"].tolist() == ["none configured"]


def test_failure_midway_leaves_the_previous_store(main_store, tmp_path, monkeypatch):
    out = tmp_path / "rare"
    cfg = RareSetsConfig(codes=("AFIB",), min_cases=5)
    build_rare_store(main_store, out, cfg, seed=0)
    before = pd.read_parquet(out / "records.parquet")

    def broken(self, signals, masks):
        raise OSError("disk full")

    monkeypatch.setattr(rare_sets.SignalWriter, "append", broken)
    with pytest.raises(OSError, match="disk full"):
        build_rare_store(main_store, out, RareSetsConfig(codes=("LVH",), min_cases=5), seed=0)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "records.parquet"), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rare"]  # no partial folder left


def test_config_is_strict_and_codes_are_checked(main_store, tmp_path):
    cfg = config.from_dict(CurateConfig, {"rare_sets": {"codes": ["WPW"], "min_cases": 10}}, "curate")
    assert cfg.rare_sets == RareSetsConfig(codes=("WPW",), min_cases=10)
    with pytest.raises(config.ConfigError, match="curate.rare_sets.control_per_case"):
        config.from_dict(CurateConfig, {"rare_sets": {"control_per_case": 4}}, "curate")
    with pytest.raises(config.ConfigError, match="min_cases must be >= 2"):
        config.from_dict(CurateConfig, {"rare_sets": {"min_cases": 1}}, "curate")
    with pytest.raises(config.ConfigError, match="splits"):
        config.from_dict(CurateConfig, {"rare_sets": {"splits": ["training"]}}, "curate")
    with pytest.raises(ValueError, match=r"curate.rare_sets.codes: \['WPW'\] not among the label columns"):
        build_rare_store(main_store, tmp_path / "r", RareSetsConfig(codes=("WPW",)), seed=0)


def test_transfer_runs_on_a_built_store_and_says_when_there_is_none(built, tmp_path):
    out, _, _ = built
    torch.manual_seed(0)
    encoder = save_checkpoint(tmp_path / "enc.pt", build_encoder("net1d", "tiny"), config={},
                              preprocessing=preprocessing_spec(Store(out).meta), labels=[],
                              extra={"pretraining_labels": ["NORM", "LVH"]})
    cfg = config.from_dict(TransferConfig, {
        "n_train_cases": [3], "repeats": 1, "strategies": ["scratch", "foundation_probe"],
        "optim": {"epochs": 1, "min_steps": 2, "batch_size": 16, "progress": False, "bf16": False},
        "probe": {"epochs": 1, "min_steps": 10, "bf16": False, "progress": False}}, "transfer")
    result = train_all(cfg, out, encoder, seed=0)
    assert set(result.results["condition"]) == {"AFIB", "LVH"}
    assert np.isfinite(result.results["auroc"]).all()
    assert (result.sets[["pool_cases", "test_cases", "test_controls"]] > 0).all().all()
    assert result.metrics["pretraining_labels_overlap"] == {"LVH": "LVH"}  # a supervised encoder saw LVH labels

    missing = tmp_path / "no_rare"
    with pytest.raises(ValueError, match="no rare-disease sets configured"):
        train_all(cfg, missing, encoder, seed=0)
    empty = train_all(cfg, missing, encoder, seed=0, require_store=False)
    assert empty.metrics["status"] == "no rare-disease sets" and "no rare store" in empty.metrics["reason"]
    paths = transfer.write_tables(empty, tmp_path / "tables")
    for name in transfer.COLUMNS:  # the columns even when empty, less the wall-clock ones (reports/timings/)
        table = pd.read_csv(paths[name])
        assert list(table.columns) == [c for c in transfer.COLUMNS[name] if c not in TIMING_COLUMNS] and table.empty
    results, comparisons = transfer_statistics(ScoreFile.load(empty.scores.save(tmp_path / "scores.npz")), Bootstrap(), 0)
    assert results.empty and comparisons.empty  # the evaluate stage then writes empty tables and no figure
