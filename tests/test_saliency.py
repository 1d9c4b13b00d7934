"""Attribution methods, mask scoring, the synthetic validity check and the saliency stage."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ecgstudy.engine import attribution
from ecgstudy import config
from ecgstudy.stages import saliency


class Linear(nn.Module):
    """f(x)_l = sum(w_l * x): integrated gradients and gradient x input are both exactly w_l * x."""

    def __init__(self, n_labels: int = 2, t: int = 50):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_labels, 12, t, generator=torch.Generator().manual_seed(0)))

    def forward(self, x, lead_mask=None):
        if lead_mask is not None:
            x = x * lead_mask.unsqueeze(-1).to(x.dtype)
        return torch.einsum("bct,lct->bl", x, self.w)


class Smooth(nn.Module):
    """A smooth non-linear classifier (conv -> tanh -> mean -> linear)."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.conv = nn.Conv1d(12, 4, 5, padding=2)
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x, lead_mask=None):
        return self.head(torch.tanh(self.conv(x)).mean(-1))


def _x(b=3, t=50, seed=0):
    return torch.randn(b, 12, t, generator=torch.Generator().manual_seed(seed))


def test_linear_model_attributions_are_exact():
    model, x = Linear(), _x()
    target = torch.tensor([0, 1, 1])
    expected = (x * model.w[target]).detach().numpy()
    ig = attribution.integrated_gradients(model, x, None, target, n_steps=4)
    gxi = attribution.gradient_x_input(model, x, None, target)
    assert np.allclose(ig, expected, atol=1e-5)
    assert np.allclose(gxi, expected, atol=1e-5)


def test_integrated_gradients_completeness_and_batching():
    model, x = Smooth(), _x(4)
    target = torch.tensor([0, 2, 1, 0])
    ig = attribution.integrated_gradients(model, x, None, target, n_steps=64, batch_size=64)
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, target[:, None]).squeeze(1).numpy()
    assert np.allclose(ig.sum(axis=(1, 2)), gap, rtol=0.02, atol=1e-3)
    # same numbers whatever the chunking of the interpolation path
    ig_small = attribution.integrated_gradients(model, x, None, target, n_steps=64, batch_size=7)
    assert np.allclose(ig, ig_small, atol=1e-5)


def test_absent_leads_get_no_attribution():
    model, x = Linear(), _x(2)
    lead_mask = torch.ones(2, 12, dtype=torch.bool)
    lead_mask[0, 6:] = False
    ig = attribution.integrated_gradients(model, x, lead_mask, torch.tensor([0, 0]), n_steps=8)
    assert np.all(ig[0, 6:] == 0) and np.any(ig[0, :6] != 0) and np.any(ig[1, 6:] != 0)


def test_signature_mask_from_spans():
    spans = pd.DataFrame({"lead": ["V2", "avf", "AVF"], "start_s": [3.0, 0.0, 9.5], "end_s": [4.0, 0.25, 12.0]})
    mask = attribution.signature_mask(spans, fs=100, n_samples=1000)
    assert mask.shape == (12, 1000)
    assert mask[7].sum() == 100 and mask[7, 300] and not mask[7, 400]
    assert mask[5, :25].all() and mask[5, 950:].all() and mask[5].sum() == 75  # clipped at 10 s
    assert mask.sum() == 175
    with pytest.raises(ValueError, match="unknown lead 'V7'"):
        attribution.signature_mask(pd.DataFrame({"lead": ["V7"], "start_s": [0.0], "end_s": [1.0]}), 100, 1000)


def test_scores_of_perfect_uniform_and_masked_maps():
    mask = np.zeros((12, 1000), bool)
    mask[7, 300:400] = True
    share = 100 / 12000
    perfect = attribution.score_map(mask.astype(float), mask)
    assert perfect["pointing_hit_rate"] == 1.0 and perfect["mass_fraction"] == pytest.approx(1.0)
    assert perfect["enrichment"] == pytest.approx(1 / share) and perfect["auroc"] == pytest.approx(1.0)
    uniform = attribution.score_map(np.ones((12, 1000)), mask)
    assert uniform["mass_fraction"] == pytest.approx(share) and uniform["enrichment"] == pytest.approx(1.0)
    assert uniform["auroc"] == pytest.approx(0.5)
    wrong = np.zeros((12, 1000))
    wrong[0, 0:100] = 1.0
    assert attribution.score_map(wrong, mask, smooth_samples=4)["pointing_hit_rate"] == 0.0
    # absent leads leave the scores: the mask's share is taken over the 6 present leads only
    lead_mask = np.array([True] * 6 + [False] * 6)
    mask[0, :100] = True
    partial = attribution.score_map(np.ones((12, 1000)), mask, lead_mask)
    assert partial["mask_share"] == pytest.approx(100 / 6000)
    assert np.isnan(attribution.score_map(np.ones((12, 10)), np.ones((12, 10), bool))["auroc"])


