"""Calibration of the kept classifier, from the fine-tuning score file: the reliability diagram's bins.

The kept classifier is ``pretrained`` (the fine-tuned foundation encoder) at the largest label fraction,
repeat 0: the checkpoint the finetune stage saves (``models/finetune/pretrained_<fraction>.pt``) and the
saliency stage's default classifier; without a ``pretrained`` arm, the first strategy of the file at its
largest fraction. Its probabilities on the test split (else the first evaluation split) are binned like
the finetune stage's ``calibration.csv`` (:func:`ecgstudy.engine.calibration.reliability_table`, equal-width
bins), for the few labels with the most positives there (both classes present).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ecgstudy.engine import calibration
from ecgstudy.engine.scores import ScoreFile

#: The strategy whose classifier is drawn, when the score file has it.
KEPT_STRATEGY = "pretrained"
#: Labels drawn (the most positives on the split first).
N_LABELS = 4


@dataclass
class Reliability:
    """Reliability bins of one classifier on one split, for a few labels."""

    strategy: str
    fraction: str  # as in the score-file key (``f"{fraction:g}"``)
    split: str
    bins: pd.DataFrame  # engine.calibration.reliability_table rows of the drawn labels
    ece: dict[str, float]  # label -> expected calibration error
    positives: dict[str, int]  # label -> positive records on the split

    @property
    def title(self) -> str:
        return (f"{self.strategy.replace('_', ' ')} classifier, {float(self.fraction) * 100:g}% of training labels "
                f"(repeat 0), {self.split} split")


def kept_classifier(scores: ScoreFile) -> tuple[str, str] | None:
    """(strategy, fraction key) of the kept classifier among the file's repeat-0 models; None when it has none."""
    arms = [key[:2] for key in scores.scores if len(key) == 4 and key[2] == "r0"]
    if not arms:
        return None
    order = [s for s in scores.meta.get("strategies", []) if any(a[0] == s for a in arms)]
    order += sorted({a[0] for a in arms} - set(order))
    strategy = KEPT_STRATEGY if KEPT_STRATEGY in order else order[0]
    fraction = max((a[1] for a in arms if a[0] == strategy), key=float)
    return strategy, fraction


def kept_reliability(scores: ScoreFile, n_labels: int = N_LABELS, split: str = "test") -> Reliability | None:
    """The kept classifier's reliability bins on ``split`` (else the first split it was scored on) for the
    ``n_labels`` labels with the most positives there; None without a classifier or an evaluable label."""
    kept = kept_classifier(scores)
    if kept is None:
        return None
    strategy, fraction = kept
    groups = [key[3] for key in scores.scores if key[:3] == (strategy, fraction, "r0")]
    group = split if split in groups else groups[0]
    y, p, labels = scores.y[group], scores.get(strategy, fraction, "r0", group), scores.labels[group]
    positives = y.sum(axis=0)
    evaluable = [j for j in range(len(labels)) if 0 < positives[j] < len(y)]
    chosen = sorted(evaluable, key=lambda j: (-positives[j], j))[:n_labels]
    if not chosen:
        return None
    names = [labels[j] for j in chosen]
    bins = calibration.reliability_table(y[:, chosen], p[:, chosen], names)
    return Reliability(strategy, fraction, group, bins,
                       ece={labels[j]: calibration.ece(y[:, j], p[:, j]) for j in chosen},
                       positives={labels[j]: int(positives[j]) for j in chosen})
