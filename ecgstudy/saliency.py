"""Saliency stage: where in the ECG does a fine-tuned classifier look, and is it where the disease is?

For each held-out record with a ground-truth signature mask (the simulator's leads x time spans of each
condition it truly has), the logit of that condition is explained with integrated gradients and gradient
x input, and the maps are scored against the mask next to a random and a signal-magnitude reference (see
:mod:`ecgstudy.attribution` for the methods and scores).

A real dataset has no masks, so nothing can be scored (and nothing is: the metrics say
``ground_truth: false`` and carry no localisation score). The classifier is still explained, on a seeded
sample of the split's records reported positive for each condition, and the maps are described: the share
of attribution each lead carries, per condition (which leads the model uses for what), next to the share
of the signal magnitude (a reference that only knows where the ECG is large).

:func:`synthetic_check` shows the scoring means something: on a task whose label depends only on a bump
in lead V2 between 3 and 4 s, a small CNN trained for a few steps must put its attribution there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgstudy.attribution import (
    SCORES, attribute_and_score, completeness_error, gradient_x_input, integrated_gradients, lead_shares, magnitude,
    signature_mask, summarise_scores, target_probability,
)
from ecgstudy.plots.ecg import LEADS


@dataclass(frozen=True)
class SaliencyConfig:
    """params.yaml section ``saliency``."""

    store: str = "main"  # store folder under data.curated (signature_masks.parquet: scored; none: described per lead)
    classifier: str = "models/finetune/pretrained_1.pt"  # fine-tuned classifier explained (finetune output)
    split: str = "test"  # store split whose records are explained (never seen in training)
    max_records: int = 48  # records explained: a seeded sample of those with ground-truth masks (IG cost)
    records_per_condition: int = 8  # without masks: records reported positive explained per condition (seeded sample)
    codes: tuple[str, ...] = ()  # conditions explained; empty = every classifier label that has masks (without masks: every label)
    max_mask_share: float = 0.5  # skip diffuse signatures (e.g. AF over the whole strip): nothing to localise
    n_steps: int = 32  # integrated-gradients path steps (the metrics report the completeness error they leave)
    batch_size: int = 256  # interpolated inputs per forward/backward pass (memory vs speed)
    smooth_s: float = 0.04  # moving-average window on |attribution| before scoring: one 1 mm square
    n_bootstrap: int = 200  # resamples of (record, condition) pairs for the 95% intervals
    n_examples: int = 4  # overlay figures drawn (one per condition where possible)
    validity_check: bool = True  # also run the synthetic known-region check (a few seconds)
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        if self.n_steps < 1 or self.max_records < 1 or self.batch_size < 1 or self.records_per_condition < 1:
            raise ValueError("n_steps, max_records, records_per_condition and batch_size must be >= 1")
        if not 0.0 < self.max_mask_share <= 1.0:
            raise ValueError(f"max_mask_share must be in (0, 1], got {self.max_mask_share}")
        if self.smooth_s < 0:
            raise ValueError(f"smooth_s must be >= 0, got {self.smooth_s}")
        if self.split not in ("train", "val", "test", "external"):
            raise ValueError(f"unknown split {self.split!r}; valid: train, val, test, external")


# --------------------------------------------------------------------------------------------------
# Validity check on a task with a known answer
# --------------------------------------------------------------------------------------------------
class ToyClassifier(nn.Module):
    """A small 1-D CNN with the classifier interface: ``forward(x (B, 12, T), lead_mask) -> logits (B, L)``.

    Two convolutions, then max and mean pooling over time (the mean gives every time step a gradient
    early in training, the max lets a local detector decide).
    """

    def __init__(self, n_labels: int = 1, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(12, width, 9, stride=2, padding=4), nn.ReLU(), nn.Conv1d(width, width, 9, padding=4), nn.ReLU()
        )
        self.head = nn.Linear(2 * width, n_labels)

    def forward(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        if lead_mask is not None:
            x = x * lead_mask.unsqueeze(-1).to(x.dtype)
        h = self.features(x)  # (B, width, T / 2)
        return self.head(torch.cat([h.amax(dim=-1), h.mean(dim=-1)], dim=1))  # (B, L): max + mean pooling


def synthetic_bump_task(n: int, rng: np.random.Generator, fs: float = 100.0, n_samples: int = 1000,
                        lead: str = "V2", window_s: tuple[float, float] = (3.0, 4.0)):
    """Synthetic task whose label is decided only by a bump in one lead within a known window.

    Every record is periodic "beats" (sharp spikes every 0.8 s in all leads, random phase, amplitude
    0.3-1.0 per lead) plus noise (sd 0.15); positives (about half) also get a smooth bump (amplitude 1.0,
    sd 0.1 s) in ``lead`` centred at a random time inside ``window_s``.

    Returns
    -------
    x : float32 (n, 12, n_samples) at ``fs`` Hz; y : float32 (n,); masks : bool (n, 12, n_samples), the
    bump's extent (centre +- 2 sd) for positives, all False for negatives.
    """
    t = np.arange(n_samples) / fs
    x = 0.15 * rng.standard_normal((n, 12, n_samples))
    for i in range(n):
        phase = rng.uniform(0, 0.8)
        beats = np.exp(-0.5 * (((t - phase) % 0.8 - 0.4) / 0.015) ** 2)
        x[i] += rng.uniform(0.3, 1.0, size=(12, 1)) * beats
    y = (rng.random(n) < 0.5).astype(np.float32)
    li = LEADS.index(lead)
    a, b = window_s
    masks = np.zeros((n, 12, n_samples), bool)
    for i in np.flatnonzero(y):
        centre = rng.uniform(a + 0.2, b - 0.2)
        x[i, li] += 1.0 * np.exp(-0.5 * ((t - centre) / 0.1) ** 2)
        masks[i, li] = np.abs(t - centre) <= 0.2
    return x.astype(np.float32), y, masks


def synthetic_check(seed: int, n_train: int = 256, n_explain: int = 24, train_steps: int = 60, lr: float = 1e-2,
                    n_steps: int = 16, smooth_samples: int = 4) -> pd.DataFrame:
    """Train a small CNN on :func:`synthetic_bump_task` and score its attributions against the bumps.

    Parameters
    ----------
    seed : seeds the data, the initial weights, the batches and the random reference map.
    n_train : training records; 2 x ``n_explain`` more are held out, and their positives explained.
    train_steps, lr : Adam steps (batch 32) and learning rate (60 steps suffice on every seed tried).
    n_steps, smooth_samples : integrated-gradients steps and scoring window (samples).

    Returns
    -------
    :func:`summarise_scores` table (no bootstrap) plus ``heldout_accuracy``: integrated gradients and
    gradient x input must beat the random map by a wide margin for the scoring to be meaningful.
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    x, y, masks = synthetic_bump_task(n_train + n_explain * 2, rng)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ToyClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x[:n_train]), torch.from_numpy(y[:n_train])
    model.train()
    for _ in range(train_steps):
        idx = torch.randint(0, n_train, (32,), generator=gen)
        loss = nn.functional.binary_cross_entropy_with_logits(model(xt[idx])[:, 0], yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_x, held_y = x[n_train:], y[n_train:]
    with torch.no_grad():
        model.eval()
        acc = float(((model(torch.from_numpy(held_x))[:, 0] > 0).numpy() == (held_y > 0.5)).mean())
    pos = np.flatnonzero(held_y > 0.5)[:n_explain]
    xe = torch.from_numpy(held_x[pos])
    scores, _ = attribute_and_score(model, xe, None, torch.zeros(len(pos), dtype=torch.long),
                                    masks[n_train:][pos], n_steps=n_steps, batch_size=256,
                                    smooth_samples=smooth_samples, rng=rng)
    summary = summarise_scores(scores, 0, rng)
    summary["heldout_accuracy"] = acc
    return summary


# --------------------------------------------------------------------------------------------------
# The stage: a fine-tuned classifier on the store's held-out records
# --------------------------------------------------------------------------------------------------
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
    scores : one row per (pair, method): record_id, code, label, prob and the scores of :func:`score_map`;
        without ground truth, the pair's share of attribution per lead (columns I ... V6) instead
    summary : :func:`summarise_scores` table (one row per method, 95% bootstrap intervals); without ground
        truth, the mean lead shares per method over all pairs
    per_condition : mean scores per (method, code); without ground truth, mean lead shares per (method,
        code) with ``n_pairs``, ``prob`` and ``top_leads``
    examples : integrated-gradients overlays to draw
    validity : :func:`synthetic_check` table, or None when switched off
    metrics : flat-ish dict for reports/metrics/saliency.json
    ground_truth : whether the maps were scored against signature masks
    """

    scores: pd.DataFrame
    summary: pd.DataFrame
    per_condition: pd.DataFrame
    examples: list[Example] = field(default_factory=list)
    validity: pd.DataFrame | None = None
    metrics: dict = field(default_factory=dict)
    ground_truth: bool = True


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


def select_pairs(spans: pd.DataFrame, records: pd.DataFrame, split_rows: np.ndarray, labels: list[str],
                 label_info: dict, cfg: SaliencyConfig, fs: float, n_samples: int,
                 rng: np.random.Generator) -> pd.DataFrame:
    """Choose the (record, condition) pairs to explain.

    Keeps conditions the classifier has an output for (``cfg.codes`` if given), signatures covering at
    most ``cfg.max_mask_share`` of the ECG, records of the split; then draws ``cfg.max_records`` records.

    Returns
    -------
    DataFrame with row (store row index), record_id, code, label, one row per pair.
    """
    row_of = {rid: i for i, rid in enumerate(records["record_id"].astype(str))}
    in_split = set(records["record_id"].astype(str).to_numpy()[split_rows])
    spans = spans.assign(record_id=spans["record_id"].astype(str))
    spans = spans[spans["record_id"].isin(in_split)]
    if cfg.codes:
        spans = spans[spans["code"].isin(cfg.codes)]
    pairs = []
    for (rid, code), group in spans.groupby(["record_id", "code"], sort=True):
        label = label_for_code(code, labels, label_info)
        if label is None:
            continue
        share = signature_mask(group, fs, n_samples).mean()
        if 0 < share <= cfg.max_mask_share:
            pairs.append({"row": row_of[rid], "record_id": rid, "code": code, "label": label})
    table = pd.DataFrame(pairs, columns=["row", "record_id", "code", "label"])
    chosen = table["record_id"].unique()
    if len(chosen) > cfg.max_records:
        chosen = rng.choice(np.sort(chosen), size=cfg.max_records, replace=False)
    return table[table["record_id"].isin(set(chosen))].reset_index(drop=True)


def run_saliency(cfg: SaliencyConfig, store_dir: str | Path, classifier_path: str | Path,
                 seed: int) -> SaliencyResult:
    """Explain a fine-tuned classifier on a store's held-out records and score against the true masks.

    Parameters
    ----------
    cfg : saliency section of params.yaml.
    store_dir : curated store (contract 2) with ``signature_masks.parquet`` (times in the stored window);
        without it (real data) the maps are described per lead instead (:func:`explain_without_masks`).
    classifier_path : classifier checkpoint (``ecgstudy.models.checkpoint``).
    seed : study seed (record sample, random reference maps, bootstrap, synthetic check).
    """
    from ecgstudy.models.checkpoint import check_preprocessing, load_classifier
    from ecgstudy.store import ECGDataset, Store
    from ecgstudy.train import set_threads

    set_threads(cfg.num_threads)
    rng = np.random.default_rng(seed)
    store = Store(store_dir)
    spans = store.signature_masks()
    model, info = load_classifier(classifier_path)
    check_preprocessing(info["preprocessing"], store.meta, str(classifier_path))
    if spans is None:
        return explain_without_masks(cfg, store, model, info, Path(classifier_path).stem, rng, seed)
    spans = spans.astype({"record_id": str})
    labels = list(info["labels"])
    fs, n_samples = float(store.fs), int(store.n_samples)
    pairs = select_pairs(spans, store.records, store.indices(cfg.split), labels,
                         store.meta.get("label_info", {}), cfg, fs, n_samples, rng)
    if pairs.empty:
        raise ValueError(f"{store.path}: no signature masks in split {cfg.split!r} match the classifier's "
                         f"labels {labels} (codes filter: {list(cfg.codes) or 'none'})")
    dataset = ECGDataset(store, pairs["row"].to_numpy(), normalise=info["preprocessing"].get("normalise"))
    items = [dataset[i] for i in range(len(dataset))]
    x = torch.stack([it["x"] for it in items]).float()  # (P, 12, T)
    lead_mask = torch.stack([it["lead_mask"] for it in items]).bool()  # (P, 12)
    target = torch.tensor([labels.index(lab) for lab in pairs["label"]], dtype=torch.long)
    by_pair = spans.groupby(["record_id", "code"])
    masks = np.stack([signature_mask(by_pair.get_group((r, c)), fs, n_samples)
                      for r, c in pairs[["record_id", "code"]].itertuples(index=False)])
    smooth = max(1, int(round(cfg.smooth_s * fs)))
    scores, maps = attribute_and_score(model, x, lead_mask, target, masks, n_steps=cfg.n_steps,
                                       batch_size=cfg.batch_size, smooth_samples=smooth, rng=rng)
    scores = scores.merge(pairs[["record_id", "code", "label"]], left_on="pair", right_index=True)
    summary = summarise_scores(scores, cfg.n_bootstrap, rng)
    per_condition = (scores.groupby(["method", "code"])[list(SCORES) + ["prob"]].mean()
                     .join(scores.groupby(["method", "code"]).size().rename("n_pairs")).reset_index())
    examples = _pick_examples(pairs, scores, cfg.n_examples)
    drawn = [Example(pairs.at[p, "record_id"], pairs.at[p, "code"], pairs.at[p, "label"],
                     float(scores.loc[(scores["pair"] == p), "prob"].iloc[0]), fs,
                     np.asarray(store.signals[pairs.at[p, "row"]], dtype=np.float32),
                     magnitude(maps["integrated_gradients"][p], smooth).astype(np.float32), masks[p])
             for p in examples]
    validity = synthetic_check(seed) if cfg.validity_check else None
    metrics = _metrics(summary, scores, validity, pairs, Path(classifier_path).stem)
    return SaliencyResult(scores, summary, per_condition, drawn, validity, metrics)


def _pick_examples(pairs: pd.DataFrame, scores: pd.DataFrame, n: int) -> list[int]:
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


def _metrics(summary: pd.DataFrame, scores: pd.DataFrame, validity: pd.DataFrame | None, pairs: pd.DataFrame,
             classifier: str) -> dict:
    """Headline numbers: per method mean and 95% interval of each score, plus the validity check."""
    out: dict = {"ground_truth": True, "classifier": classifier, "n_pairs": int(len(pairs)),
                 "n_records": int(pairs["record_id"].nunique()),
                 "n_conditions": int(pairs["code"].nunique()),
                 "ig_completeness_error_median": float(scores.loc[scores["method"] == "integrated_gradients",
                                                                   "completeness_error"].median())}
    for row in summary.to_dict("records"):
        out[row["method"]] = {f"{s}{suffix}": row[f"{s}{suffix}"] for s in SCORES for suffix in ("", "_lo", "_hi")}
    out.update(_validity_metrics(validity))
    return out


def _validity_metrics(validity: pd.DataFrame | None) -> dict:
    """``{"synthetic_check": {...}}`` headline of the synthetic check (empty when it did not run)."""
    if validity is None:
        return {}
    v = validity.set_index("method")
    return {"synthetic_check": {
        "heldout_accuracy": float(v["heldout_accuracy"].iloc[0]),
        **{f"{m}_{s}": float(v.at[m, s]) for m in ("integrated_gradients", "random")
           for s in ("pointing_hit_rate", "enrichment", "auroc")},
    }}


# --------------------------------------------------------------------------------------------------
# Without ground truth: explain and describe (real data)
# --------------------------------------------------------------------------------------------------
def select_positive_pairs(records: pd.DataFrame, targets: dict[str, np.ndarray], split_rows: np.ndarray,
                          labels: list[str], label_info: dict, cfg: SaliencyConfig,
                          rng: np.random.Generator) -> pd.DataFrame:
    """Choose the (record, condition) pairs to explain when there are no masks.

    Parameters
    ----------
    records : the store's records (``record_id``, ``y_<CODE>`` columns).
    targets : {classifier label: 0/1 target (N,)} of every store row (the classifier's label task).
    split_rows : store rows of the explained split.
    labels : the classifier's outputs.
    label_info : the store's ``meta["label_info"]`` (maps a code to a (sub)class output).
    cfg : ``codes`` (default every output) and ``records_per_condition``.
    rng : draws the records of each condition (conditions in order, each from its sorted positives).

    Returns
    -------
    DataFrame with row, record_id, code, label: for each condition with a positive record in the split,
    up to ``records_per_condition`` of them. A condition is an output itself (its target) or a store code
    explained through the output :func:`label_for_code` gives (its ``y_`` column).
    """
    codes = list(cfg.codes) or list(labels)
    rows = np.asarray(split_rows)
    pairs, unusable = [], []
    for code in codes:
        if code in targets:
            label, positive = code, targets[code][rows] > 0.5
        else:
            label = label_for_code(code, labels, label_info)
            if label is None or f"y_{code}" not in records.columns:
                unusable.append(code)
                continue
            positive = records[f"y_{code}"].to_numpy()[rows] == 1
        chosen = rows[positive]
        if len(chosen) > cfg.records_per_condition:
            chosen = np.sort(rng.choice(chosen, size=cfg.records_per_condition, replace=False))
        pairs += [{"row": int(r), "record_id": str(records.at[int(r), "record_id"]), "code": code, "label": label}
                  for r in chosen]
    if unusable and cfg.codes:
        raise ValueError(f"saliency.codes {unusable}: neither a classifier output nor a store code mapped to one "
                         f"(outputs: {labels})")
    return pd.DataFrame(pairs, columns=["row", "record_id", "code", "label"])


def explain_without_masks(cfg: SaliencyConfig, store, model: nn.Module, info: dict, classifier: str,
                          rng: np.random.Generator, seed: int) -> SaliencyResult:
    """The stage on a store without signature masks: explain, describe per lead, score nothing.

    Integrated gradients and gradient x input of each pair's output logit (:func:`select_positive_pairs`),
    then each map's share of |attribution| per lead (:func:`ecgstudy.attribution.lead_shares`), next to the
    signal magnitude's share (with per-lead z-scored inputs it is about 1/12 per present lead).
    """
    from ecgstudy.labels import task_labels
    from ecgstudy.store import ECGDataset

    labels = list(info["labels"])
    task = task_labels(store, info.get("config", {}).get("task", "all"), min_positives=0)
    targets = {name: task.y[:, j] for j, name in enumerate(task.names) if name in labels}
    pairs = select_positive_pairs(store.records, targets, store.indices(cfg.split), labels,
                                  store.meta.get("label_info", {}), cfg, rng)
    if pairs.empty:
        raise ValueError(f"{store.path}: no record of split {cfg.split!r} is positive for any of the classifier's "
                         f"outputs {labels} (codes filter: {list(cfg.codes) or 'none'})")
    fs = float(store.fs)
    dataset = ECGDataset(store, pairs["row"].to_numpy(), normalise=info["preprocessing"].get("normalise"))
    items = [dataset[i] for i in range(len(dataset))]
    x = torch.stack([it["x"] for it in items]).float()  # (P, 12, T)
    lead_mask = torch.stack([it["lead_mask"] for it in items]).bool()  # (P, 12)
    target = torch.tensor([labels.index(lab) for lab in pairs["label"]], dtype=torch.long)
    prob, gap = target_probability(model, x, lead_mask, target)
    maps = {  # no random reference: its lead shares are 1/12 by construction
        "integrated_gradients": integrated_gradients(model, x, lead_mask, target, cfg.n_steps, cfg.batch_size),
        "gradient_x_input": gradient_x_input(model, x, lead_mask, target, cfg.batch_size),
        "signal_magnitude": np.abs(x.numpy()).astype(np.float32),
    }
    completeness = completeness_error(maps["integrated_gradients"], gap)
    n, k = len(pairs), len(maps)  # one row per (method, pair), integrated gradients first
    scores = pd.DataFrame({"pair": np.tile(np.arange(n), k), "method": np.repeat(list(maps), n),
                           "prob": np.tile(prob, k), "completeness_error": np.r_[completeness, np.full(n * (k - 1), np.nan)]})
    scores[list(LEADS)] = np.concatenate([lead_shares(arr, lead_mask.numpy()) for arr in maps.values()])
    scores = scores.merge(pairs[["record_id", "code", "label"]], left_on="pair", right_index=True)
    grouped = scores.groupby(["method", "code", "label"], sort=False)
    per_condition = grouped[[*LEADS, "prob"]].mean().join(grouped.size().rename("n_pairs")).reset_index()
    lead_cols = per_condition[list(LEADS)].to_numpy(dtype=float)
    per_condition["top_leads"] = [", ".join(LEADS[j] for j in np.argsort(-row, kind="stable")[:3]) for row in lead_cols]
    summary = scores.groupby("method", sort=False)[list(LEADS)].mean().reset_index()
    smooth = max(1, int(round(cfg.smooth_s * fs)))
    drawn = [Example(pairs.at[p, "record_id"], pairs.at[p, "code"], pairs.at[p, "label"], float(prob[p]), fs,
                     np.asarray(store.signals[pairs.at[p, "row"]], dtype=np.float32),
                     magnitude(maps["integrated_gradients"][p], smooth).astype(np.float32), None)
             for p in _pick_examples(pairs, scores, cfg.n_examples)]
    validity = synthetic_check(seed) if cfg.validity_check else None
    ig = per_condition[per_condition["method"] == "integrated_gradients"]
    metrics = {
        "ground_truth": False,
        "note": "no signature masks in the store: attribution is described per lead, not scored",
        "classifier": classifier, "n_pairs": int(len(pairs)), "n_records": int(pairs["record_id"].nunique()),
        "n_conditions": int(pairs["code"].nunique()),
        "ig_completeness_error_median": float(np.median(completeness)),
        **{f"lead_share_{row['method']}": {lead: row[lead] for lead in LEADS} for row in summary.to_dict("records")},
        "top_leads_integrated_gradients": dict(zip(ig["code"], ig["top_leads"])),
        **_validity_metrics(validity),
    }
    return SaliencyResult(scores, summary, per_condition, drawn, validity, metrics, ground_truth=False)


def condition_table(result: SaliencyResult) -> pd.DataFrame:
    """Per-condition table shown by the notebook: scores of integrated gradients and the random map
    (ground truth), or integrated gradients' share of attribution per lead (no ground truth)."""
    table = result.per_condition
    if result.ground_truth:
        return table[table["method"].isin(["integrated_gradients", "random"])]
    return table[table["method"] == "integrated_gradients"].drop(columns="method").reset_index(drop=True)


def write_tables(result: SaliencyResult, tables_dir: str | Path, plots_dir: str | Path) -> None:
    """Write the report tables (method summary, per-condition scores, synthetic check) and, for
    ``dvc plots``, the per-pair scores (one row per record, condition and method). Without ground truth:
    the per-lead attribution shares per condition and per method, and per pair for ``dvc plots``."""
    tables_dir, plots_dir = Path(tables_dir), Path(plots_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    _write_validity(result, tables_dir)
    if not result.ground_truth:
        result.per_condition.to_csv(tables_dir / "lead_attribution.csv", index=False)
        result.summary.to_csv(tables_dir / "lead_attribution_by_method.csv", index=False)
        result.scores.to_csv(plots_dir / "pair_lead_attribution.csv", index=False)
        return
    result.summary.to_csv(tables_dir / "methods_summary.csv", index=False)
    per = result.per_condition.pivot_table(index="code", columns="method", values=["enrichment", "pointing_hit_rate"])
    per.columns = [f"{score}_{method}" for score, method in per.columns]
    counts = result.per_condition.groupby("code")["n_pairs"].max()
    per.insert(0, "n_pairs", counts)
    keep = [c for c in per.columns if c == "n_pairs" or c.endswith(("integrated_gradients", "random"))]
    per[keep].reset_index().to_csv(tables_dir / "per_condition.csv", index=False)
    result.scores.to_csv(plots_dir / "pair_scores.csv", index=False)


def _write_validity(result: SaliencyResult, tables_dir: Path) -> None:
    if result.validity is not None:
        result.validity.drop(columns=[c for c in result.validity if c.endswith(("_lo", "_hi"))]).to_csv(
            tables_dir / "synthetic_check.csv", index=False)


def draw_summary(result: SaliencyResult, figures_dir: str | Path) -> Path:
    """The stage's summary figure: localisation scores per method (``saliency_scores.png``, ground truth)
    or integrated gradients' share of attribution per lead and condition (``lead_attribution.png``)."""
    from ecgstudy.plots.ecg import plot_lead_attribution, plot_saliency_scores

    figures_dir = Path(figures_dir)
    name, stale = ("saliency_scores", "lead_attribution") if result.ground_truth else ("lead_attribution", "saliency_scores")
    (figures_dir / f"{stale}.png").unlink(missing_ok=True)  # the other case's figure of an earlier run
    if result.ground_truth:
        return plot_saliency_scores(result.summary, figures_dir / f"{name}.png")
    return plot_lead_attribution(condition_table(result), figures_dir / f"{name}.png",
                                 title="Share of |integrated gradients| per lead (rows sum to 1)")


def draw_examples(result: SaliencyResult, figures_dir: str | Path, method: str = "|integrated gradients|") -> list[Path]:
    """Draw each example as ``saliency_example_<i>.png`` (stale examples of earlier runs are removed)."""
    from ecgstudy.plots.ecg import plot_saliency_ecg

    figures_dir = Path(figures_dir)
    for old in figures_dir.glob("saliency_example_*.png"):
        old.unlink()
    paths = []
    for i, ex in enumerate(result.examples, start=1):
        output = ex.code if ex.label == ex.code else f"{ex.code} via output {ex.label}"
        title = f"record {ex.record_id}: {output} (p = {ex.prob:.2f}), {method}"
        paths.append(plot_saliency_ecg(ex.signal, ex.fs, ex.attribution, ex.mask,
                                       figures_dir / f"saliency_example_{i}.png", title=title))
    return paths