def test_summary_bootstrap_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    rows = [{"pair": p, "method": m, "pointing_hit_rate": float(rng.random() < q), "mass_fraction": rng.random(),
             "enrichment": rng.gamma(2.0) * (3 if m == "integrated_gradients" else 1), "auroc": rng.random()}
            for p in range(40) for m, q in (("integrated_gradients", 0.7), ("random", 0.1))]
    scores = pd.DataFrame(rows)
    a = attribution.summarise_scores(scores, attribution.pair_weights(scores, 100, np.random.default_rng(1)))
    b = attribution.summarise_scores(scores, attribution.pair_weights(scores, 100, np.random.default_rng(1)))
    pd.testing.assert_frame_equal(a, b)
    assert attribution.summarise_scores(scores)["auroc_lo"].isna().all()  # no weights: no interval
    assert list(a["method"]) == ["integrated_gradients", "random"]
    for s in attribution.SCORES:
        assert (a[f"{s}_lo"] <= a[s]).all() and (a[s] <= a[f"{s}_hi"]).all()
    ig = scores[scores["method"] == "integrated_gradients"]
    assert a.loc[0, "enrichment"] == pytest.approx(ig["enrichment"].mean())


def _paired_scores(rng, n_pairs, pairs_per_patient, ig_gain):
    """Scores of IG, gradient x input and the |x| baseline per pair: IG = baseline + ig_gain + noise,
    gradient x input = baseline + noise; pairs grouped ``pairs_per_patient`` to a patient (shared offset)."""
    patient = np.arange(n_pairs) // pairs_per_patient
    offset = rng.normal(0, 0.1, size=patient.max() + 1)[patient]  # patients differ: pairs are not independent
    base = np.clip(0.6 + offset + rng.normal(0, 0.02, n_pairs), 0, 1)
    rows = []
    for p in range(n_pairs):
        for method, value in (("signal_magnitude", base[p]), ("integrated_gradients", base[p] + ig_gain + offset[p]),
                              ("gradient_x_input", base[p] + rng.normal(0, 0.01))):
            rows.append({"pair": p, "method": method, "patient_id": f"p{patient[p]}",
                         **{s: value for s in attribution.SCORES}})
    return pd.DataFrame(rows)


def test_paired_difference_to_the_signal_magnitude_baseline_resamples_patients():
    rng = np.random.default_rng(0)
    scores = _paired_scores(rng, 60, 3, ig_gain=0.08)
    w = attribution.pair_weights(scores, 500, np.random.default_rng(1))
    assert w.shape == (60, 500)
    assert (w[0::3] == w[1::3]).all() and (w[0::3] == w[2::3]).all()  # the pairs of a patient move together
    table = attribution.compare_to_baseline(scores, w).set_index(["method", "score"])
    ig, gxi = table.loc[("integrated_gradients", "auroc")], table.loc[("gradient_x_input", "auroc")]
    ig_minus_base = (scores.query("method == 'integrated_gradients'")["auroc"].to_numpy()
                     - scores.query("method == 'signal_magnitude'")["auroc"].to_numpy())
    assert ig["diff"] == pytest.approx(ig_minus_base.mean()) and ig["n_pairs"] == 60
    assert ig["baseline"] == attribution.BASELINE and ig["family_size"] == 2
    assert ig["low"] > 0 and ig["p_holm"] < 0.05  # IG beats |x| by a real margin
    assert gxi["low"] < 0 < gxi["high"]  # gradient x input is |x| plus noise: no difference
    assert ig["low"] <= ig["low_unadj"] <= ig["diff"] <= ig["high_unadj"] <= ig["high"]
    # clustering matters: the same pairs resampled one by one (each its own patient) give a narrower interval
    alone = scores.drop(columns="patient_id")
    narrow = attribution.compare_to_baseline(alone, attribution.pair_weights(alone, 500, np.random.default_rng(1)))
    narrow = narrow.set_index(["method", "score"]).loc[("integrated_gradients", "auroc")]
    assert narrow["high_unadj"] - narrow["low_unadj"] < 0.8 * (ig["high_unadj"] - ig["low_unadj"])
    # a pair whose score is undefined for one map leaves the paired difference
    scores.loc[(scores["pair"] == 0) & (scores["method"] == "signal_magnitude"), "auroc"] = np.nan
    again = attribution.compare_to_baseline(scores, w).set_index(["method", "score"])
    assert again.loc[("integrated_gradients", "auroc"), "n_pairs"] == 59
    assert again.loc[("integrated_gradients", "auroc"), "diff"] == pytest.approx(ig_minus_base[1:].mean())


