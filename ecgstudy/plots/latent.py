"""Latent-space figures: UMAP scatters of encoder embeddings, coloured by diagnosis and by site, and the
per-label k-NN probe AUROC. Each ``plot_*`` function writes one PNG and returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ecgstudy.plots.ecg import save_figure

#: Fixed colours of the diagnostic superclasses (same colour in every figure of the study).
DIAGNOSIS_COLOURS: dict[str, str] = {
    "NORM": "#2e7d32", "MI": "#c62828", "STTC": "#f9a825", "CD": "#1565c0", "HYP": "#6a1b9a",
    "several": "#8d6e63", "none": "#b0b0b0",
}
_PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
            "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6"]
_TITLES = {"pretrained": "pretrained encoder", "random_init": "random-init encoder (baseline)"}


def category_colours(values: Sequence[str], fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """A stable colour per category present in ``values``.

    Categories with a ``fixed`` colour come first in ``fixed``'s order, the others follow in sorted order
    with a qualitative palette (the returned dict's order is the legend order).
    """
    fixed = dict(fixed or {})
    present = set(map(str, values))
    out = {v: c for v, c in fixed.items() if v in present}
    others = sorted(present - set(out))
    out.update({v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(others)})
    return out


def plot_umap(coords: pd.DataFrame, path: str | Path, *, colour_by: Sequence[str] = ("diagnosis", "site"),
              encoders: Sequence[str] | None = None, subtitles: Mapping[str, str] | None = None,
              point_size: float = 7.0, seed: int = 0) -> Path:
    """UMAP scatters: one row per colouring, one column per encoder (e.g. pretrained vs random init).

    Parameters
    ----------
    coords : one row per (encoder, record) with columns ``encoder``, ``umap_x``, ``umap_y`` and each
        ``colour_by`` column (e.g. the table of :func:`ecgstudy.stages.latent.run_latent`).
    path : PNG file written.
    colour_by : categorical columns, one figure row each.
    encoders : column order (default: order of appearance).
    subtitles : extra text under each encoder's title (e.g. its k-NN AUROC).
    point_size : marker area in points^2.
    seed : order in which points are drawn (shuffled so no category hides the others).
    """
    return save_figure(_umap_figure(coords, colour_by, encoders, subtitles, point_size, seed), path)


def _umap_figure(coords: pd.DataFrame, colour_by: Sequence[str], encoders: Sequence[str] | None,
                 subtitles: Mapping[str, str] | None, point_size: float, seed: int) -> Figure:
    missing = [c for c in ("encoder", "umap_x", "umap_y", *colour_by) if c not in coords]
    if missing:
        raise ValueError(f"UMAP table lacks column(s) {missing}; has {list(coords.columns)}")
    encoders = list(encoders or pd.unique(coords["encoder"]))
    subtitles = dict(subtitles or {})
    order = np.random.default_rng(seed).permutation(len(coords))
    shuffled = coords.iloc[order]
    fig = Figure(figsize=(4.3 * len(encoders) + 1.9, 4.0 * len(colour_by)))
    axes = fig.subplots(len(colour_by), len(encoders), squeeze=False)
    for r, column in enumerate(colour_by):
        colours = category_colours(coords[column].astype(str), DIAGNOSIS_COLOURS if column == "diagnosis" else None)
        counts = coords[coords["encoder"] == encoders[0]][column].astype(str).value_counts()
        for c, enc in enumerate(encoders):
            ax = axes[r, c]
            part = shuffled[shuffled["encoder"] == enc]
            ax.scatter(part["umap_x"], part["umap_y"], s=point_size, c=part[column].astype(str).map(colours),
                       linewidths=0, alpha=0.75, rasterized=True)
            if r == 0:
                title = _TITLES.get(enc, enc)
                ax.set_title(title + (f"\n{subtitles[enc]}" if enc in subtitles else ""), fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("UMAP 1", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"coloured by {column}\n\nUMAP 2", fontsize=9)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
        handles = [Line2D([], [], marker="o", linestyle="", markersize=6, color=colours[v],
                          label=f"{v} ({counts.get(v, 0)})") for v in colours]
        axes[r, -1].legend(handles=handles, title=column, loc="center left", bbox_to_anchor=(1.02, 0.5),
                           fontsize=8, title_fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_probe_auroc(probe: pd.DataFrame, path: str | Path, encoders: Sequence[str] | None = None) -> Path:
    """Per-label k-NN AUROC, one bar per encoder (columns ``encoder``, ``label``, ``auroc``), written to
    ``path`` (PNG); returns the path."""
    return save_figure(_probe_figure(probe, encoders), path)


def _probe_figure(probe: pd.DataFrame, encoders: Sequence[str] | None) -> Figure:
    encoders = list(encoders or pd.unique(probe["encoder"]))
    labels = list(pd.unique(probe["label"]))
    table = probe.pivot_table(index="label", columns="encoder", values="auroc").reindex(labels)
    fig = Figure(figsize=(max(5.0, 0.32 * len(labels) + 1.5), 3.4))
    ax = fig.subplots()
    width = 0.8 / len(encoders)
    colours = {"pretrained": "#c62828", "random_init": "#9e9e9e"}
    for i, enc in enumerate(encoders):
        ax.bar(np.arange(len(labels)) + (i - (len(encoders) - 1) / 2) * width, table[enc].to_numpy(float),
               width=width, label=_TITLES.get(enc, enc), color=colours.get(enc, _PALETTE[i % len(_PALETTE)]))
    ax.axhline(0.5, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    lowest = np.nanmin(table.to_numpy(float)) if np.isfinite(table.to_numpy(float)).any() else 0.5
    ax.set_ylim(min(0.4, lowest - 0.05), 1.0)
    ax.set_ylabel("k-NN probe AUROC", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(encoders))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
