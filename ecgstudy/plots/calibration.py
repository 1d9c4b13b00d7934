"""Calibration figure: the reliability diagram of one classifier on one evaluation split, a few labels.

The function takes reliability bins (as :func:`ecgstudy.engine.calibration.reliability_table` returns them:
``label``, ``bin_low``, ``bin_high``, ``n``, ``mean_predicted``, ``observed``), writes one PNG and returns its
path. Figures are built with :class:`matplotlib.figure.Figure` directly (agg canvas, no pyplot state).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_DPI = 130
#: Columns the bins table must have.
BIN_COLUMNS = ("label", "bin_low", "bin_high", "n", "mean_predicted", "observed")


def reliability_diagram(bins: pd.DataFrame, ece: Mapping[str, float], path: str | Path, *, title: str = "",
                        positives: Mapping[str, int] | None = None) -> Path:
    """Observed positive fraction against mean predicted probability per bin, one line per label, with the
    diagonal of perfect calibration; below it, the records per bin (log scale).

    Parameters
    ----------
    bins
        Reliability bins of the labels to draw (:data:`BIN_COLUMNS`), in drawing order; empty bins (``n`` 0)
        are left out of the lines.
    ece
        Label -> expected calibration error, shown in the legend.
    path
        PNG to write.
    title
        The classifier and split, in words.
    positives
        Label -> positive records of the split (legend), optional.
    """
    missing = [c for c in BIN_COLUMNS if c not in bins.columns]
    if missing:
        raise ValueError(f"reliability bins lack column(s) {missing}")
    labels = list(dict.fromkeys(bins["label"]))
    if not labels:
        raise ValueError("no reliability bins to draw")
    fig = Figure(figsize=(5.2, 5.6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.1], "hspace": 0.08})
    top.plot([0, 1], [0, 1], ls="--", color="0.5", lw=0.9, label="perfect calibration")
    colours = [f"C{i}" for i in range(len(labels))]
    for i, (label, colour) in enumerate(zip(labels, colours)):
        rows = bins[(bins["label"] == label) & (bins["n"] > 0)]
        name = f"{label} (ECE {ece.get(label, float('nan')):.3f}"
        name += f", {positives[label]} positives)" if positives and label in positives else ")"
        top.plot(rows["mean_predicted"], rows["observed"], "o-", color=colour, lw=1.3, ms=4, label=name)
        all_rows = bins[bins["label"] == label]
        width = (all_rows["bin_high"] - all_rows["bin_low"]).to_numpy() / (len(labels) + 1)
        x = all_rows["bin_low"].to_numpy() + width * (i + 0.5)
        bottom.bar(x, np.maximum(all_rows["n"].to_numpy(), 0), width=width, color=colour, align="edge", alpha=0.8)
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("observed positive fraction")
    top.set_title(title, fontsize=9)
    top.legend(frameon=False, fontsize=7.5, loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_yscale("symlog", linthresh=1)
    bottom.set_ylabel("records")
    bottom.set_xlabel("mean predicted probability (equal-width bins)")
    bottom.grid(alpha=0.3, axis="y")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path
