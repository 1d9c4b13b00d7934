"""What the saliency stage produces, and the steps its two cases (scored, described) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ecgstudy.data.store import ECGDataset
from ecgstudy.engine.attribution import magnitude


@dataclass
class Example:
    """One explained (record, condition) pair, ready to draw with :func:`ecgstudy.plots.ecg.plot_saliency_ecg`.

    ``signal`` (12, T) in mV, ``attribution`` (12, T) the scored map (|integrated gradients| smoothed over
    ``smooth_s``) and ``mask`` (12, T) bool (None without ground truth), all at ``fs`` Hz.
    """

    record_id: str
    code: str
    label: str
    prob: float
    fs: float
    signal: np.ndarray
    attribution: np.ndarray
    mask: np.ndarray | None


@dataclass
class SaliencyResult:
    """What the saliency stage produces.

    Attributes
    ----------
    scores : one row per (pair, method): record_id, code, label, prob and the scores of
        :func:`~ecgstudy.engine.attribution.score_map`; without ground truth, the pair's share of
        attribution per lead (columns I ... V6) instead
    summary : :func:`~ecgstudy.engine.attribution.summarise_scores` table (one row per method, 95% bootstrap
        intervals); without ground truth, the mean lead shares per method over all pairs
    per_condition : mean scores per (method, code); without ground truth, mean lead shares per (method,
        code) with ``n_pairs``, ``prob`` and ``top_leads``
    examples : integrated-gradients overlays to draw
    validity : :func:`~ecgstudy.stages.saliency.check.synthetic_check` table, or None when switched off
    paired : :func:`~ecgstudy.engine.attribution.compare_to_baseline` table (attribution method - baseline,
        per score, patient-level intervals); None without ground truth
    metrics : flat-ish dict for reports/metrics/saliency.json
    ground_truth : whether the maps were scored against signature masks
    tables : {file stem: path} of the tables and plot CSVs written (filled by ``run``)
    figures : ``{"summary": path}`` of the summary figure written (filled by ``run``)
    example_figures : paths of the example overlays written, in example order (filled by ``run``)
    metrics_file : path of the metrics JSON written (filled by ``run``)
    """

    scores: pd.DataFrame
    summary: pd.DataFrame
    per_condition: pd.DataFrame
    examples: list[Example] = field(default_factory=list)
    validity: pd.DataFrame | None = None
    metrics: dict = field(default_factory=dict)
    ground_truth: bool = True
    tables: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    example_figures: list[Path] = field(default_factory=list)
    metrics_file: Path | None = None
    paired: pd.DataFrame | None = None

    @property
    def by_condition(self) -> pd.DataFrame:
        """The per-condition table the notebook shows (:func:`condition_table`)."""
        return condition_table(self)


def condition_table(result: SaliencyResult) -> pd.DataFrame:
    """Per-condition table shown by the notebook: scores of integrated gradients and the random map
    (ground truth), or integrated gradients' share of attribution per lead (no ground truth)."""
    table = result.per_condition
    if result.ground_truth:
        return table[table["method"].isin(["integrated_gradients", "random"])]
    return table[table["method"] == "integrated_gradients"].drop(columns="method").reset_index(drop=True)


def label_for_code(code: str, labels: list[str], label_info: dict[str, dict[str, str]]) -> str | None:
    """The classifier output that explains condition ``code``: the code itself, else its diagnostic
    subclass or class (classifiers of the aggregated tasks), else None."""
    if code in labels:
        return code
    info = label_info.get(code, {})
    for key in ("diagnostic_subclass", "diagnostic_class"):
        if info.get(key) and info[key] in labels:
            return info[key]
    return None


def model_inputs(store, pairs: pd.DataFrame, info: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The classifier's inputs for each pair (store row ``row``, output ``label``).

    Returns ``x`` (P, 12, T) float, the store's signals at its fs normalised as the checkpoint's
    preprocessing says; ``lead_mask`` (P, 12) bool; ``target`` (P,) int64, the index of each pair's
    output in ``info["labels"]``.
    """
    labels = list(info["labels"])
    dataset = ECGDataset(store, pairs["row"].to_numpy(), normalise=info["preprocessing"].get("normalise"))
    items = [dataset[i] for i in range(len(dataset))]
    x = torch.stack([it["x"] for it in items]).float()  # (P, 12, T)
    lead_mask = torch.stack([it["lead_mask"] for it in items]).bool()  # (P, 12)
    target = torch.tensor([labels.index(lab) for lab in pairs["label"]], dtype=torch.long)
    return x, lead_mask, target


def pick_examples(pairs: pd.DataFrame, scores: pd.DataFrame, n: int) -> list[int]:
    """Pair ids to draw: the most confidently detected pair of each condition, most frequent conditions first."""
    ig = scores[scores["method"] == "integrated_gradients"].set_index("pair")
    counts = pairs["code"].value_counts()
    order = sorted(counts.index, key=lambda c: (-counts[c], c))  # frequent first, ties by code
    chosen = []
    for code in order:
        ids = pairs.index[pairs["code"] == code]
        chosen.append(int(ig.loc[ids, "prob"].idxmax()))
        if len(chosen) == n:
            break
    return chosen


def make_example(store, pairs: pd.DataFrame, p: int, prob: float, ig_map: np.ndarray, smooth: int,
                 mask: np.ndarray | None) -> Example:
    """Example of pair ``p``: its stored signal (12, T) in mV at the store's fs, ``|ig_map|`` (12, T)
    smoothed over ``smooth`` samples, and its mask (12, T) bool or None."""
    return Example(pairs.at[p, "record_id"], pairs.at[p, "code"], pairs.at[p, "label"], prob, float(store.fs),
                   np.asarray(store.signals[pairs.at[p, "row"]], dtype=np.float32),
                   magnitude(ig_map, smooth).astype(np.float32), mask)