def test_synthetic_check_finds_the_known_region():
    """A CNN trained on 'bump in V2 at 3-4 s' attributes there far above the random baseline, and far
    above the same CNN untrained: the scores measure what the model learned."""
    trained = saliency.synthetic_check(seed=0).set_index("method")
    assert trained["heldout_accuracy"].iloc[0] > 0.9
    ig, rnd = trained.loc["integrated_gradients"], trained.loc["random"]
    assert ig["pointing_hit_rate"] >= 0.8 > 0.2 >= rnd["pointing_hit_rate"]
    assert ig["enrichment"] > 10 * rnd["enrichment"]
    assert 0.8 < rnd["enrichment"] < 1.2 and abs(rnd["auroc"] - 0.5) < 0.05  # chance level
    assert ig["auroc"] > 0.65
    untrained = saliency.synthetic_check(seed=0, train_steps=0).set_index("method")
    assert untrained["heldout_accuracy"].iloc[0] < 0.8
    assert untrained.loc["integrated_gradients", "enrichment"] < ig["enrichment"] / 3


def test_label_for_code_and_pair_selection():
    info = {"IMI": {"diagnostic_subclass": "IMI", "diagnostic_class": "MI"},
            "ASMI": {"diagnostic_subclass": "AMI", "diagnostic_class": "MI"}, "AFIB": {}}
    assert saliency.label_for_code("IMI", ["IMI", "NORM"], info) == "IMI"
    assert saliency.label_for_code("ASMI", ["MI", "NORM"], info) == "MI"
    assert saliency.label_for_code("AFIB", ["MI"], info) is None
    records = pd.DataFrame({"record_id": ["a", "b", "c", "d"], "split": ["test", "test", "train", "test"]})
    spans = pd.DataFrame({
        "record_id": ["a", "a", "b", "c", "d", "d"],
        "code": ["IMI", "AFIB", "ASMI", "IMI", "IMI", "ASMI"],
        "lead": ["II", "I", "V2", "II", "III", "V1"],
        "start_s": [1.0, 0.0, 2.0, 1.0, 0.0, 1.0],
        "end_s": [2.0, 10.0, 3.0, 2.0, 10.0, 1.5],
    })
    cfg = saliency.SaliencyConfig(max_mask_share=0.05, max_records=10)
    pairs = saliency.select_pairs(spans, records, np.array([0, 1, 3]), ["MI", "NORM"], info, cfg, 100.0, 1000,
                                  np.random.default_rng(0))
    # AFIB has no output, c is not in the split, d/IMI covers a whole lead (share 1/12 > 0.05)
    assert list(zip(pairs["record_id"], pairs["code"], pairs["label"])) == [
        ("a", "IMI", "MI"), ("b", "ASMI", "MI"), ("d", "ASMI", "MI")]
    assert list(pairs["row"]) == [0, 1, 3]
    few = saliency.select_pairs(spans, records, np.array([0, 1, 3]), ["MI"], info,
                                saliency.SaliencyConfig(max_mask_share=0.05, max_records=2), 100.0, 1000,
                                np.random.default_rng(0))
    assert few["record_id"].nunique() == 2


def test_config_is_strict():
    cfg = config.from_dict(saliency.SaliencyConfig, {"n_steps": 16, "codes": ["IMI"]}, "saliency")
    assert cfg.n_steps == 16 and cfg.codes == ("IMI",)
    with pytest.raises(config.ConfigError, match="n_step"):
        config.from_dict(saliency.SaliencyConfig, {"n_step": 16}, "saliency")
    with pytest.raises(config.ConfigError, match="max_mask_share"):
        config.from_dict(saliency.SaliencyConfig, {"max_mask_share": 0.0}, "saliency")


