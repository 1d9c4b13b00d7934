"""Roles of the corpora: pretraining reads only the foundation corpus; dataset-level normalisation
statistics are fitted on its train split, stored with every store and checkpoint, and applied."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _store_builder import build_store
from ecgstudy import config
from ecgstudy.data.normalisation import attach_stats, fit_stats
from ecgstudy.data.store import ECGDataset, Store, StoreError
from ecgstudy.models.checkpoint import CheckpointError, check_preprocessing, preprocessing_spec
from ecgstudy.stages import artifacts


def _params(**sections) -> dict:
    return {name: sections.get(name, {}) for name in config.SECTIONS}


def _set_meta(path, **values) -> None:
    meta = json.loads((path / "meta.json").read_text())
    meta.update(values)
    (path / "meta.json").write_text(json.dumps(meta))


def test_a_profile_that_pretrains_on_downstream_records_is_refused_at_load():
    with pytest.raises(config.ConfigError, match=r"pretrain.store = 'main'.*only the foundation corpus"):
        config.validate_all(_params(pretrain={"store": "main"}))
    with pytest.raises(config.ConfigError, match=r"pretrain.probe.store = 'foundation'"):
        config.validate_all(_params(pretrain={"probe": {"store": "foundation"}}))
    with pytest.raises(config.ConfigError, match=r"split\(s\) \['test'\]"):
        config.validate_all(_params(pretrain={"splits": ["train", "test"]}))
    with pytest.raises(config.ConfigError, match="data.foundation is for real datasets"):
        config.validate_all(_params(data={"foundation": {"source": "code15", "root": "x"}}))
    config.validate_all(_params(data={"source": "ptbxl", "foundation": {"source": "code15", "root": "data/raw/code15"}}))


def test_pretraining_store_must_be_a_curated_foundation_corpus(tmp_path):
    curated = tmp_path / "data" / "curated"
    store = build_store(curated / "foundation", 20)
    with pytest.raises(ValueError, match=r"pretrain.store = 'foundation'.*role None"):
        artifacts.pretraining_store("data/curated", "foundation", tmp_path)
    _set_meta(store, role="downstream")
    with pytest.raises(ValueError, match="role 'downstream', not 'foundation'"):
        artifacts.pretraining_store("data/curated", "foundation", tmp_path)
    _set_meta(store, role="foundation")
    assert artifacts.pretraining_store("data/curated", "foundation", tmp_path) == store
    from ecgstudy.data.world import mark_no_foundation

    mark_no_foundation(store, "data.foundation is null")
    with pytest.raises(artifacts.MissingArtifact, match=r"no foundation corpus was curated.*data.foundation: \{source"):
        artifacts.pretraining_store("data/curated", "foundation", tmp_path)


def test_run_pretrain_refuses_a_downstream_store_and_a_foundation_probe_store(tmp_path):
    from ecgstudy.stages.pretrain import PretrainConfig, run_pretrain

    store = build_store(tmp_path / "s", 20)
    _set_meta(store, role="downstream")
    with pytest.raises(ValueError, match="pretrain.store: .* role 'downstream'"):
        run_pretrain(PretrainConfig(), store, tmp_path / "m", seed=0)
    _set_meta(store, role="foundation")
    with pytest.raises(ValueError, match="pretrain.probe.store: .* foundation corpus"):
        run_pretrain(PretrainConfig(), store, tmp_path / "m", seed=0, probe_store_dir=store)
    assert not (tmp_path / "m").exists()  # refused before any work


def test_fit_stats_is_the_mean_and_std_of_present_leads_of_the_given_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 2.0, (10, 12, 50)).astype(np.float32)
    mask = np.ones((10, 12), bool)
    mask[2, 7] = False  # absent lead: not counted
    x[3, 1, :5] = np.nan  # NaN samples: not counted
    stats = fit_stats(x, mask, np.arange(1, 6), "x:train")
    part = x[1:6].astype(np.float64).copy()
    part[1, 7] = np.nan
    np.testing.assert_allclose(stats["mean"], np.nanmean(part, axis=(0, 2)), atol=1e-5)
    np.testing.assert_allclose(stats["std"], np.nanstd(part, axis=(0, 2)), atol=1e-5)
    assert stats["global_mean"] == pytest.approx(np.nanmean(part), abs=1e-5)
    assert stats["global_std"] == pytest.approx(np.nanstd(part), abs=1e-5)
    assert stats["n_records"] == 5 and stats["fitted_on"] == "x:train"


def test_dataset_normalisation_keeps_voltage_and_uses_the_stored_statistics(tmp_path):
    path = build_store(tmp_path / "s", 20, missing_lead_frac=0.0)
    store = Store(path)
    stats = fit_stats(store.signals, store.lead_mask, store.indices("train"), "foundation:train")
    attach_stats(path, stats)
    _set_meta(path, preprocessing={**store.meta["preprocessing"], "normalise": "dataset_per_lead_zscore",
                                   "stats": stats})
    store = Store(path)
    item = ECGDataset(store, [0, 1])[0]["x"].numpy()
    raw = np.asarray(store.signals[0], np.float64)
    expected = (raw - np.array(stats["mean"])[:, None]) / np.array(stats["std"])[:, None]
    np.testing.assert_allclose(item, expected, atol=1e-4)
    # voltage survives: a record with twice the amplitude is twice as far from the mean (per-record z-scores erase it)
    dataset_std = item.std(axis=1)
    per_record = ECGDataset(store, [0], normalise="per_lead_zscore")[0]["x"].numpy()
    assert np.allclose(per_record.std(axis=1), 1.0, atol=1e-3) and not np.allclose(dataset_std, 1.0, atol=0.05)
    # the checkpoint carries the statistics; a store with other statistics is refused
    spec = preprocessing_spec(store.meta)
    assert spec["stats"]["fitted_on"] == "foundation:train"
    check_preprocessing(spec, store.meta, "m.pt")
    other = {**store.meta, "preprocessing": {**store.meta["preprocessing"],
                                             "stats": {**stats, "mean": [0.0] * 12, "fitted_on": "main:train"}}}
    with pytest.raises(CheckpointError, match="normalisation statistics: model's fitted on 'foundation:train'"):
        check_preprocessing(spec, other, "m.pt")
    _set_meta(path, preprocessing={**store.meta["preprocessing"], "stats": None})
    with pytest.raises(StoreError, match="needs the training-split statistics"):
        ECGDataset(Store(path), [0])
