"""Latent stage: embeddings, k-NN probes, diagnosis categories, UMAP and the stage on a tiny store."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ecgstudy import config, latent


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


def test_primary_diagnosis_categories():
    info = {"NORM": {"diagnostic_class": "NORM"}, "IMI": {"diagnostic_class": "MI"},
            "LVH": {"diagnostic_class": "HYP"}, "AFIB": {"diagnostic_class": ""}}
    records = pd.DataFrame({"y_NORM": [1, 0, 0, 0], "y_IMI": [0, 1, 1, 0], "y_LVH": [0, 0, 1, 0],
                            "y_AFIB": [0, 0, 0, 1]})
    assert list(latent.primary_diagnosis(records, info)) == ["NORM", "MI", "several", "none"]


def test_standardise_uses_the_reference_statistics():
    a = np.array([[0.0, 1.0], [2.0, 1.0]])
    b = np.array([[4.0, 3.0]])
    sa, sb = latent.standardise(a, b)
    assert np.allclose(sa, [[-1, 0], [1, 0]]) and np.allclose(sb, [[3, 2]])


def test_random_init_encoder_is_seeded_and_same_architecture():
    from ecgstudy.models import build_encoder

    trained = build_encoder("net1d", "tiny")
    info = {"kind": "encoder", "spec": trained.spec_dict}
    a, b, c = latent.random_init_like(info, 0), latent.random_init_like(info, 0), latent.random_init_like(info, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert {k: v.shape for k, v in sa.items()} == {k: v.shape for k, v in trained.state_dict().items()}
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    clf_info = {"kind": "classifier", "spec": {"encoder": trained.spec_dict, "n_labels": 3}}
    assert latent.random_init_like(clf_info, 0).state_dict().keys() == sa.keys()


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


def test_latent_stage_on_a_tiny_store(tmp_path):
    """The whole stage (incl. the one UMAP of this file, at few epochs) on a synthetic store."""
    from _store_builder import build_store

    from ecgstudy.models import build_encoder
    from ecgstudy.models.checkpoint import preprocessing_spec, save_checkpoint
    from ecgstudy.store import Store

    store_dir = build_store(tmp_path / "store", n_records=160, seed=2)
    store = Store(store_dir)
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "encoder.pt", build_encoder("net1d", "tiny"), config={},
                           preprocessing=preprocessing_spec(store.meta), labels=[])
    cfg = latent.LatentConfig(max_probe_records=60, max_eval_records=30, min_positives=2, k=5,
                              umap_neighbors=5, umap_epochs=20, batch_size=32)
    result = latent.run_latent(cfg, store_dir, ckpt, seed=0)
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
    for enc in latent.ENCODERS:
        assert m[enc]["knn_macro_auroc_low"] <= m[enc]["knn_macro_auroc"] <= m[enc]["knn_macro_auroc_high"]
        per_label = result.probe[result.probe["encoder"] == enc]["auroc"]
        assert m[enc]["knn_macro_auroc"] == pytest.approx(per_label.mean())
    assert m["knn_auroc_gain_low"] <= m["knn_auroc_gain_over_random"] <= m["knn_auroc_gain_high"]
    assert set(result.subtitles) == set(latent.ENCODERS)
    assert set(result.probe["encoder"]) == set(latent.ENCODERS)
    assert m["knn_auroc_gain_over_random"] == pytest.approx(
        m["pretrained"]["knn_macro_auroc"] - m["random_init"]["knn_macro_auroc"])
    latent.write_tables(result, tmp_path / "tables", tmp_path / "plots")
    table = pd.read_csv(tmp_path / "tables" / "knn_probe.csv")
    assert list(table.columns) == ["label", "n_pos_train", "n_pos_test", "auroc_pretrained", "auroc_random_init"]
    assert len(pd.read_csv(tmp_path / "plots" / "umap_coordinates.csv")) == len(coords)