def test_classifier_is_a_finetune_strategy_and_fraction():
    default = saliency.SaliencyConfig().classifier
    assert (default.strategy, default.fraction) == ("pretrained", 1.0)
    cfg = config.from_dict(saliency.SaliencyConfig, {"classifier": {"fraction": 0.25}}, "saliency")
    assert cfg.classifier == saliency.ClassifierChoice(strategy="pretrained", fraction=0.25)  # partial mapping
    with pytest.raises(config.ConfigError, match="saliency.classifier: expected a mapping"):
        config.from_dict(saliency.SaliencyConfig, {"classifier": "models/finetune/pretrained_1.pt"}, "saliency")
    with pytest.raises(config.ConfigError, match=r"unknown key.*saliency\.classifier\.strategie"):
        config.from_dict(saliency.SaliencyConfig, {"classifier": {"strategie": "scratch"}}, "saliency")
    with pytest.raises(config.ConfigError, match="fraction must be in"):
        config.from_dict(saliency.SaliencyConfig, {"classifier": {"fraction": 0.0}}, "saliency")


@pytest.fixture(scope="module")
def masked_repo(tmp_path_factory):
    """A repository root holding what the stage reads: a tiny store with signature masks at
    ``data/curated/main`` and an untrained classifier at ``models/finetune/pretrained_1.pt``."""
    from _store_builder import build_store

    from ecgstudy.models import Classifier, build_encoder
    from ecgstudy.models.checkpoint import preprocessing_spec, save_checkpoint
    from ecgstudy.data.store import Store

    root = tmp_path_factory.mktemp("repo")
    store_dir = build_store(root / "data" / "curated" / "main", n_records=80, seed=3)
    store = Store(store_dir)
    records = store.records
    spans = []
    for row in store.indices("test"):
        for code in ("IMI", "CLBBB"):
            if records.at[row, f"y_{code}"]:
                spans += [{"record_id": records.at[row, "record_id"], "code": code, "lead": lead,
                           "start_s": 2.0, "end_s": 4.0} for lead in ("II", "III", "AVF")]
    pd.DataFrame(spans).to_parquet(store_dir / "signature_masks.parquet", index=False)
    torch.manual_seed(0)
    model = Classifier(build_encoder("net1d", "tiny"), 3)
    ckpt = save_checkpoint(root / "models" / "finetune" / "pretrained_1.pt", model, config={"task": "superdiagnostic"},
                           preprocessing=preprocessing_spec(store.meta), labels=["CD", "MI", "NORM"])
    return {"root": root, "store": store_dir, "ckpt": ckpt}


def test_saliency_stage_on_a_tiny_store(masked_repo):
    store_dir, ckpt = masked_repo["store"], masked_repo["ckpt"]
    cfg = saliency.SaliencyConfig(max_records=6, n_steps=4, n_bootstrap=20, n_examples=2, validity_check=False)
    result = saliency.explain(cfg, store_dir, ckpt, seed=0)
    n_pairs = result.metrics["n_pairs"]
    assert result.metrics["classifier"] == "pretrained_1"  # the checkpoint's stem
    assert 0 < result.metrics["n_records"] <= 6 and n_pairs >= result.metrics["n_records"]
    assert len(result.scores) == 4 * n_pairs
    assert set(result.scores["label"]) <= {"CD", "MI"}  # IMI -> MI, CLBBB -> CD via label_info
    assert set(result.summary["method"]) == set(attribution.METHODS)
    share = 3 * 200 / 12000  # three leads x 2 s; fewer present leads only raise it
    assert (result.scores["mask_share"] >= share - 1e-9).all()
    assert 1 <= len(result.examples) <= 2
    ex = result.examples[0]
    assert ex.signal.shape == ex.attribution.shape == ex.mask.shape == (12, 1000)
    assert ex.mask.sum() == 600
    assert result.metrics["random"]["enrichment"] == pytest.approx(1.0, abs=0.3)
    assert result.metrics["ig_completeness_error_median"] < 0.05
    assert result.scores.loc[result.scores["method"] != "integrated_gradients", "completeness_error"].isna().all()
    assert "synthetic_check" not in result.metrics and result.validity is None
    paired = result.metrics["paired"]
    assert set(paired) == {"integrated_gradients", "gradient_x_input"} and result.metrics["baseline"]["method"] == "signal_magnitude"
    ig = paired["integrated_gradients"]["auroc"]
    mean = result.scores.pivot(index="pair", columns="method", values="auroc")
    assert ig["diff"] == pytest.approx((mean["integrated_gradients"] - mean["signal_magnitude"]).mean())
    assert ig["low"] <= ig["diff"] <= ig["high"] and ig["family_size"] == 2
    n_patients = result.metrics["n_patients"]
    assert 0 < n_patients <= result.metrics["n_records"]
    assert result.metrics["statistics"]["n_boot"] == 20
    assert not result.figures and not result.example_figures and result.metrics_file is None  # explain writes nothing
    again = saliency.explain(cfg, store_dir, ckpt, seed=0)
    pd.testing.assert_frame_equal(result.scores, again.scores)


