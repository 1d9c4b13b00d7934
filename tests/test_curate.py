"""Curation end to end on PTB-XL-format fixtures: contents, exclusions, splits, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgstudy.data import curation as cur, pipeline as pipeline
from ecgstudy.config import ConfigError, from_dict, section
from ecgstudy.data.curation import CurateConfig, curate
from ecgstudy.data.world import curate_world
from ecgstudy.data.labels import LabelError
from ecgstudy.data.quality import QCConfig
from ecgstudy.data.store_writer import STORE_FILES, shrink_npy

from dataclasses import replace as dataclass_replace

from _world import tiny_sizes
from conftest import BAD_EXPECTED, GOOD_SPECS, sine_lead_params, write_ptbxl

SERIAL = CurateConfig(n_workers=1)


def _expected_sines(fs: float, n: int, phase: float, start_s: float = 0.0) -> np.ndarray:
    t = start_s + np.arange(n) / fs
    return np.stack([a * np.sin(2 * np.pi * f * t + phase) for a, f in (sine_lead_params(k) for k in range(12))])


@pytest.fixture(scope="module")
def good_store(tmp_path_factory, ptbxl_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cur") / "store"
    return out, curate("ptbxl", ptbxl_dir, out, SERIAL, seed=0, progress=False)


def test_store_files_and_meta(good_store):
    out, summary = good_store
    assert sorted(p.name for p in out.iterdir()) == sorted([*STORE_FILES, "signature_masks.parquet"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["fs"] == 100 and meta["n_samples"] == 1000 and meta["n_records"] == 14
    assert meta["leads"] == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert len(meta["labels"]) == 71 and meta["label_info"]["NDT"]["kind"] == "diagnostic+form"
    assert meta["preprocessing"]["normalise"] == "dataset_per_lead_zscore" and meta["preprocessing"]["units"] == "mV"
    stats = meta["preprocessing"]["stats"]  # fitted on the store's own train split (a world shares the foundation's)
    assert stats["fitted_on"] == "this store:train" and len(stats["mean"]) == len(stats["std"]) == 12
    assert meta["role"] == "downstream"
    assert meta["reader"]["resolution"] == "records100"
    assert summary["n_kept"] == 14 and summary["n_excluded"] == 0
    assert not list(out.parent.glob(".store.partial-*"))


def test_signals_are_in_standard_order_and_mv(good_store):
    out, _ = good_store
    signals = np.load(out / "signals.npy", mmap_mode="r")
    records = pd.read_parquet(out / "records.parquet")
    assert signals.shape == (14, 12, 1000) and signals.dtype == np.float32
    for ecg_id in (1, 3, 4):  # 3: lower-case avr/avl/avf; 4: leads written in reverse order
        i = records.index[records["record_id"] == str(ecg_id)][0]
        np.testing.assert_allclose(signals[i], _expected_sines(100, 1000, 0.1 * ecg_id), atol=1e-3)
    assert np.load(out / "lead_mask.npy").all()


def test_longer_record_is_centre_cropped(good_store):
    out, _ = good_store
    records = pd.read_parquet(out / "records.parquet")
    i = records.index[records["record_id"] == "14"][0]
    assert records.at[i, "duration_s"] == pytest.approx(10.4) and records.at[i, "offset_s"] == pytest.approx(0.2)
    signals = np.load(out / "signals.npy", mmap_mode="r")
    np.testing.assert_allclose(signals[i], _expected_sines(100, 1000, 1.4, start_s=0.2), atol=1e-3)


def test_records_table(good_store):
    out, _ = good_store
    records = pd.read_parquet(out / "records.parquet")
    front = ["record_id", "patient_id", "source", "site", "device", "age", "sex", "fs", "split"]
    assert records.columns[:9].tolist() == front
    assert records["record_id"].tolist() == [str(s["ecg_id"]) for s in GOOD_SPECS]
    assert (records["fs"] == 100).all() and (records["source"] == "ptbxl").all()
    y = records[[c for c in records.columns if c.startswith("y_")]]
    assert y.shape[1] == 71 and (y.dtypes == np.int8).all()
    row = records.set_index("record_id").loc["3"]
    assert row["y_IMI"] == 1 and row["y_ILMI"] == 1 and row["y_SR"] == 1 and row["y_NORM"] == 0  # likelihood 0 counts
    assert y.sum(axis=1).tolist() == [len(s["scp_codes"]) for s in GOOD_SPECS]
    assert records.set_index("record_id").loc["5", "gt_hr_bpm"] == 65.0
    assert {"gt_pr_ms", "gt_qrs_ms", "gt_qt_ms", "gt_axis_deg", "gt_codes"} <= set(records.columns)


def test_splits_follow_folds_sites_and_patients(good_store):
    out, summary = good_store
    records = pd.read_parquet(out / "records.parquet").set_index("record_id")
    assert records.loc[["4", "5"], "split"].eq("val").all() and records.loc[["6", "7"], "split"].eq("test").all()
    assert records.loc[["10", "11"], "split"].eq("external").all()
    assert records.loc[["1", "2", "3", "8", "12"], "split"].eq("train").all()
    assert (records.groupby("patient_id")["split"].nunique() == 1).all()
    assert summary["splits"] == {"external": 2, "test": 2, "train": 8, "val": 2}


def test_external_sites_can_be_set_or_switched_off(tmp_path, ptbxl_dir):
    none = curate("ptbxl", ptbxl_dir, tmp_path / "a", CurateConfig(n_workers=1, external_sites=()), progress=False)
    assert "external" not in none["splits"] and none["splits"]["train"] == 10
    site1 = curate("ptbxl", ptbxl_dir, tmp_path / "b", CurateConfig(n_workers=1, external_sites=("1",)), progress=False)
    records = pd.read_parquet(tmp_path / "b" / "records.parquet").set_index("record_id")
    assert records.loc[["12", "13"], "split"].eq("external").all() and records.loc["10", "split"] == "train"
    assert site1["splits"]["external"] == 2
    assert json.loads((tmp_path / "b" / "meta.json").read_text())["splits"]["external_sites"] == ["1"]


def test_signature_masks_copied_with_record_ids(good_store):
    out, _ = good_store
    masks = pd.read_parquet(out / "signature_masks.parquet")
    assert masks["record_id"].tolist() == ["3", "3", "6"]  # record 999 is not in the store
    assert masks["lead"].tolist() == ["II", "aVF", "V5"]


def test_resampling_500_to_100_matches_the_100_hz_copy(tmp_path, ptbxl_dir, good_store):
    cfg = CurateConfig(resolution="records500", n_workers=1)
    curate("ptbxl", ptbxl_dir, tmp_path / "s500", cfg, progress=False)
    from500 = np.load(tmp_path / "s500" / "signals.npy")
    from100 = np.load(good_store[0] / "signals.npy")
    core = slice(50, -50)  # polyphase filter edges
    np.testing.assert_allclose(from500[..., core], from100[..., core], atol=5e-3)
    assert json.loads((tmp_path / "s500" / "meta.json").read_text())["reader"]["resolution"] == "records500"
    assert (pd.read_parquet(tmp_path / "s500" / "records.parquet")["fs"] == 500).all()


def test_bad_records_are_excluded_with_reasons(tmp_path, ptbxl_bad_dir):
    summary = curate("ptbxl", ptbxl_bad_dir, tmp_path / "s", SERIAL, progress=False)
    excluded = pd.read_parquet(tmp_path / "s" / "excluded.parquet")
    got = dict(zip(excluded["record_id"], excluded["reason"]))
    assert got == {str(k): v for k, v in BAD_EXPECTED.items()}
    assert (excluded["action"] == "excluded").all()
    assert not excluded["detail"].str.contains(str(ptbxl_bad_dir)).any()  # paths relative to the root
    assert excluded.set_index("record_id").loc["30", "detail"].count("NOTACODE") == 1
    records = pd.read_parquet(tmp_path / "s" / "records.parquet")
    assert records["record_id"].tolist() == [str(s["ecg_id"]) for s in GOOD_SPECS]
    assert np.load(tmp_path / "s" / "signals.npy", mmap_mode="r").shape == (14, 12, 1000)
    assert summary["n_catalog"] == 26 and summary["n_excluded"] == 12
    assert sum(summary["excluded_by_reason"].values()) == 12


def test_mask_policy_keeps_records_with_masked_leads(tmp_path, ptbxl_bad_dir):
    cfg = CurateConfig(n_workers=1, qc=QCConfig(bad_lead_policy="mask", min_leads=11))
    curate("ptbxl", ptbxl_bad_dir, tmp_path / "s", cfg, progress=False)
    records = pd.read_parquet(tmp_path / "s" / "records.parquet")
    mask = np.load(tmp_path / "s" / "lead_mask.npy")
    signals = np.load(tmp_path / "s" / "signals.npy", mmap_mode="r")
    i24, i26 = (records.index[records["record_id"] == r][0] for r in ("24", "26"))
    assert mask[i24].tolist() == [k != 7 for k in range(12)] and np.isnan(signals[i24, 7]).all()
    assert not mask[i26, 2] and np.isnan(signals[i26, 2]).all()
    excluded = pd.read_parquet(tmp_path / "s" / "excluded.parquet").set_index("record_id")
    assert excluded.loc["26", "action"] == "flagged" and excluded.loc["26", "reason"] == "flat_lead"


def test_unknown_codes_can_stop_curation(tmp_path, ptbxl_bad_dir):
    with pytest.raises(LabelError, match="record 30"):
        curate("ptbxl", ptbxl_bad_dir, tmp_path / "s", CurateConfig(unknown_codes="error"), progress=False)
    assert not (tmp_path / "s").exists()


def test_worker_count_does_not_change_the_store(tmp_path, ptbxl_bad_dir):
    serial = curate("ptbxl", ptbxl_bad_dir, tmp_path / "a", CurateConfig(n_workers=1), progress=False)
    parallel = curate("ptbxl", ptbxl_bad_dir, tmp_path / "b", CurateConfig(n_workers=2, chunk_size=3), progress=False)
    for name in ("signals.npy", "lead_mask.npy", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in ("records.parquet", "excluded.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / name), pd.read_parquet(tmp_path / "b" / name))
    assert serial["splits"] == parallel["splits"]


class _Boom(BaseException):
    pass


def test_failure_midway_leaves_no_store(tmp_path, ptbxl_dir, monkeypatch):
    calls = []

    def exploding(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise _Boom("power cut")
        return real(*args, **kwargs)

    real = pipeline.preprocess.harmonise
    monkeypatch.setattr(pipeline.preprocess, "harmonise", exploding)
    with pytest.raises(_Boom):
        curate("ptbxl", ptbxl_dir, tmp_path / "store", SERIAL, progress=False)
    assert not (tmp_path / "store").exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_rerun_keeps_the_previous_store(tmp_path, ptbxl_dir, monkeypatch):
    curate("ptbxl", ptbxl_dir, tmp_path / "store", SERIAL, progress=False)
    before = (tmp_path / "store" / "signals.npy").read_bytes()
    monkeypatch.setattr(cur, "_write_tables", lambda *a, **k: (_ for _ in ()).throw(_Boom("disk full")))
    with pytest.raises(_Boom):
        curate("ptbxl", ptbxl_dir, tmp_path / "store", SERIAL, progress=False)
    assert (tmp_path / "store" / "signals.npy").read_bytes() == before
    assert (tmp_path / "store" / "meta.json").is_file()


def test_stale_partial_folders_are_cleaned_and_foreign_folders_kept(tmp_path, ptbxl_dir):
    stale = tmp_path / f".store.partial-{2**22 + 12345}"
    stale.mkdir()
    (stale / "signals.npy").write_bytes(b"half")
    curate("ptbxl", ptbxl_dir, tmp_path / "store", SERIAL, progress=False)
    assert not stale.exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a curated store"):
        curate("ptbxl", ptbxl_dir, foreign, SERIAL, progress=False)
    assert (foreign / "holiday.jpg").exists()


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        curate("ptbxl", tmp_path / "no_such_dataset", tmp_path / "out", SERIAL, progress=False)
    with pytest.raises(ValueError, match="unknown data source"):
        curate("edf_folder", tmp_path, tmp_path / "out", SERIAL, progress=False)


def _world(raw: Path, foundation: list[dict], downstream: list[dict], rare: list[dict] | None = None) -> Path:
    """A hand-written world: foundation and downstream corpora (+ rare sets) and world.json."""
    write_ptbxl(raw / "foundation", foundation)
    write_ptbxl(raw / "downstream", downstream)
    if rare:
        extra = pd.DataFrame({"description": ["Brugada pattern"], "diagnostic": [1.0], "diagnostic_subclass": ["BRUGADA"]},
                             index=["BRUGADA"])
        write_ptbxl(raw / "rare", rare, extra_statements=extra)
    corpora = [{"name": "foundation", "role": "foundation"}, {"name": "downstream", "role": "downstream"}]
    (raw / "world.json").write_text(json.dumps({"corpora": corpora}))
    return raw


def test_world_layout_curates_foundation_main_and_rare(tmp_path):
    foundation = [dict(s, ecg_id=s["ecg_id"] + 100, patient_id=s["patient_id"] + 100) for s in GOOD_SPECS]
    rare_specs = [
        {"ecg_id": 201, "patient_id": 201, "scp_codes": {"BRUGADA": 100.0, "SR": 0.0}, "strat_fold": 1,
         "extra": {"case_control_set": "BRUGADA"}},
        {"ecg_id": 202, "patient_id": 202, "scp_codes": {"NORM": 100.0, "SR": 0.0}, "strat_fold": 10,
         "extra": {"case_control_set": "BRUGADA"}},
    ]
    raw = _world(tmp_path / "raw", foundation, GOOD_SPECS[:4], rare_specs)
    summaries = curate_world(raw, tmp_path / "curated", SERIAL, seed=0, progress=False)
    assert set(summaries) == {"foundation", "main", "rare"}
    metas = {n: json.loads((tmp_path / "curated" / n / "meta.json").read_text()) for n in summaries}
    assert {n: m["role"] for n, m in metas.items()} == {"foundation": "foundation", "main": "downstream",
                                                       "rare": "downstream"}
    fdn = pd.read_parquet(tmp_path / "curated" / "foundation" / "records.parquet")
    assert set(fdn["split"]) == {"train", "val"}  # nothing of the pretraining corpus is ever tested
    stats = [m["preprocessing"]["stats"] for m in metas.values()]
    assert stats[0]["fitted_on"] == "foundation:train" and stats[0] == stats[1] == stats[2]
    main = pd.read_parquet(tmp_path / "curated" / "main" / "records.parquet")
    rare = pd.read_parquet(tmp_path / "curated" / "rare" / "records.parquet")
    assert len(main) == 4 and (main["source"] == "simulated").all() and "y_BRUGADA" not in main.columns
    assert rare["y_BRUGADA"].tolist() == [1, 0] and rare["case_control_set"].tolist() == ["BRUGADA", "BRUGADA"]
    assert metas["rare"]["labels"][-1] == "BRUGADA"


def test_world_with_a_patient_in_two_corpora_is_refused(tmp_path):
    foundation = [dict(s, ecg_id=s["ecg_id"] + 100) for s in GOOD_SPECS]  # the same patient ids as downstream
    raw = _world(tmp_path / "raw", foundation, GOOD_SPECS[:4])
    with pytest.raises(ValueError, match=r"patient\(s\) \['1', '2', '3'\] are in store 'foundation' and in store 'main'"):
        curate_world(raw, tmp_path / "curated", SERIAL, seed=0, progress=False)
    assert not (tmp_path / "curated").exists()  # refused before any work


def test_two_folders_curate_into_one_store_and_clashing_ids_fail(tmp_path):
    a = write_ptbxl(tmp_path / "a", GOOD_SPECS[:3])
    b = write_ptbxl(tmp_path / "b", [dict(s, ecg_id=s["ecg_id"] + 50, patient_id=s["patient_id"] + 50, site=1.0)
                                     for s in GOOD_SPECS[3:5]])
    curate("ptbxl", [a, b], tmp_path / "ab", dataclass_replace(SERIAL, external_sites=("1",)), progress=False)
    rec = pd.read_parquet(tmp_path / "ab" / "records.parquet")
    assert rec["corpus"].tolist() == ["a"] * 3 + ["b"] * 2 and (rec.loc[rec["corpus"] == "b", "split"] == "external").all()
    with pytest.raises(ValueError, match=r"record id\(s\) \['1', '2', '3'\] occur more than once"):
        curate("ptbxl", [a, a], tmp_path / "aa", SERIAL, progress=False)


def test_config_section_is_strict_and_presets_cannot_be_contradicted():
    cfg = section("curate", {"fs": 250, "bandpass": [0.5, 40], "qc": {"min_leads": 8}, "external_sites": ["2"]})
    assert cfg.fs == 250 and cfg.bandpass == (0.5, 40.0) and cfg.qc.min_leads == 8 and cfg.external_sites == ("2",)
    with pytest.raises(ConfigError, match="curate.fss"):
        section("curate", {"fss": 100})
    with pytest.raises(ConfigError, match="conflicts with preset"):
        from_dict(CurateConfig, {"preset": "ecgfounder", "fs": 250}, "curate")
    with pytest.raises(ConfigError, match="unknown preset"):
        from_dict(CurateConfig, {"preset": "magic"}, "curate")
    founder = from_dict(CurateConfig, {"preset": "ecgfounder", "fs": 500}, "curate").resolved()
    assert founder.bandpass == (0.67, 40.0) and founder.notch == 50.0 and founder.normalise == "record_zscore"
    assert founder.preprocessing()["n_samples"] == 5000


def test_shrinking_a_npy_keeps_it_loadable(tmp_path):
    path = tmp_path / "a.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(1000, 3, 4))
    arr[:] = np.arange(12000, dtype=np.float32).reshape(1000, 3, 4)
    arr.flush()
    del arr
    shrink_npy(path, 7)
    back = np.load(path)
    assert back.shape == (7, 3, 4) and back[6, 2, 3] == 6 * 12 + 11
    assert os.path.getsize(path) == 128 + 7 * 12 * 4


# ----------------------------------------------------------------------------------------------
# The stage's entry point: every output written under a temporary repository root


def _stage_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "reports").rglob("*") if p.is_file())


def _check_outputs(root: Path, result, tables: list[str]) -> None:
    """Every table, the gallery and the metrics JSON exist and hold what the result carries."""
    from ecgstudy.stages.outputs import _jsonable

    figure = root / "reports" / "figures" / "curate" / "ecg_per_condition.png"
    expected = ["reports/figures/curate/ecg_per_condition.png", "reports/metrics/curate.json",
                *(f"reports/tables/curate/{t}" for t in tables)]
    assert _stage_files(root) == sorted(expected)
    assert result.figures == {"ecg_per_condition": figure} and figure.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((root / "reports" / "metrics" / "curate.json").read_text()) == json.loads(
        json.dumps(_jsonable(result.metrics)))
    tables_dir = root / "reports" / "tables" / "curate"
    for name, table in result.exclusions.items():
        pd.testing.assert_frame_equal(pd.read_csv(tables_dir / f"exclusions_{name}.csv"), table)
    splits = pd.read_csv(tables_dir / "splits_by_site.csv", index_col=0)
    assert splits.to_numpy().tolist() == result.splits.to_numpy().tolist()
    assert result.metrics["records"] == len(result.store) == splits.filter(like="_records").to_numpy().sum()
    intervals = pd.read_csv(tables_dir / "intervals_by_condition.csv", index_col=0)
    assert list(intervals.index) == list(result.intervals.index)


def test_run_simulated_writes_every_output(tmp_path, monkeypatch):
    from ecgstudy.config import stage_config
    from ecgstudy.stages import curate as stage

    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    cfg = stage_config("curate", {
        "seed": 7, "data": {"source": "simulated"},
        "simulate": {"sizes": tiny_sizes(60, 70, 20), "rare": {"n_cases": 6, "n_controls": 12}},
        "curate": {"n_workers": 1}})
    result = stage.run(cfg)
    curated = tmp_path / "data" / "curated"
    assert {p.name for p in curated.iterdir()} == {"raw", "foundation", "main", "rare"}
    assert result.store.path == curated / "main" and set(result.summaries) == {"foundation", "main", "rare"}
    assert result.rare_table is None  # the simulator writes its own rare sets: no rare_sets.csv
    _check_outputs(tmp_path, result, ["demographics_readability.csv", "exclusions_foundation.csv",
                                      "exclusions_main.csv", "exclusions_rare.csv", "intervals_by_condition.csv", "prevalence_by_site.csv", "site_separability.csv",
                                      "splits_by_site.csv"])
    sep = result.metrics["site_separability"]
    assert set(sep) == {"foundation_site", "main_site", "rare_site", "foundation+main_corpus"}
    assert sep["foundation_site"]["n_sites"] == 3 and sep["main_site"]["n_sites"] == 3
    assert sep["foundation+main_corpus"]["n_sites"] == 3  # foundation, downstream, external
    assert all(0.0 <= v["balanced_accuracy"] <= 1.0 for k, v in sep.items() if k != "rare_site")
    prevalence = pd.read_csv(tmp_path / "reports" / "tables" / "curate" / "prevalence_by_site.csv", index_col=0)
    assert {c.split(":")[1] for c in prevalence.columns if not c.endswith(":all")} >= {
        "foundation", "downstream", "external"}
    assert result.metrics["stores"]["foundation"]["role"] == "foundation"
    assert result.metrics["normalisation_fitted_on"] == "foundation:train"
    assert result.metrics["main_kept"] == result.summaries["main"]["n_kept"] == len(result.store)
    assert "gt_hr_bpm" in result.intervals.columns and "hr_median_abs_error_bpm" in result.metrics
    readable = result.metrics["demographics_readability"]
    assert set(readable) == {"main_global", "main_per_lead", "main_site_only"}
    assert readable["main_per_lead"]["n_features"] == 59 and readable["main_global"]["n_features"] == 11
    assert readable["main_global"]["n_records"] == len(result.store)  # fewer than DEMOGRAPHICS_RECORDS: all
    for v in readable.values():  # patient-bootstrap intervals around the point estimates
        assert v["sex_auroc_low"] <= v["sex_auroc"] <= v["sex_auroc_high"]
        assert v["age_mae_low"] <= v["age_mae"] <= v["age_mae_high"]


def test_run_real_dataset_draws_rare_sets_from_the_main_store(tmp_path, monkeypatch):
    from ecgstudy.config import stage_config
    from ecgstudy.stages import curate as stage

    specs = [dict(s, ecg_id=s["ecg_id"] + 100 * k, patient_id=s["patient_id"] + 100 * k,
                  **({"strat_fold": 10} if k == 2 else {}))  # a third of the copies in the test split: gallery
             for k in range(3) for s in GOOD_SPECS]
    raw = write_ptbxl(tmp_path / "raw_ptbxl", specs)
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.setenv("ECGSTUDY_ROOT", str(root))
    cfg = stage_config("curate", {
        "seed": 3, "data": {"source": "ptbxl", "root": str(raw)},
        "curate": {"n_workers": 1, "rare_sets": {"codes": ["NORM", "PACE"], "min_cases": 2, "controls_per_case": 2}}})
    result = stage.run(cfg)
    assert {p.name for p in (root / "data" / "curated").iterdir()} == {"foundation", "main", "rare"}
    assert json.loads((root / "data" / "curated" / "foundation" / "meta.json").read_text())["role"] == "none"
    assert len(result.store) == 42
    _check_outputs(root, result, ["demographics_readability.csv", "exclusions_main.csv", "exclusions_rare.csv",
                                  "intervals_by_condition.csv",
                                  "prevalence_by_site.csv", "rare_sets.csv", "site_separability.csv",
                                  "splits_by_site.csv"])
    sets = pd.read_csv(root / "reports" / "tables" / "curate" / "rare_sets.csv")
    assert sets["code"].tolist() == ["NORM", "PACE"] and sets["status"].tolist() == result.rare_table["status"].tolist()
    assert result.metrics["rare_set_NORM"]["status"] == sets.loc[0, "status"]
    assert result.demographics.empty and result.metrics["demographics_readability"] == {}  # 42 records: too few


def test_a_same_reader_foundation_must_be_patient_disjoint_from_main_and_rare_which_share_patients(tmp_path):
    from ecgstudy.config import stage_config
    from ecgstudy.stages import curate as stage

    def copies(offset: int, n: int) -> list[dict]:
        return [dict(s, ecg_id=s["ecg_id"] + 100 * k + offset, patient_id=s["patient_id"] + 100 * k + offset)
                for k in range(n) for s in GOOD_SPECS]

    main = write_ptbxl(tmp_path / "main_ptbxl", copies(0, 3))
    params = {"seed": 3, "data": {"source": "ptbxl", "root": str(main),
                                  "foundation": {"source": "ptbxl", "root": str(tmp_path / "found_ptbxl")}},
              "curate": {"n_workers": 1, "rare_sets": {"codes": ["NORM", "PACE"], "min_cases": 2, "controls_per_case": 2}}}
    write_ptbxl(tmp_path / "found_ptbxl", copies(5000, 2))  # other patients
    curated = tmp_path / "curated"
    summaries = stage.curate_source(stage_config("curate", params), curated, tmp_path)
    assert {"main", "rare", "foundation"} <= set(summaries)
    rare = set(pd.read_parquet(curated / "rare" / "records.parquet")["patient_id"].astype(str))
    assert rare and rare <= set(pd.read_parquet(curated / "main" / "records.parquet")["patient_id"].astype(str))
    shared = copies(5000, 1) + [dict(GOOD_SPECS[0], ecg_id=9999)]  # one patient of main in the foundation corpus
    write_ptbxl(tmp_path / "found_shared", shared)
    params["data"]["foundation"]["root"] = str(tmp_path / "found_shared")
    with pytest.raises(ValueError, match=r"in store 'foundation' and in store 'main'.*must not share patients"):
        stage.curate_source(stage_config("curate", params), tmp_path / "curated2", tmp_path)


def test_demographics_intervals_are_over_each_subsets_own_predictions():
    from ecgstudy.data import demographics
    from ecgstudy.stages.curate import demographics_with_intervals

    rng = np.random.default_rng(0)
    parts, rows = [], []
    for subset, noise in (("all", 12.0), ("healthy", 3.0)):
        age = rng.uniform(20, 80, 200)
        sex = rng.integers(0, 2, 200).astype(float)
        pred = pd.DataFrame({"store": "main", "records": subset, "features": "global", "record_id": np.arange(200),
                             "patient_id": np.arange(200), "age": age, "sex": sex,
                             "pred_age": age + rng.normal(0, noise, 200), "pred_sex": 0.5 + 0.3 * (sex - 0.5)})
        parts.append(pred)
        rows.append({"store": "main", "records": subset, "features": "global", "n_features": 9, "n_records": 200,
                     "n_patients": 200, **demographics.scores(age, sex, pred.pred_age.to_numpy(), pred.pred_sex.to_numpy())})
    out = demographics_with_intervals(pd.DataFrame(rows, columns=demographics.COLUMNS), pd.concat(parts), seed=0,
                                      n_boot=200)
    assert (out.age_mae_low <= out.age_mae).all() and (out.age_mae <= out.age_mae_high).all()
    noisy, clean = out.iloc[0], out.iloc[1]
    assert clean.age_mae_high < noisy.age_mae_low  # each row's interval is over its own subset's predictions
