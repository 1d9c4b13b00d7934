"""The reliability diagram of the kept classifier (evaluate stage): which classifier, split and labels are
drawn, that its bins and ECE are the finetune stage's calibration numbers, and the figure itself."""

import numpy as np
import pandas as pd
import pytest

import _score_files as sf
from ecgstudy.engine import calibration
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.plots.calibration import reliability_diagram
from ecgstudy.stages.evaluate.reliability import N_LABELS, kept_classifier, kept_reliability


def _without(scores: ScoreFile, strategy: str) -> ScoreFile:
    out = ScoreFile(y=scores.y, patients=scores.patients, labels=scores.labels, meta=scores.meta)
    out.scores = {k: v for k, v in scores.scores.items() if k[0] != strategy}
    return out


def test_the_kept_classifier_is_pretrained_at_the_largest_fraction_repeat_0():
    scores = sf.finetune_scores(repeats=2)
    assert kept_classifier(scores) == ("pretrained", "1")
    assert kept_classifier(_without(scores, "pretrained")) == ("scratch", "1")  # meta order of the strategies
    assert kept_classifier(ScoreFile()) is None


def test_bins_and_ece_are_the_calibration_of_the_labels_with_most_test_positives():
    scores = sf.finetune_scores(repeats=2)
    kept = kept_reliability(scores)
    y, p, labels = scores.y["test"], scores.get("pretrained", "1", "r0", "test"), scores.labels["test"]
    order = np.argsort(-y.sum(axis=0), kind="stable")[:N_LABELS]
    assert kept.split == "test" and list(kept.ece) == [labels[j] for j in order]
    assert "RARE" not in kept.ece  # 2 positives: never among the most positives
    expected = calibration.reliability_table(y[:, order], p[:, order], [labels[j] for j in order])
    pd.testing.assert_frame_equal(kept.bins, expected)
    for j in order:
        rows = expected[(expected["label"] == labels[j]) & (expected["n"] > 0)]
        gap = (rows["n"] * (rows["mean_predicted"] - rows["observed"]).abs()).sum() / rows["n"].sum()
        assert kept.ece[labels[j]] == pytest.approx(gap) and kept.positives[labels[j]] == int(y[:, j].sum())
    assert "pretrained classifier, 100% of training labels (repeat 0), test split" == kept.title
    assert kept_reliability(scores, split="external").split == "external"


def test_no_figure_without_an_evaluable_label():
    scores = sf.finetune_scores(repeats=1)
    for group in scores.y:
        scores.y[group] = np.zeros_like(scores.y[group])
    assert kept_reliability(scores) is None


def test_the_figure_is_drawn_and_refuses_bad_bins(tmp_path):
    kept = kept_reliability(sf.finetune_scores(repeats=1))
    path = reliability_diagram(kept.bins, kept.ece, tmp_path / "r.png", title=kept.title, positives=kept.positives)
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="observed"):
        reliability_diagram(kept.bins.drop(columns="observed"), kept.ece, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no reliability bins"):
        reliability_diagram(kept.bins.iloc[:0], kept.ece, tmp_path / "empty.png")
