"""After a classifier is saved: thresholds chosen on validation go into its checkpoint; test operating points
and calibration are measured with them (:mod:`ecgstudy.engine.thresholds`, :mod:`ecgstudy.engine.calibration`).

The checkpoint's ``extra["thresholds"]`` holds ``rule`` (e.g. ``youden``), ``chosen_on`` (``val``), ``values``
(label -> threshold) and ``basis`` (label -> how it was chosen, or why it fell back to 0.5);
``ecgstudy predict`` turns probabilities into decisions with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ecgstudy.engine import calibration, thresholds as th
from ecgstudy.models.checkpoint import update_extra


@dataclass
class Decisions:
    """Thresholds of one classifier and what they give on its evaluation splits."""

    thresholds: pd.DataFrame  # label, threshold, basis, val_sensitivity, val_specificity
    operating: pd.DataFrame  # split + engine.thresholds.operating_points columns
    reliability: pd.DataFrame  # split + engine.calibration.reliability_table columns


def finish_classifier(
    checkpoint: str | Path,
    labels: list[str],
    val: tuple[np.ndarray, np.ndarray],
    evaluated: dict[str, tuple[np.ndarray, np.ndarray]],
    rule: str = "youden",
) -> Decisions:
    """Choose thresholds on ``val`` = (targets (N, L), probabilities (N, L)), store them in ``checkpoint``, and
    measure them on each ``evaluated`` split {name: (targets, probabilities)} (operating points, reliability)."""
    chosen = th.choose_thresholds(*val, labels, rule)
    update_extra(checkpoint, thresholds={
        "rule": rule, "chosen_on": "val",
        "values": dict(zip(chosen["label"], chosen["threshold"].astype(float))),
        "basis": dict(zip(chosen["label"], chosen["basis"])),
    })
    values = chosen["threshold"].to_numpy(float)
    operating = [th.operating_points(y, p, values, labels).assign(split=split) for split, (y, p) in evaluated.items()]
    reliability = [calibration.reliability_table(np.asarray(y), np.asarray(p), labels).assign(split=split)
                   for split, (y, p) in evaluated.items()]
    front = lambda df: df[["split", *[c for c in df.columns if c != "split"]]] if len(df.columns) else df  # noqa: E731
    return Decisions(thresholds=chosen,
                     operating=front(pd.concat(operating, ignore_index=True)) if operating else pd.DataFrame(),
                     reliability=front(pd.concat(reliability, ignore_index=True)) if reliability else pd.DataFrame())
