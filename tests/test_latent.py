"""Latent stage: embeddings, k-NN probes, diagnosis categories, UMAP and the stage on a tiny store."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ecgstudy import config
from ecgstudy.stages import latent


class MeanEncoder(nn.Module):
    """embed(x, lead_mask) -> per-lead means (B, 12); records whether it ran in eval mode."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.seen_training = []

    def embed(self, x, lead_mask=None):
        self.seen_training.append(self.training)
        if lead_mask is not None:
            x = x * lead_mask.unsqueeze(-1)
        return x.mean(-1) * self.scale


class Items(Dataset):
    def __init__(self, x, mask):
        self.x, self.mask = x, mask

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self.x[i]), "lead_mask": torch.from_numpy(self.mask[i]), "index": i}


def test_embeddings_are_batched_in_order_without_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 12, 20)).astype(np.float32)
    mask = np.ones((37, 12), bool)
    mask[5, 3] = False
    model = MeanEncoder().train()
    z = latent.embed_dataset(model, Items(x, mask), batch_size=8)
    expected = (x * mask[..., None]).mean(-1)
    assert z.shape == (37, 12) and z.dtype == np.float32
    assert np.allclose(z, expected, atol=1e-6)
    assert model.seen_training == [False] * 5  # ceil(37 / 8) batches, all in eval mode
    assert model.scale.grad is None
    with pytest.raises(ValueError, match="no records"):
        latent.embed_dataset(model, Items(x[:0], mask[:0]))


def test_knn_probe_separates_informative_from_random_embeddings():
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random((n, 3)) < 0.3).astype(int)
    y[:, 2] = 0
    y[:5, 2] = 1  # a rare label
    informative = np.concatenate([y * 3.0, rng.normal(size=(n, 5))], axis=1) + 0.3 * rng.normal(size=(n, 8))
    noise = rng.normal(size=(n, 8))
    train, test = slice(0, 200), slice(200, None)
    good = latent.knn_probe(informative[train], y[train], informative[test], y[test], ["a", "b", "c"], k=10)
    bad = latent.knn_probe(noise[train], y[train], noise[test], y[test], ["a", "b", "c"], k=10)
    assert list(good["label"]) == ["a", "b", "c"]
    assert (good["auroc"][:2] > 0.95).all()
    assert (abs(bad["auroc"][:2] - 0.5) < 0.15).all()
    assert np.isnan(good.loc[2, "auroc"])  # no positive of "c" in the test rows
    assert good.loc[2, "n_pos_train"] == 5 and good.loc[2, "n_pos_test"] == 0
    one = latent.knn_probe(informative[train], y[train, :1], informative[test], y[test, :1], ["a"], k=10)
    assert one.loc[0, "auroc"] == pytest.approx(good.loc[0, "auroc"])


def test_knn_scores_single_class_label_gets_a_constant():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(50, 3))
    y = np.zeros((50, 2), int)
    y[:10, 0] = 1
    s = latent.knn_scores(z, y, z[:7], k=5)
    assert s.shape == (7, 2) and np.all(s[:, 1] == 0.0)
    assert np.all((0 <= s[:, 0]) & (s[:, 0] <= 1))