def test_run_writes_every_output(masked_repo, monkeypatch):
    """The stage entry point resolves its inputs from the repository root, computes what explain computes
    and writes the tables, plot CSVs, figures and metrics JSON of dvc.yaml's saliency stage."""
    import json

    from ecgstudy.stages.artifacts import MissingArtifact

    root = masked_repo["root"]
    monkeypatch.setenv("ECGSTUDY_ROOT", str(root))
    section = {"max_records": 6, "n_steps": 4, "n_bootstrap": 20, "n_examples": 2}
    cfg = config.stage_config("saliency", {"seed": 0, "data": {"curated": "data/curated"}, "saliency": section})
    figures = root / "reports" / "figures" / "saliency"
    figures.mkdir(parents=True)
    for stale in ("lead_attribution.png", "saliency_example_9.png"):  # an earlier run's figures
        (figures / stale).write_bytes(b"stale")

    result = saliency.run(cfg)  # root=None: the repository root, here ECGSTUDY_ROOT

    expected = saliency.explain(cfg.saliency, masked_repo["store"], masked_repo["ckpt"], seed=0)
    pd.testing.assert_frame_equal(result.scores, expected.scores)
    pd.testing.assert_frame_equal(result.summary, expected.summary)
    assert result.metrics == expected.metrics
    tables, plots = root / "reports" / "tables" / "saliency", root / "reports" / "plots" / "saliency"
    assert sorted(p.name for p in tables.iterdir()) == [
        "methods_summary.csv", "paired_vs_baseline.csv", "per_condition.csv", "synthetic_check.csv"]
    assert sorted(p.name for p in plots.iterdir()) == ["pair_scores.csv"]
    assert result.tables == {p.stem: p for p in [*tables.iterdir(), *plots.iterdir()]}
    assert len(pd.read_csv(plots / "pair_scores.csv")) == len(result.scores)
    summary = pd.read_csv(tables / "methods_summary.csv")
    assert list(summary["method"]) == list(result.summary["method"])
    np.testing.assert_allclose(summary["enrichment"], result.summary["enrichment"])
    assert set(pd.read_csv(tables / "synthetic_check.csv")["method"]) == set(attribution.METHODS)

    assert result.figures == {"summary": figures / "saliency_scores.png"}
    assert result.figures["summary"].stat().st_size > 5_000
    assert result.example_figures == [figures / f"saliency_example_{i}.png" for i in range(1, len(result.examples) + 1)]
    assert 1 <= len(result.examples) <= 2 and all(p.stat().st_size > 10_000 for p in result.example_figures)
    assert sorted(p.name for p in figures.iterdir()) == sorted(p.name for p in [result.figures["summary"],
                                                                               *result.example_figures])  # stale gone

    assert result.metrics_file == root / "reports" / "metrics" / "saliency.json"
    written = json.loads(result.metrics_file.read_text())
    assert written.keys() == result.metrics.keys()
    assert written["classifier"] == "pretrained_1" and written["ground_truth"] is True
    assert written["n_pairs"] == result.metrics["n_pairs"] > 0
    assert written["integrated_gradients"]["enrichment"] == pytest.approx(
        result.metrics["integrated_gradients"]["enrichment"], abs=1e-4)
    assert written["synthetic_check"]["heldout_accuracy"] > 0.9
    assert written["paired"]["integrated_gradients"]["auroc"]["diff"] == pytest.approx(
        result.metrics["paired"]["integrated_gradients"]["auroc"]["diff"], abs=1e-4)
    assert len(pd.read_csv(tables / "paired_vs_baseline.csv")) == 2 * len(attribution.SCORES)

    other = config.stage_config("saliency", {"seed": 0, "saliency": {**section, "classifier": {"fraction": 0.25}}})
    with pytest.raises(MissingArtifact, match=r"models/finetune/pretrained_0.25.pt not found.*'finetune' stage"):
        saliency.run(other)
