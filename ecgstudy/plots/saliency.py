"""Saliency charts that are not ECG drawings: localisation scores by method, attribution share per lead.

The saliency overlays on the ECG itself are :func:`ecgstudy.plots.ecg.plot_saliency_ecg`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ecgstudy.data.leads import LEADS
from ecgstudy.plots.ecg import save_figure


def plot_saliency_scores(summary, path: str | Path,
                         metrics: Sequence[str] = ("pointing_hit_rate", "enrichment", "auroc")) -> Path:
    """Bar chart of localisation scores per attribution method (one panel per score), written to ``path``.

    Parameters
    ----------
    summary : DataFrame with one row per method, a ``method`` column, and for each score ``m`` the
        columns ``m`` (mean) and optionally ``m_lo`` / ``m_hi`` (confidence bounds).
    path : PNG file written.
    metrics : score columns to draw.
    """
    return save_figure(_scores_figure(summary, metrics), path)


def _scores_figure(summary, metrics: Sequence[str]) -> Figure:
    method_col = "method"
    labels = {"pointing_hit_rate": "pointing-game hit rate", "enrichment": "attribution mass / mask share",
              "auroc": "AUROC (attribution vs mask)", "mass_fraction": "attribution mass in mask"}
    chance = {"enrichment": 1.0, "auroc": 0.5}
    if "mask_share" in summary:  # a random point lands in the mask with probability = the mask's share
        chance["pointing_hit_rate"] = float(np.nanmean(summary["mask_share"].to_numpy(float)))
    fig = Figure(figsize=(3.2 * len(metrics), 3.0))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    methods = list(summary[method_col])
    colours = ["#9e9e9e" if m.startswith(("random", "signal")) else "#c62828" for m in methods]
    for ax, m in zip(axes.flat, metrics):
        y = summary[m].to_numpy(dtype=float)
        err = None
        if f"{m}_lo" in summary and f"{m}_hi" in summary:
            err = np.vstack([y - summary[f"{m}_lo"].to_numpy(float), summary[f"{m}_hi"].to_numpy(float) - y])
        ax.bar(range(len(methods)), y, yerr=err, color=colours, capsize=3, width=0.65)
        if m in chance:
            ax.axhline(chance[m], color="0.3", linestyle="--", linewidth=0.8)
            ax.annotate("chance", (1.0, chance[m]), xycoords=("axes fraction", "data"), xytext=(2, 0),
                        textcoords="offset points", fontsize=7, color="0.3", va="center")
        ax.set_xticks(range(len(methods)), [s.replace("_", " ") for s in methods], rotation=20, ha="right",
                      fontsize=8)
        ax.set_title(labels.get(m, m), fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_lead_attribution(table, path: str | Path, *, title: str | None = None) -> Path:
    """Heat map of attribution share per lead (columns I ... V6) and condition (rows), written to ``path``.

    Parameters
    ----------
    table : DataFrame with a ``code`` column, one column per lead in :data:`LEADS` (shares, rows summing to
        1) and optionally ``n_pairs`` (records explained, shown beside the code).
    path : PNG file written.
    title : text above the map. The colour bar marks the uniform share 1/12.
    """
    return save_figure(_lead_attribution_figure(table, title), path)


def _lead_attribution_figure(table, title: str | None) -> Figure:
    missing = [c for c in ("code", *LEADS) if c not in table]
    if missing:
        raise ValueError(f"lead attribution table lacks column(s) {missing}")
    if len(table) == 0:
        raise ValueError("lead attribution table has no rows")
    values = table[list(LEADS)].to_numpy(dtype=float)  # (conditions, 12)
    names = [f"{c} (n={int(n)})" for c, n in zip(table["code"], table["n_pairs"])] if "n_pairs" in table else list(table["code"])
    fig = Figure(figsize=(6.8, 1.2 + 0.24 * len(names)))
    ax = fig.add_axes((0.22, 0.6 / (1.2 + 0.24 * len(names)), 0.62, 1 - 1.0 / (1.2 + 0.24 * len(names))))
    top = max(float(np.nanmax(values)) if np.isfinite(values).any() else 0.0, 2.0 / len(LEADS))
    image = ax.imshow(values, cmap="magma_r", vmin=0.0, vmax=top, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(LEADS)), list(LEADS), fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=7.5)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    cax = fig.add_axes((0.86, ax.get_position().y0, 0.025, ax.get_position().height))
    bar = fig.colorbar(image, cax=cax)
    bar.ax.axhline(1.0 / len(LEADS), color="0.2", linewidth=1.0)
    bar.set_label("share of attribution (line: uniform 1/12)", fontsize=7.5)
    bar.ax.tick_params(labelsize=7)
    return fig
