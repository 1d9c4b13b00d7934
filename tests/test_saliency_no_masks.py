"""The saliency stage on a store without ground truth (real data): explained and described, never scored."""

import numpy as np
import pandas as pd
import pytest
import torch
from _store_builder import build_store

from ecgstudy.engine import attribution
from ecgstudy.stages import saliency
from ecgstudy.models import Classifier, build_encoder
from ecgstudy.models.checkpoint import preprocessing_spec, save_checkpoint
from ecgstudy.plots.ecg import LEADS
from ecgstudy.data.store import Store

pytestmark = pytest.mark.usefixtures("torch_one_thread")
LOCALISATION = {"pointing_hit_rate", "mass_fraction", "enrichment", "auroc", "random"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sal")  # a repository root: the store and classifier where run looks
    store_dir = build_store(root / "data" / "curated" / "main", n_records=120, seed=4)
    assert Store(store_dir).signature_masks() is None
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "models" / "finetune" / "pretrained_1.pt",
                           Classifier(build_encoder("net1d", "tiny"), 3),
                           config={"task": "superdiagnostic"}, preprocessing=preprocessing_spec(Store(store_dir).meta),
                           labels=["CD", "MI", "NORM"])
    cfg = saliency.SaliencyConfig(records_per_condition=3, n_steps=4, n_examples=2, validity_check=False)
    return {"root": root, "store": store_dir, "ckpt": ckpt, "cfg": cfg,
            "result": saliency.explain(cfg, store_dir, ckpt, seed=0)}


def test_lead_shares():
    attr = np.zeros((3, 12, 50))
    attr[0, 7, 10:20] = -2.0  # all of it in V2 (sign ignored)
    attr[1, :, :] = 1.0
    lead_mask = np.ones((3, 12), bool)
    lead_mask[1, 6:] = False  # chest leads absent: their attribution does not count
    shares = attribution.lead_shares(attr, lead_mask)
    assert shares[0, 7] == 1.0 and shares[0].sum() == 1.0
    np.testing.assert_allclose(shares[1], [1 / 6] * 6 + [0] * 6)
    assert np.isnan(shares[2]).all()  # no attribution at all: nothing to share out


def test_no_ground_truth_no_scores(setup):
    result = setup["result"]
    assert not result.ground_truth and result.metrics["ground_truth"] is False
    flat = str(result.metrics)
    assert not any(key in flat for key in LOCALISATION)  # nothing is scored, nothing is faked
    assert not LOCALISATION & set(result.scores.columns) and not LOCALISATION & set(result.per_condition.columns)
    assert result.metrics["ig_completeness_error_median"] < 0.1


def test_pairs_are_positive_records_of_the_split_and_shares_sum_to_one(setup):
    result, store = setup["result"], Store(setup["store"])
    pairs = result.scores[result.scores["method"] == "integrated_gradients"]
    rec = store.records.set_index("record_id")
    assert set(rec.loc[pairs["record_id"], "split"]) == {"test"}
    mi = pairs[pairs["code"] == "MI"]["record_id"]
    assert len(mi) == 3 and (rec.loc[mi, "y_IMI"] == 1).all()  # MI positives: the IMI records
    norm = pairs[pairs["code"] == "NORM"]["record_id"]
    assert (rec.loc[norm, "y_NORM"] == 1).all()
    assert pairs.groupby("code").size().max() <= setup["cfg"].records_per_condition
    shares = result.scores[list(LEADS)].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-9)
    table = saliency.condition_table(result)
    np.testing.assert_allclose(table[list(LEADS)].sum(axis=1), 1.0, rtol=1e-9)
    assert set(table["code"]) == {"CD", "MI", "NORM"} and (table["n_pairs"] == 3).all()
    # records whose chest leads are missing carry no attribution there
    missing = ~store.lead_mask[rec.index.get_indexer(pairs["record_id"])]
    assert (shares[: len(pairs)][missing] == 0).all()
    again = saliency.explain(setup["cfg"], setup["store"], setup["ckpt"], seed=0)
    pd.testing.assert_frame_equal(result.scores, again.scores)


def test_run_writes_the_described_outputs(setup, tmp_path, monkeypatch):
    """run reads its inputs and writes its outputs under ``root``: the lead-share tables, the lead-attribution
    figure (an earlier scored run's figure removed), the examples and the metrics."""
    import json

    from ecgstudy import config

    root = setup["root"]
    monkeypatch.setenv("ECGSTUDY_ROOT", str(root))
    section = {"records_per_condition": 3, "n_steps": 4, "n_examples": 2, "validity_check": False}
    cfg = config.stage_config("saliency", {"seed": 0, "data": {"curated": "data/curated"}, "saliency": section})
    figures = root / "reports" / "figures" / "saliency"
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "saliency_scores.png").write_bytes(b"stale")
    result = saliency.run(cfg, root=root)
    pd.testing.assert_frame_equal(result.scores, setup["result"].scores)  # what explain computes
    tables = root / "reports" / "tables" / "saliency"
    assert sorted(p.name for p in tables.iterdir()) == ["lead_attribution.csv", "lead_attribution_by_method.csv"]
    pairs = root / "reports" / "plots" / "saliency" / "pair_lead_attribution.csv"
    assert len(pd.read_csv(pairs)) == len(result.scores) and set(result.tables) == {
        "lead_attribution", "lead_attribution_by_method", "pair_lead_attribution"}
    by_method = pd.read_csv(tables / "lead_attribution_by_method.csv")
    np.testing.assert_allclose(by_method[list(LEADS)].sum(axis=1), 1.0, rtol=1e-9)
    summary = result.figures["summary"]
    assert summary == figures / "lead_attribution.png" and summary.stat().st_size > 5_000
    assert not (figures / "saliency_scores.png").exists()
    assert all(ex.mask is None for ex in result.examples) and len(result.examples) == 2
    assert [p.name for p in result.example_figures] == ["saliency_example_1.png", "saliency_example_2.png"]
    assert all(p.stat().st_size > 10_000 for p in result.example_figures)
    written = json.loads((root / "reports" / "metrics" / "saliency.json").read_text())
    assert result.metrics_file == root / "reports" / "metrics" / "saliency.json"
    assert written["ground_truth"] is False and written["classifier"] == "pretrained_1"
    assert not any(key in json.dumps(written) for key in LOCALISATION)
    assert set(written["top_leads_integrated_gradients"]) == {"CD", "MI", "NORM"}


def test_codes_filter(setup):
    cfg = saliency.SaliencyConfig(codes=("IMI", "NORM"), records_per_condition=2, n_steps=2, validity_check=False)
    result = saliency.explain(cfg, setup["store"], setup["ckpt"], seed=1)
    pairs = result.scores[result.scores["method"] == "integrated_gradients"]
    assert set(zip(pairs["code"], pairs["label"])) == {("IMI", "MI"), ("NORM", "NORM")}  # IMI via its class output
    bad = saliency.SaliencyConfig(codes=("AFIB",), validity_check=False)  # a rhythm code: no superclass output
    with pytest.raises(ValueError, match=r"saliency.codes \['AFIB'\]"):
        saliency.explain(bad, setup["store"], setup["ckpt"], seed=0)
