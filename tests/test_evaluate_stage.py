"""The evaluate stage on synthetic score files with three training repeats per arm: fixed label sets,
patient-level intervals with repeats, Holm per family, claims and verdicts, the files it writes."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import _score_files as sf
from ecgstudy import config
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.stages import evaluate
from ecgstudy.stages.evaluate import claims, readme
from ecgstudy.stages.evaluate.config import Bootstrap, EvaluateConfig

SMALL = Bootstrap(n_boot=300, min_positives=3)
CFG = EvaluateConfig(pretrain=SMALL, finetune=SMALL, transfer=SMALL)


@pytest.fixture(scope="module")
def result():
    return evaluate.evaluate_scores(CFG, sf.probe_scores(), sf.finetune_scores(), sf.transfer_scores(), seed=0,
                                    latent=sf.LATENT, saliency=sf.SALIENCY)


def test_fixed_label_set_is_stated_beside_every_macro_figure(result):
    labels = result.metrics["label_sets"]["finetune"]
    assert labels["k"] == 3 and labels["labels"] == sf.LABELS[:5] and labels["n_labels"] == 5  # RARE left out
    assert labels["evaluated_splits"] == ["test", "external"]
    for table in (result.finetune, result.finetune_comparisons, result.probe):
        assert (table["n_labels"] == 5).all()
    assert set(result.finetune_per_label["label"]) == set(sf.LABELS[:5])
    assert all(v["n_labels"] == 5 for v in result.metrics["finetune"]["test"].values())
    assert all(c["n_labels"] for c in result.metrics["claims"] if c["verdict"] != claims.NOT_EVALUATED)


def test_point_is_the_mean_over_repeats_on_the_fixed_set_with_its_spread(result):
    scores = sf.finetune_scores()
    sets = scores.repeats("test")[("scratch", "0.1")]
    y = scores.y["test"]
    per_repeat = [np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(5)]) for s in sets]
    row = result.finetune.query("strategy == 'scratch' and fraction == 0.1 and split == 'test'").iloc[0]
    assert row["repeats"] == 3 and row["auroc"] == pytest.approx(np.mean(per_repeat), abs=1e-12)
    assert row["auroc_sd_repeats"] == pytest.approx(np.std(per_repeat, ddof=1), abs=1e-12)
    assert row["auroc_min_repeats"] == pytest.approx(min(per_repeat)) and row["auroc_low"] < row["auroc"] < row["auroc_high"]
    assert row["auprc_low"] < row["auprc"] < row["auprc_high"]


def test_every_pair_of_strategies_is_one_holm_family_per_metric(result):
    comps = result.finetune_comparisons
    assert len(comps) == 6 * 2 * 2 * 2  # pairs x fractions x splits x metrics
    assert (comps["family_size"] == 24).all()
    width = comps["high"] - comps["low"]
    assert (width >= comps["high_unadj"] - comps["low_unadj"] - 1e-12).all()  # adjusted intervals are wider
    assert ((comps["p_holm"] >= comps["p_value"]) | comps["p_value"].isna()).all()
    strong = comps.query("a == 'pretrained' and b == 'scratch' and fraction == 0.1 and split == 'test' and metric == 'auroc'")
    assert strong["low"].iloc[0] > 0 and strong["p_holm"].iloc[0] < 0.05
    null = comps.query("a == 'linear_probe' and b == 'random_probe' and fraction == 0.1 and metric == 'auroc'")
    assert (null["low"] < 0).all() and (null["high"] > 0).all()


def test_repeats_that_disagree_widen_the_interval():
    """Two arms on the same patients: one's three repeats are copies, the other's range from good to useless."""
    scores = sf.finetune_scores(repeats=3)
    rng = np.random.default_rng(9)
    for split in ("test", "external"):
        y = scores.y[split]
        middle = sf._scores(rng, y, 1.0)
        for r, signal in enumerate((2.5, 1.0, 0.0)):
            scores.scores[("pretrained", "1", f"r{r}", split)] = middle if signal == 1.0 else sf._scores(rng, y, signal)
            scores.scores[("scratch", "1", f"r{r}", split)] = middle
    res, _, _ = evaluate.finetune_statistics(scores, SMALL, seed=0)
    one = res.query("split == 'test' and fraction == 1.0").set_index("strategy")
    assert one.loc["scratch", "auroc_sd_repeats"] == 0 and one.loc["pretrained", "auroc_sd_repeats"] > 0.1
    width = one["auroc_high"] - one["auroc_low"]
    assert width["pretrained"] > 2 * width["scratch"]  # training variability is part of the interval


def test_an_arm_against_itself_is_exactly_zero_and_seeds_reproduce():
    scores = sf.finetune_scores()
    for split in ("test", "external"):
        for r in range(3):
            scores.scores[("scratch", "1", f"r{r}", split)] = scores.scores[("pretrained", "1", f"r{r}", split)]
    a = evaluate.finetune_statistics(scores, SMALL, seed=4)
    same = a[2].query("a == 'pretrained' and b == 'scratch' and fraction == 1.0")
    assert (same["diff"] == 0).all() and (same["low"] == 0).all() and (same["high"] == 0).all()
    b = evaluate.finetune_statistics(scores, SMALL, seed=4)
    c = evaluate.finetune_statistics(scores, SMALL, seed=5)
    pd.testing.assert_frame_equal(a[2], b[2])
    assert not a[2]["low"].equals(c[2]["low"])


def test_skipped_labels_are_counted_not_redrawn():
    scores = sf.finetune_scores()
    loose = Bootstrap(n_boot=200, min_positives=2)  # RARE (one patient with 2 positive records) enters the set
    fam = evaluate.families.finetune_family(scores, loose, seed=0)
    assert fam.label_sets["n_labels"] == 6
    assert 0.25 * 200 < fam.skipped["test"] < 0.5 * 200  # the patient is absent from ~37% of resamples


def test_transfer_compares_with_scratch_per_condition_and_on_average(result):
    comps = result.transfer_comparisons
    auroc = comps[comps["metric"] == "auroc"]
    assert set(auroc["condition"]) == {"BRUGADA", "HYPERK", "mean over conditions"}
    assert (auroc["family_size"] == len(auroc)).all()
    pooled = auroc.query("condition == 'mean over conditions' and a == 'foundation' and n_cases == 5").iloc[0]
    per = auroc.query("condition != 'mean over conditions' and a == 'foundation' and n_cases == 5")["diff"]
    assert pooled["diff"] == pytest.approx(per.mean()) and pooled["low"] > 0


def test_claims_have_a_number_interval_label_count_and_verdict(result):
    table = result.claims.set_index("claim")
    assert list(table.index) == [c.key for c in claims.CLAIMS]
    assert table.loc["label_efficiency", "verdict"] == claims.REPRODUCED
    assert table.loc["foundation_vs_scratch", "verdict"] == claims.REPRODUCED
    assert table.loc["saliency_localisation", "verdict"] == claims.INCONCLUSIVE
    ig = sf.SALIENCY["paired"]["integrated_gradients"]["auroc"]  # vs the |x| baseline, not vs 0.5
    assert table.loc["saliency_localisation", ["estimate", "low", "high", "level", "family_size"]].tolist() == [
        ig["diff"], ig["low"], ig["high"], ig["level"], ig["family_size"]]
    assert table.loc["saliency_localisation", "n_labels"] == sf.SALIENCY["n_conditions"]
    assert "60 (record, condition) pairs of 40 patients" in table.loc["saliency_localisation", "note"]
    assert table.loc["latent_structure", "estimate"] == sf.LATENT["knn_auroc_gain_over_random"]
    assert table.loc["latent_structure", "verdict"] == claims.REPRODUCED  # [0.02, 0.08] reaches min_effect 0.01
    assert table.loc["latent_structure", ["n_labels", "repeats", "level"]].tolist() == [18, 1, 0.95]
    assert "900 patients" in table.loc["latent_structure", "note"]
    assert table.loc["generative_vs_contrastive", "note"] == "same encoder"
    flipped = result.probe_comparisons.query("kind == 'between_runs' and metric == 'auroc'").iloc[0]
    assert (flipped["a"], flipped["b"]) == ("cmsc", "mae")  # the claim reads mae - cmsc: sign flipped
    assert table.loc["generative_vs_contrastive", "estimate"] == pytest.approx(-flipped["diff"])
    assert table.loc["generative_vs_contrastive", "low"] == pytest.approx(-flipped["high"])
    missing = evaluate.evaluate_scores(CFG, sf.probe_scores(), sf.finetune_scores(), sf.transfer_scores(), seed=0)
    assert (missing.claims.set_index("claim").loc[["latent_structure", "saliency_localisation"], "verdict"]
            == claims.NOT_EVALUATED).all()
    # metrics written before patient-level statistics (record bootstrap, IG vs chance) are not read as evidence
    old_latent = {k: v for k, v in sf.LATENT.items() if k != "statistics"}
    old_saliency = {k: v for k, v in sf.SALIENCY.items() if k != "paired"}
    stale = evaluate.evaluate_scores(CFG, sf.probe_scores(), sf.finetune_scores(), sf.transfer_scores(), seed=0,
                                     latent=old_latent, saliency=old_saliency)
    assert (stale.claims.set_index("claim").loc[["latent_structure", "saliency_localisation"], "verdict"]
            == claims.NOT_EVALUATED).all()


@pytest.mark.parametrize("low, high, direction, expected", [
    (0.02, 0.10, 1, claims.REPRODUCED),
    (-0.05, 0.10, 1, claims.INCONCLUSIVE),
    (-0.10, -0.02, 1, claims.NOT_REPRODUCED),  # the opposite direction
    (-0.004, 0.008, 1, claims.NOT_REPRODUCED),  # below the smallest effect of interest
    (0.001, 0.008, 1, claims.NOT_REPRODUCED),  # real but negligible
    (-0.08, -0.02, 0, claims.REPRODUCED),  # two-sided: any difference
    (-0.005, 0.006, 0, claims.NOT_REPRODUCED),
    (-0.02, 0.03, 0, claims.INCONCLUSIVE),
    (float("nan"), 0.1, 1, claims.NOT_EVALUATED),
])
def test_verdict_rule(low, high, direction, expected):
    assert claims.verdict(low, high, direction, min_effect=0.01) == expected


def test_score_keys_must_end_with_a_repeat():
    scores = sf.finetune_scores(repeats=1)
    scores.add(("pretrained", "0.5"), "test", scores.get("pretrained", "1", "r0", "test"))
    with pytest.raises(ValueError, match=r"does not end with a repeat id"):
        evaluate.finetune_statistics(scores, SMALL, seed=0)
    gap = sf.finetune_scores(repeats=1)
    gap.add(("pretrained", "1", "r2"), "test", gap.get("pretrained", "1", "r0", "test"))
    with pytest.raises(ValueError, match=r"repeats \['r0', 'r2'\] are not r0..r1"):
        gap.repeats("test")


def test_an_empty_label_set_gives_rows_without_numbers():
    strict = Bootstrap(n_boot=20, min_positives=1000)
    res, per_label, comps = evaluate.finetune_statistics(sf.finetune_scores(), strict, seed=0)
    assert (res["n_labels"] == 0).all() and "auroc" not in res and comps.empty and per_label.empty


def test_run_writes_tables_metrics_results_page_and_figures(tmp_path):
    root = tmp_path
    sf.probe_scores().save(root / "models/pretrain/probe_scores.npz")
    sf.finetune_scores().save(root / "models/finetune/scores.npz")
    sf.transfer_scores().save(root / "models/transfer/scores.npz")
    (root / "reports/metrics").mkdir(parents=True)
    (root / "reports/metrics/latent.json").write_text(json.dumps(sf.LATENT))
    cfg = config.stage_config("evaluate", {"seed": 0, "evaluate": {f: {"n_boot": 50, "min_positives": 3}
                                                        for f in ("pretrain", "finetune", "transfer")}})
    res = evaluate.run(cfg, root=root)
    tables = root / "reports/tables/evaluate"
    assert pd.read_csv(tables / "claims.csv")["verdict"].isin(claims.VERDICTS).all()
    metrics = json.loads((root / "reports/metrics/evaluate.json").read_text())
    assert metrics["tuning"]["finetune"] == {"lr_grid": [0.001, 0.003]} and metrics["repeats"]["finetune"] == 3
    assert metrics["claims"][5]["estimate"] == 0.05  # latent claim read from latent.json
    assert metrics["claims"][6]["verdict"] == claims.NOT_EVALUATED  # no saliency.json here
    page = (root / "reports/results.md").read_text()
    assert page.startswith("# Results") and claims.markdown(metrics) in page
    assert set(res.figures) == {"probe_comparison", "label_efficiency", "transfer", "reliability"}
    assert all(p.is_file() for p in res.figures.values())
    # README block: generated from the metrics file, and a stale one is detected
    text = f"intro\n{readme.START}\nold table\n{readme.END}\nrest\n"
    fresh = readme.render(text, metrics)
    assert readme.current(fresh) == claims.markdown(metrics) and fresh.endswith("rest\n")
    metrics["claims"][0]["verdict"] = claims.NOT_REPRODUCED
    assert readme.render(fresh, metrics) != fresh
