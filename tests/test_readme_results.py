"""README.md's results section is the table generated from the committed metrics, never a stale copy."""

import json

import pytest

from ecgstudy.paths import repo_root
from ecgstudy.stages.evaluate import claims, readme

ROOT = repo_root()


def _metrics(stage):
    path = ROOT / "reports" / "metrics" / f"{stage}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def test_readme_results_table_matches_the_metrics_files():
    text = (ROOT / "README.md").read_text()
    assert readme.current(text) == readme.block(_metrics("evaluate")), \
        "README.md's results section is stale: run `make readme` (python -m ecgstudy.stages.evaluate.readme)"
    assert readme.main(["--check"]) == 0


def test_claims_read_the_latent_and_saliency_metrics_they_cite():
    evaluate, latent, saliency = _metrics("evaluate"), _metrics("latent"), _metrics("saliency")
    if not evaluate:
        pytest.skip("reports/metrics/evaluate.json not committed yet (the README then says so, checked above)")
    by_key = {c["claim"]: c for c in evaluate["claims"]}
    assert [c.key for c in claims.CLAIMS] == list(by_key)
    if latent and latent.get("statistics"):  # patient-level statistics (older files: not evaluated)
        assert by_key["latent_structure"]["estimate"] == latent["knn_auroc_gain_over_random"]
    else:
        assert by_key["latent_structure"]["verdict"] == claims.NOT_EVALUATED
    ig = (((saliency or {}).get("paired") or {}).get("integrated_gradients") or {}).get("auroc")
    if ig:  # integrated gradients - the signal-magnitude baseline, same pairs
        assert by_key["saliency_localisation"]["estimate"] == pytest.approx(ig["diff"], abs=1e-4)
    else:
        assert by_key["saliency_localisation"]["verdict"] == claims.NOT_EVALUATED


def test_a_stale_or_hand_edited_table_is_caught(tmp_path):
    metrics = {"claims": [{"claim": "label_efficiency", "title": "Label efficiency", "paper": "ECG-FM", "finding": "x",
                           "measure": "m", "estimate": 0.02, "low": -0.01, "high": 0.05, "level": 0.99, "n_labels": 12,
                           "repeats": 3, "verdict": claims.INCONCLUSIVE, "note": ""}],
               "rule": {"min_effect": 0.01, "n_boot": 1000, "family_level": 0.95}}
    text = readme.render(f"# t\n{readme.START}\n{readme.END}\n", metrics)
    assert "+0.020 [-0.010, +0.050] (99.0%) | 12 | 3 | **inconclusive at this scale**" in text
    edited = text.replace("inconclusive at this scale**", "reproduced**")
    assert readme.current(edited) != readme.block(metrics)
    metrics["claims"][0]["n_labels"] = 11  # the metrics moved on, the README did not
    assert readme.current(text) != readme.block(metrics)
    with pytest.raises(ValueError, match="no marker"):
        readme.current("# no markers here\n")