def test_knn_group_accuracy():
    rng = np.random.default_rng(1)
    g = np.repeat(["s1", "s2", "s3"], 40)
    z = rng.normal(size=(120, 4)) + 5 * (np.arange(120) // 40)[:, None]
    idx = rng.permutation(120)
    tr, te = idx[:80], idx[80:]
    assert latent.knn_group_accuracy(z[tr], g[tr], z[te], g[te], k=5, metric="euclidean") == 1.0
    assert np.isnan(latent.knn_group_accuracy(z[tr], np.full(80, "s1"), z[te], g[te]))


def test_standardise_uses_the_reference_statistics():
    a = np.array([[0.0, 1.0], [2.0, 1.0]])
    b = np.array([[4.0, 3.0]])
    sa, sb = latent.standardise(a, b)
    assert np.allclose(sa, [[-1, 0], [1, 0]]) and np.allclose(sb, [[3, 2]])


def test_random_init_encoder_is_seeded_and_same_architecture():
    from ecgstudy.models import build_encoder, random_init_like

    trained = build_encoder("net1d", "tiny")
    info = {"kind": "encoder", "spec": trained.spec_dict}
    a, b, c = random_init_like(info, 0), random_init_like(info, 0), random_init_like(info, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert {k: v.shape for k, v in sa.items()} == {k: v.shape for k, v in trained.state_dict().items()}
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    clf_info = {"kind": "classifier", "spec": {"encoder": trained.spec_dict, "n_labels": 3}}
    assert random_init_like(clf_info, 0).state_dict().keys() == sa.keys()


def test_config_is_strict():
    assert config.from_dict(latent.LatentConfig, {"k": 5}, "latent").k == 5
    with pytest.raises(config.ConfigError, match="umap_neighbours"):
        config.from_dict(latent.LatentConfig, {"umap_neighbours": 5}, "latent")
    with pytest.raises(config.ConfigError, match="max_probe_records"):
        config.from_dict(latent.LatentConfig, {"k": 50, "max_probe_records": 20}, "latent")
    with pytest.raises(config.ConfigError, match="unknown split"):
        config.from_dict(latent.LatentConfig, {"extra_splits": ["externl"]}, "latent")
    with pytest.raises(config.ConfigError, match="fitted on"):
        config.from_dict(latent.LatentConfig, {"eval_split": "train"}, "latent")


def _tiny_repo(root, twin=True):
    """A repository root holding what the latent stage reads: the curated store ``data/curated/main`` (160
    synthetic records, 100 Hz, 10 s, two records per patient), the kept pretraining encoder
    ``models/pretrain/encoder.pt`` of run ``tiny`` and (``twin``) that run's random-init twin
    ``models/pretrain/tiny.random_init.pt`` (other weights: a stand-in for pretraining)."""
    from _store_builder import build_store

    from ecgstudy.data.store import Store
    from ecgstudy.models import build_encoder
    from ecgstudy.models.checkpoint import preprocessing_spec, save_checkpoint

    store = Store(build_store(root / "data" / "curated" / "main", n_records=160, seed=2))
    provenance = {"config": {"run": {"name": "tiny"}}, "preprocessing": preprocessing_spec(store.meta), "labels": []}
    torch.manual_seed(0)
    save_checkpoint(root / "models" / "pretrain" / "encoder.pt", build_encoder("net1d", "tiny"), **provenance)
    if twin:
        torch.manual_seed(1)
        save_checkpoint(root / "models" / "pretrain" / "tiny.random_init.pt", build_encoder("net1d", "tiny"),
                        **provenance, extra={"random_init_of": "tiny"})
    return store


TINY = {"max_probe_records": 60, "max_eval_records": 30, "min_positives": 2, "k": 5, "umap_neighbors": 5,
        "umap_epochs": 20, "batch_size": 32, "n_boot": 300}


def test_encoder_is_a_pretraining_run_checked_against_pretrain_runs():
    from types import SimpleNamespace

    from ecgstudy.stages import artifacts

    assert latent.LatentConfig().encoder == artifacts.KEEP
    pretrain = SimpleNamespace(store=artifacts.FOUNDATION_STORE, probe=SimpleNamespace(store="main"),
                               runs=[SimpleNamespace(name="cmsc"), SimpleNamespace(name="mae")])
    artifacts.check_links({"pretrain": pretrain, "latent": latent.LatentConfig(encoder="mae")})
    with pytest.raises(ValueError, match="latent.encoder"):
        artifacts.check_links({"pretrain": pretrain, "latent": latent.LatentConfig(encoder="models/pretrain/encoder.pt")})


def test_run_names_the_missing_upstream_output(tmp_path, monkeypatch):
    from _store_builder import build_store

    from ecgstudy.stages.artifacts import MissingArtifact

    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    cfg = config.stage_config("latent", {"seed": 0, "data": {}, "latent": TINY})
    with pytest.raises(MissingArtifact, match="'curate' stage"):
        latent.run(cfg)
    build_store(tmp_path / "data" / "curated" / "main", n_records=20, seed=0)
    with pytest.raises(MissingArtifact, match="encoder.pt not found.*'pretrain' stage"):
        latent.run(cfg)
    assert not (tmp_path / "reports").exists()  # inputs are checked before anything is written


def test_latent_stage_on_a_tiny_store(tmp_path, monkeypatch):
    """The whole stage (incl. the one UMAP of this file, at few epochs) on a synthetic store, run through its
    entry point in a temporary repository root: numbers, and every output dvc.yaml lists."""
    import json

    from ecgstudy.stages.outputs import _jsonable

    store = _tiny_repo(tmp_path)
    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    cfg = config.stage_config("latent", {"seed": 0, "data": {}, "latent": TINY})
    threads = torch.get_num_threads()
    result = latent.run(cfg)
    assert torch.get_num_threads() == threads  # numba's OpenMP layer must not change torch's threads (UMAP input bits)
    labelled = store.label_matrix().any(axis=1)  # records without any label leave the task
    n_test = min(30, int(labelled[store.indices("test")].sum()))
    n_ext = min(30, int(labelled[store.indices("external")].sum()))
    unlabelled = set(store.records["record_id"][~labelled])
    assert unlabelled and not unlabelled & set(result.coords["record_id"])
    coords = result.coords
    assert len(coords) == 2 * (n_test + n_ext)
    assert set(coords["encoder"]) == set(latent.ENCODERS)
    assert set(coords["split"]) == {"test", "external"} and set(coords["site"]) == {"site_a", "site_b"}
    assert np.isfinite(coords[["umap_x", "umap_y"]].to_numpy()).all()
    m = result.metrics
    assert m["n_probe"] == 60 and m["n_eval"] == n_test and m["embed_dim"] == 256
    assert m["baseline_init"].startswith("twin tiny.random_init.pt")
    stats = m["statistics"]
    assert stats["n_boot"] == 300 and stats["repeats"] == 1 and stats["n_records"] == n_test
    assert stats["n_patients"] < n_test  # two records per patient: patients are resampled, not records
    assert stats["label_set"]["n_labels"] == m["n_labels"] == len(stats["label_set"]["labels"]) > 0
    counts = result.probe.drop_duplicates("label").set_index("label")
    assert list(counts.index) == stats["label_set"]["labels"]  # the fixed label set, decided from counts:
    assert (counts["n_pos_test"] >= 2).all() and (n_test - counts["n_pos_test"] >= 2).all()
    assert (counts["n_pos_train"] >= 2).all()
    for enc in latent.ENCODERS:
        per_label = result.probe[result.probe["encoder"] == enc]
        for metric in ("auroc", "auprc"):
            assert m[enc][f"knn_macro_{metric}_low"] <= m[enc][f"knn_macro_{metric}"] <= m[enc][f"knn_macro_{metric}_high"]
            assert m[enc][f"knn_macro_{metric}"] == pytest.approx(per_label[metric].mean())
    for metric in ("auroc", "auprc"):
        assert m[f"knn_{metric}_gain_low"] <= m[f"knn_{metric}_gain_over_random"] <= m[f"knn_{metric}_gain_high"]
        assert m[f"knn_{metric}_gain_level"] == 0.95 and 0 <= m[f"knn_{metric}_gain_p_value"] <= 1
    assert set(result.subtitles) == set(latent.ENCODERS)
    for enc in latent.ENCODERS:  # age and sex read from the embeddings (the test store's are random)
        assert m[enc]["knn_age_mae_low"] <= m[enc]["knn_age_mae"] <= m[enc]["knn_age_mae_high"]
        assert 0 <= m[enc]["knn_sex_auroc"] <= 1
    assert m["demographics"]["n_age"] == n_test and m["knn_age_mae_gain_low"] <= m["knn_age_mae_gain_high"]
    assert set(result.probe["encoder"]) == set(latent.ENCODERS)
    assert m["knn_auroc_gain_over_random"] == pytest.approx(
        m["pretrained"]["knn_macro_auroc"] - m["random_init"]["knn_macro_auroc"])
    # every output of the stage, under the temporary root
    reports = tmp_path / "reports"
    table = pd.read_csv(reports / "tables" / "latent" / "knn_probe.csv")
    assert list(table.columns) == ["label", "n_pos_train", "n_pos_test", "auroc_pretrained", "auroc_random_init",
                                   "auprc_pretrained", "auprc_random_init"]
    assert len(pd.read_csv(reports / "plots" / "latent" / "umap_coordinates.csv")) == len(coords)
    assert result.figures == {"umap": reports / "figures" / "latent" / "umap.png",
                              "knn_probe_auroc": reports / "figures" / "latent" / "knn_probe_auroc.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in result.figures.values())
    assert json.loads((reports / "metrics" / "latent.json").read_text()) == json.loads(json.dumps(_jsonable(m)))
    # the lower-level function computes the same numbers from the same inputs
    again = latent.run_latent(cfg.latent, tmp_path / "data" / "curated" / "main",
                              tmp_path / "models" / "pretrain" / "encoder.pt", seed=0)
    assert repr(again.metrics) == repr(m)
    pd.testing.assert_frame_equal(again.coords, coords, check_exact=True)
    pd.testing.assert_frame_equal(again.probe, result.probe, check_exact=True)


def test_latent_refuses_an_encoder_without_its_random_init_twin(tmp_path, monkeypatch):
    from ecgstudy.stages.artifacts import MissingArtifact

    _tiny_repo(tmp_path, twin=False)
    monkeypatch.setenv("ECGSTUDY_ROOT", str(tmp_path))
    cfg = config.stage_config("latent", {"seed": 0, "data": {}, "latent": TINY})
    with pytest.raises(MissingArtifact, match=r"tiny\.random_init\.pt not found.*'pretrain' stage"):
        latent.run(cfg)
    assert not (tmp_path / "reports").exists()


def _sample(y, patients):
    n = len(y)
    rows = np.arange(n)
    return latent.Sample(rows[:0], rows, {"test": rows}, y, [f"l{j}" for j in range(y.shape[1])],
                         np.full(n, "s"), np.full(n, "d"), np.array([f"r{i}" for i in rows]), np.asarray(patients))


def test_probe_statistics_resample_patients_and_pair_the_encoders():
    rng = np.random.default_rng(3)
    n, labels = 80, 3
    y = (rng.random((n, labels)) < 0.3).astype(int)
    good = y + 0.8 * rng.random((n, labels))  # informative scores
    noise = rng.random((n, labels))
    cfg = latent.LatentConfig(n_boot=400)
    once = latent.probe_statistics(_sample(y, np.arange(n)), {"pretrained": good, "random_init": noise}, cfg, seed=0)
    # every patient recorded twice (identical records): the same patients are drawn, so identical numbers;
    # a record-level bootstrap would see twice the sample and give narrower intervals
    twice = latent.probe_statistics(_sample(np.repeat(y, 2, axis=0), np.repeat(np.arange(n), 2)),
                                    {"pretrained": np.repeat(good, 2, axis=0), "random_init": np.repeat(noise, 2, axis=0)},
                                    cfg, seed=0)
    for key in ("pretrained", "random_init"):
        assert twice[key] == pytest.approx(once[key])
    for key in ("knn_auroc_gain_over_random", "knn_auroc_gain_low", "knn_auroc_gain_high", "knn_auprc_gain_low"):
        assert twice[key] == pytest.approx(once[key])
    assert twice["statistics"]["n_records"] == 2 * n and twice["statistics"]["n_patients"] == n
    assert once["knn_auroc_gain_low"] > 0.2  # informative vs noise: the paired interval excludes 0
    assert once["knn_auroc_gain_over_random"] == pytest.approx(
        once["pretrained"]["knn_macro_auroc"] - once["random_init"]["knn_macro_auroc"])
    # the other seed draws other patients
    other = latent.probe_statistics(_sample(y, np.arange(n)), {"pretrained": good, "random_init": noise}, cfg, seed=1)
    assert other["knn_auroc_gain_low"] != once["knn_auroc_gain_low"]
    assert other["knn_auroc_gain_over_random"] == once["knn_auroc_gain_over_random"]


def test_probe_statistics_skip_labels_missing_a_class_without_redraw():
    y = np.zeros((30, 2), int)
    y[:, 0] = np.arange(30) % 2
    y[0, 1] = 1  # one positive: absent from about a third of the resamples
    scores = np.random.default_rng(0).random((30, 2))
    out = latent.probe_statistics(_sample(y, np.arange(30)), {"pretrained": scores, "random_init": scores[::-1]},
                                  latent.LatentConfig(n_boot=300), seed=0)
    skipped = out["statistics"]["skipped_label_draws"]
    assert 50 < skipped < 200  # ~ 300 x (29/30)^30 = 108 resamples without the positive, none redrawn


def test_knn_demographics_read_age_and_sex_from_an_embedding_that_holds_them():
    rng = np.random.default_rng(0)
    n = 400
    age, sex = rng.uniform(20, 90, n), rng.integers(0, 2, n).astype(float)
    informative = np.column_stack([age / 10, 3 * sex, rng.normal(size=(n, 6))])
    noise = rng.normal(size=(n, 8))
    train, test = slice(0, 300), slice(300, n)
    age_train = age[train].copy()
    age_train[:5] = np.nan  # unknown ages leave the fit, not the sample
    good = latent.knn_demographics(informative[train], age_train, sex[train], informative[test], k=15, metric="euclidean")
    bad = latent.knn_demographics(noise[train], age_train, sex[train], noise[test], k=15, metric="euclidean")
    mean_predictor = np.mean(np.abs(np.nanmean(age_train) - age[test]))
    assert np.mean(np.abs(good["age"] - age[test])) < 0.3 * mean_predictor
    assert np.mean(np.abs(bad["age"] - age[test])) > 0.8 * mean_predictor
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(sex[test], good["sex"]) > 0.95 and abs(roc_auc_score(sex[test], bad["sex"]) - 0.5) < 0.15
    one_sex = latent.knn_demographics(noise[train], age_train, np.zeros(300), noise[test], k=15)
    assert np.isnan(one_sex["sex"]).all() and np.isfinite(one_sex["age"]).all()


def test_demographic_statistics_resample_patients_and_pair_the_encoders():
    rng = np.random.default_rng(1)
    n = 120
    y = (rng.random((n, 1)) < 0.3).astype(int)
    patients = np.repeat(np.arange(n // 2), 2)
    age, sex = rng.uniform(20, 90, n), (rng.random(n) < 0.5).astype(float)
    base = _sample(y, patients)
    sample = latent.Sample(np.arange(n), np.arange(n), {"test": np.arange(n)}, y, base.labels, base.site,
                           base.diagnosis, base.record_id, base.patient, age=age, sex=sex)
    preds = {"pretrained": {"age": age + rng.normal(0, 3, n), "sex": sex + 0.5 * rng.random(n)},
             "random_init": {"age": np.full(n, age.mean()) + rng.normal(0, 1, n), "sex": rng.random(n)}}
    cfg = latent.LatentConfig(n_boot=300)
    out = latent.demographic_statistics(sample, preds, cfg, seed=0)
    pre, rnd = out["per_encoder"]["pretrained"], out["per_encoder"]["random_init"]
    for metrics in (pre, rnd):
        for m in ("age_mae", "sex_auroc"):
            assert metrics[f"knn_{m}_low"] <= metrics[f"knn_{m}"] <= metrics[f"knn_{m}_high"]
    assert pre["knn_age_mae"] == pytest.approx(np.mean(np.abs(preds["pretrained"]["age"] - age)))
    assert pre["knn_sex_auroc"] == 1.0 and 0.3 < rnd["knn_sex_auroc"] < 0.7
    assert out["knn_age_mae_gain_high"] < 0 < out["knn_sex_auroc_gain_low"]  # paired: better on both
    assert out["demographics"]["n_age"] == n and out["demographics"]["age_mae_mean_predictor"] > rnd["knn_age_mae"] - 2
    assert latent.demographic_statistics(base, preds, cfg, seed=0) == {}  # no age or sex in the store: nothing
