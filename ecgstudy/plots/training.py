"""Training figures: pretraining loss curves and probe comparison, label-efficiency curves, rare-disease transfer comparison.

Each function takes a table (as returned by the stage functions), writes one PNG and returns its path.
Figures are built with :class:`matplotlib.figure.Figure` directly (agg canvas, no pyplot state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: Fixed colour per strategy, the same in every figure.
STRATEGY_COLOURS: dict[str, str] = {
    "pretrained": "#1565c0",
    "linear_probe": "#64b5f6",
    "scratch": "#c62828",
    "random_probe": "#9e9e9e",
    "foundation": "#1565c0",
    "foundation_probe": "#64b5f6",
}
_DPI = 130


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


#: Fixed colour per pretraining objective, the same in every figure.
OBJECTIVE_COLOURS: dict[str, str] = {
    "cmsc": "#1565c0",
    "supervised": "#2e7d32",
    "mae": "#ef6c00",
    "w2v": "#6a1b9a",
    "hybrid": "#ad1457",
}


def objective_curves(histories: dict[str, pd.DataFrame], objectives: dict[str, str], path: str | Path) -> Path:
    """Train / validation loss per epoch of every pretraining run, one panel per run (losses differ in scale).

    Parameters
    ----------
    histories
        Run name -> rows of :func:`ecgstudy.engine.train.fit` (``epoch``, ``train_loss``, optional ``val_loss``).
    objectives
        Run name -> objective name (sets the colour).
    """
    names = list(histories)
    cols = min(len(names), 3)
    rows = -(-len(names) // cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        history = histories[name]
        colour = OBJECTIVE_COLOURS.get(objectives.get(name, ""), "#424242")
        ax.plot(history["epoch"], history["train_loss"], "-", color=colour, alpha=0.5, label="train")
        if "val_loss" in history and history["val_loss"].notna().any():
            ok = history["val_loss"].notna()
            ax.plot(history.loc[ok, "epoch"], history.loc[ok, "val_loss"], "o-", ms=2.5, color=colour, label="validation")
        ax.set_title(f"{name} ({objectives.get(name, '?')})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("objective loss")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=7)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Pretraining objectives: loss per epoch")
    fig.tight_layout()
    return _save(fig, path)


def probe_comparison(table: pd.DataFrame, path: str | Path) -> Path:
    """Validation macro AUROC of a linear probe on each pretrained encoder vs its random-init twin.

    Parameters
    ----------
    table
        :func:`ecgstudy.stages.pretrain.compare.probe_comparison` rows: run, objective, encoder, auroc,
        random_auroc, diff, low, high.
    """
    fig = Figure(figsize=(1.3 * len(table) + 2.5, 3.4))
    ax = fig.subplots()
    x = np.arange(len(table))
    colours = [OBJECTIVE_COLOURS.get(o, "#424242") for o in table["objective"]]
    ax.bar(x - 0.2, table["auroc"], 0.38, color=colours, label="pretrained encoder")
    ax.bar(x + 0.2, table["random_auroc"], 0.38, color="#bdbdbd", label="same encoder, random init")
    err = np.clip(np.vstack([table["diff"] - table["low"], table["high"] - table["diff"]]), 0, None)  # a point outside its interval: no bar
    ax.errorbar(x - 0.2, table["auroc"], yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xticks(x, [f"{r}\n{e}" for r, e in zip(table["run"], table["encoder"])], fontsize=8)
    low = float(min(table["auroc"].min(), table["random_auroc"].min()))
    ax.set_ylim(max(0.0, low - 0.08), 1.0)
    ax.set_ylabel("linear probe macro AUROC (validation)")
    ax.axhline(0.5, color="black", lw=0.5, ls=":")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_title("Linear probe on frozen embeddings (error bar: Holm-adjusted interval of the gain)", fontsize=9)
    return _save(fig, path)


def label_efficiency(results: pd.DataFrame, path: str | Path, metric: str = "auroc") -> Path:
    """Macro ``metric`` vs fraction of training labels, one line per strategy with its CI band.

    Parameters
    ----------
    results
        :attr:`ecgstudy.stages.finetune.FinetuneResult.results`: strategy, fraction, split, ``metric``,
        ``metric``_low, ``metric``_high; one panel per split.
    """
    splits = list(dict.fromkeys(results["split"]))
    fig = Figure(figsize=(4.4 * len(splits), 3.6))
    axes = fig.subplots(1, len(splits), squeeze=False, sharey=True)[0]
    for ax, split in zip(axes, splits):
        part = results[results["split"] == split]
        for strategy, rows in part.groupby("strategy", sort=False):
            rows = rows.sort_values("fraction")
            colour = STRATEGY_COLOURS.get(strategy)
            ax.plot(rows["fraction"] * 100, rows[metric], "o-", color=colour, label=strategy.replace("_", " "))
            ax.fill_between(rows["fraction"] * 100, rows[f"{metric}_low"], rows[f"{metric}_high"], color=colour, alpha=0.15)
        ax.set_xscale("log")
        fractions = sorted(part["fraction"].unique())
        ax.set_xticks([f * 100 for f in fractions], [f"{f * 100:g}%" for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("training labels used (patients of the train split)")
        ax.set_title(f"{split} split")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"macro {metric.upper()} (band: bootstrap CI)")
    axes[-1].legend(frameon=False, fontsize=8)
    return _save(fig, path)


def transfer_comparison(results: pd.DataFrame, path: str | Path) -> Path:
    """Rare-disease AUROC vs number of training cases, per condition and strategy, with CI error bars.

    Parameters
    ----------
    results
        :attr:`ecgstudy.stages.transfer.TransferResult.results`: condition, n_cases, strategy, auroc,
        auroc_low, auroc_high.
    """
    conditions = list(dict.fromkeys(results["condition"]))
    strategies = list(dict.fromkeys(results["strategy"]))
    fig = Figure(figsize=(3.8 * len(conditions), 3.6))
    axes = fig.subplots(1, len(conditions), squeeze=False, sharey=True)[0]
    width = 0.8 / max(len(strategies), 1)
    for ax, condition in zip(axes, conditions):
        part = results[results["condition"] == condition]
        sizes = sorted(part["n_cases"].unique())
        for j, strategy in enumerate(strategies):
            rows = part[part["strategy"] == strategy].set_index("n_cases").reindex(sizes)
            x = np.arange(len(sizes)) + (j - (len(strategies) - 1) / 2) * width
            err = np.vstack([rows["auroc"] - rows["auroc_low"], rows["auroc_high"] - rows["auroc"]])
            ax.errorbar(x, rows["auroc"], yerr=err, fmt="o", capsize=3, color=STRATEGY_COLOURS.get(strategy),
                        label=strategy.replace("_", " "))
        ax.axhline(0.5, color="0.5", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("training cases")
        ax.set_title(condition)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("test AUROC (bars: bootstrap CI)")
    axes[-1].legend(frameon=False, fontsize=8)
    return _save(fig, path)
