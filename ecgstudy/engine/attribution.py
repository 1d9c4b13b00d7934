"""Attribution maps for ECG classifiers and their scores against ground-truth signature masks.

An attribution map has the shape of the model input, (12, T): one value per lead and sample of the
(normalised) signal at the store's fs. Methods: integrated gradients (Sundararajan et al. 2017; own
implementation: zero baseline, midpoint Riemann sum over ``n_steps`` points of the straight path from the
baseline to the input), gradient x input, and two reference maps: i.i.d. random attribution (chance) and
the absolute signal (a map that only knows where the ECG is large).

Scores per (record, condition) pair, on ``s = moving_average(|attribution|)`` over the leads present:
pointing game (is argmax(s) inside the mask; chance ~ the mask's share of the ECG), mass fraction (share of
``s`` inside the mask) and enrichment (mass fraction / mask share; chance 1), and the AUROC of ``s`` as a
detector of mask samples (chance 0.5).

Statistics over the scored (record, condition) pairs resample the pairs' *patients* (cluster bootstrap,
:func:`pair_weights`), the same draws for every method: per-method means with intervals
(:func:`summarise_scores`) and paired differences of each attribution method against the stated
baseline :data:`BASELINE`, the signal-magnitude map |x| smoothed like every map, which needs no model
(:func:`compare_to_baseline`, Holm over the methods compared).

Without ground truth (real data) a map can only be described, not scored: :func:`lead_shares` gives the
share of |attribution| each lead carries (which leads a model uses for a condition).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import uniform_filter1d
from sklearn.metrics import roc_auc_score
from torch import nn

from ecgstudy.data.leads import LEADS
from ecgstudy.engine import arms, multiplicity, resample

#: Score columns of :func:`score_map` summarised per method.
SCORES: tuple[str, ...] = ("pointing_hit_rate", "mass_fraction", "enrichment", "auroc")
#: Attribution methods and reference maps, in report order.
METHODS: tuple[str, ...] = ("integrated_gradients", "gradient_x_input", "signal_magnitude", "random")
#: Attribution methods (they read the model), compared with :data:`BASELINE`.
ATTRIBUTION_METHODS: tuple[str, ...] = ("integrated_gradients", "gradient_x_input")
#: The model-free baseline every attribution method must beat: |x| (where the ECG is large), scored exactly
#: like the attribution maps (same smoothing, same leads, same pairs).
BASELINE = "signal_magnitude"


# --------------------------------------------------------------------------------------------------
# Attribution methods
# --------------------------------------------------------------------------------------------------
def _target_logit(model: nn.Module, x: torch.Tensor, lead_mask: torch.Tensor | None,
                  target: torch.Tensor) -> torch.Tensor:
    """Logit of class ``target[i]`` for each input: (B,)."""
    logits = model(x, lead_mask)  # (B, L)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def integrated_gradients(model: nn.Module, x: torch.Tensor, lead_mask: torch.Tensor | None,
                         target: torch.Tensor, n_steps: int = 32, batch_size: int = 256) -> np.ndarray:
    """Integrated gradients of the target logits with a zero baseline.

    Parameters
    ----------
    model : classifier with ``forward(x (B, 12, T), lead_mask (B, 12) bool or None) -> logits (B, L)``;
        put in eval mode here (batch statistics would couple the interpolated inputs).
    x : model inputs of shape (B, 12, T) (normalised signals at the store's fs).
    lead_mask : (B, 12) bool, True where a lead is present, or None.
    target : (B,) int64 label index explained for each input.
    n_steps : number of points on the path (midpoint rule).
    batch_size : interpolated inputs per forward/backward pass.

    Returns
    -------
    float32 array (B, 12, T); sums over (12, T) approximate logit(x) - logit(0) (completeness).
    """
    model.eval()
    alphas = (torch.arange(n_steps, dtype=x.dtype) + 0.5) / n_steps  # (S,)
    per_chunk = max(1, batch_size // n_steps)
    out = np.empty(tuple(x.shape), dtype=np.float32)
    for lo in range(0, x.shape[0], per_chunk):
        xb = x[lo : lo + per_chunk]  # (b, 12, T)
        b = xb.shape[0]
        path = (alphas.view(1, -1, 1, 1) * xb.unsqueeze(1)).reshape(b * n_steps, *xb.shape[1:])
        path.requires_grad_(True)
        mask = None if lead_mask is None else lead_mask[lo : lo + b].repeat_interleave(n_steps, dim=0)
        tgt = target[lo : lo + b].repeat_interleave(n_steps)
        (grads,) = torch.autograd.grad(_target_logit(model, path, mask, tgt).sum(), path)
        avg = grads.view(b, n_steps, *xb.shape[1:]).mean(dim=1)  # (b, 12, T)
        out[lo : lo + b] = (xb * avg).detach().numpy()
    return out


def gradient_x_input(model: nn.Module, x: torch.Tensor, lead_mask: torch.Tensor | None,
                     target: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Gradient of the target logits times the input: float32 array (B, 12, T) (same arguments as IG)."""
    model.eval()
    out = np.empty(tuple(x.shape), dtype=np.float32)
    for lo in range(0, x.shape[0], batch_size):
        xb = x[lo : lo + batch_size].clone().requires_grad_(True)
        mask = None if lead_mask is None else lead_mask[lo : lo + batch_size]
        (grads,) = torch.autograd.grad(_target_logit(model, xb, mask, target[lo : lo + batch_size]).sum(), xb)
        out[lo : lo + xb.shape[0]] = (xb * grads).detach().numpy()
    return out


def target_probability(model: nn.Module, x: torch.Tensor, lead_mask: torch.Tensor | None,
                       target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(probability of the target (B,), logit(x) - logit(0) (B,)): the model's confidence and the gap
    integrated gradients with a zero baseline must add up to (completeness)."""
    with torch.no_grad():
        model.eval()
        logit = _target_logit(model, x, lead_mask, target).numpy()
        gap = logit - _target_logit(model, torch.zeros_like(x), lead_mask, target).numpy()
    return 1.0 / (1.0 + np.exp(-logit)), gap


def completeness_error(ig: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """|sum of each integrated-gradients map (B, 12, T) - gap| / |gap|: (B,), small when n_steps suffice."""
    return np.abs(ig.sum(axis=(1, 2)) - gap) / np.maximum(np.abs(gap), 1e-6)


def lead_shares(attribution: np.ndarray, lead_mask: np.ndarray | None = None) -> np.ndarray:
    """Share of each map's |attribution| carried by each lead: (B, 12), rows summing to 1.

    Parameters
    ----------
    attribution : (B, 12, T) maps (signed or not).
    lead_mask : (B, 12) bool, leads present; absent leads get share 0. None = all present.

    A map with no attribution at all gets a row of NaN (nothing to share out).
    """
    mass = np.abs(np.nan_to_num(np.asarray(attribution, dtype=np.float64))).sum(axis=-1)  # (B, 12)
    if lead_mask is not None:
        mass = np.where(np.asarray(lead_mask, bool), mass, 0.0)
    total = mass.sum(axis=1, keepdims=True)
    return np.divide(mass, total, out=np.full_like(mass, np.nan), where=total > 0)


def random_attribution(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Chance-level reference: i.i.d. |N(0, 1)| attribution of the given shape (float32)."""
    return np.abs(rng.standard_normal(shape)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Ground-truth masks and scores
# --------------------------------------------------------------------------------------------------
def signature_mask(spans: pd.DataFrame, fs: float, n_samples: int,
                   leads: tuple[str, ...] = LEADS) -> np.ndarray:
    """Boolean mask (12, n_samples) at ``fs`` Hz from signature spans.

    Parameters
    ----------
    spans : rows of signature_masks.parquet for one (record, condition): columns ``lead`` (standard
        name, any case: I..V6, AVR/aVR), ``start_s``, ``end_s`` (seconds from the record's start).
    fs, n_samples : the store's sampling rate (Hz) and record length (samples).
    leads : lead order of the signal array.
    """
    index = {name.upper(): i for i, name in enumerate(leads)}
    mask = np.zeros((len(leads), n_samples), dtype=bool)
    for lead, start, end in spans[["lead", "start_s", "end_s"]].itertuples(index=False):
        key = str(lead).upper()
        if key not in index:
            raise ValueError(f"signature mask names unknown lead {lead!r}; leads are {list(leads)}")
        a = max(0, int(np.floor(start * fs)))
        b = min(n_samples, int(np.ceil(end * fs)))
        mask[index[key], a:b] = True
    return mask


def magnitude(attribution: np.ndarray, smooth_samples: int = 1) -> np.ndarray:
    """|attribution| (NaN -> 0), moving-averaged over ``smooth_samples`` along the last (time) axis."""
    s = np.abs(np.nan_to_num(np.asarray(attribution, dtype=np.float64)))
    if smooth_samples > 1:
        s = uniform_filter1d(s, size=smooth_samples, axis=-1, mode="nearest")
    return s


def score_map(attribution: np.ndarray, mask: np.ndarray, lead_mask: np.ndarray | None = None,
              smooth_samples: int = 1) -> dict[str, float]:
    """Localisation scores of one attribution map against one ground-truth mask.

    Parameters
    ----------
    attribution : (12, T) attribution (signed or not; its magnitude is scored).
    mask : (12, T) bool ground-truth signature.
    lead_mask : (12,) bool, leads present (absent leads are left out of every score); None = all.
    smooth_samples : moving-average window (samples) applied to |attribution| along time.

    Returns
    -------
    dict with pointing_hit_rate (0/1), mass_fraction, mask_share, enrichment, auroc (NaN when the mask
    is empty or covers every sample scored).
    """
    s = magnitude(attribution, smooth_samples)
    keep = np.ones(s.shape[0], bool) if lead_mask is None else np.asarray(lead_mask, bool)
    s, m = s[keep], np.asarray(mask, bool)[keep]
    share = float(m.mean()) if m.size else float("nan")
    total = float(s.sum())
    mass = float(s[m].sum() / total) if total > 0 else float("nan")
    hit = float(m.flat[int(np.argmax(s))]) if total > 0 else float("nan")
    auroc = float(roc_auc_score(m.ravel(), s.ravel())) if 0 < m.sum() < m.size else float("nan")
    return {"pointing_hit_rate": hit, "mass_fraction": mass, "mask_share": share,
            "enrichment": mass / share if share > 0 else float("nan"), "auroc": auroc}


def pair_weights(scores: pd.DataFrame, n_bootstrap: int, rng: np.random.Generator | np.random.SeedSequence | int
                 ) -> np.ndarray:
    """Weights (P, B) int32 of ``n_bootstrap`` cluster-bootstrap resamples of the scored pairs' patients.

    Rows follow the sorted pair ids of ``scores``; the clusters are its ``patient_id`` column (every
    pair of a drawn patient counts once per draw), or each pair its own cluster when there is none.
    """
    pairs = np.sort(scores["pair"].unique())
    if "patient_id" in scores:
        clusters = scores.drop_duplicates("pair").set_index("pair")["patient_id"].reindex(pairs).astype(str).to_numpy()
    else:
        clusters = pairs.astype(str)
    return resample.patient_weights(clusters, n_bootstrap, rng)


def _values(scores: pd.DataFrame, method: str, pairs: np.ndarray, name: str) -> np.ndarray:
    """(P,) score ``name`` of ``method`` per pair of ``pairs`` (NaN where undefined or absent)."""
    table = scores[scores["method"] == method].set_index("pair").reindex(pairs)
    return table[name].to_numpy(dtype=float)


def summarise_scores(scores: pd.DataFrame, weights: np.ndarray | None = None, level: float = 0.95) -> pd.DataFrame:
    """Mean of each score per method with a percentile interval over resampled pairs.

    Parameters
    ----------
    scores : one row per (pair, method): columns ``pair`` (int id), ``method`` and :data:`SCORES`.
    weights : (P, B) resample weights of the sorted pair ids (:func:`pair_weights`), the same for every
        method (paired); None: no interval (nan).
    level : interval level.

    Returns
    -------
    DataFrame, one row per method: ``n_pairs``, ``mask_share`` (mean share of the ECG inside the masks:
    the pointing game's chance level), and per score ``m``: ``m``, ``m_lo``, ``m_hi``.
    """
    pairs = np.sort(scores["pair"].unique())
    present = set(scores["method"])
    rows = []
    for method in [m for m in METHODS if m in present] + sorted(present - set(METHODS)):
        table = scores[scores["method"] == method].set_index("pair").reindex(pairs)
        row: dict[str, object] = {"method": method, "n_pairs": int(len(pairs)),
                                  "mask_share": float(table["mask_share"].mean()) if "mask_share" in table else np.nan}
        for name in SCORES:
            values = table[name].to_numpy(dtype=float)  # NaN where a score is undefined (e.g. AUROC)
            row[name] = float(resample.weighted_means(values, np.ones((len(values), 1)))[0])
            boot = resample.weighted_means(values, weights) if weights is not None else np.array([np.nan])
            row[f"{name}_lo"], row[f"{name}_hi"] = multiplicity.percentile_interval(boot, level)
        rows.append(row)
    return pd.DataFrame(rows)


def compare_to_baseline(scores: pd.DataFrame, weights: np.ndarray, level: float = 0.95,
                        methods: tuple[str, ...] = ATTRIBUTION_METHODS, baseline: str = BASELINE) -> pd.DataFrame:
    """Paired differences method - ``baseline`` of every score over the same pairs and patient draws.

    Parameters
    ----------
    scores : one row per (pair, method), as for :func:`summarise_scores`.
    weights : (P, B) resample weights of the sorted pair ids (:func:`pair_weights`).
    level : family-wise level: Holm (:func:`ecgstudy.engine.arms.adjust_family`) runs over the
        ``methods`` compared, within each score.
    methods, baseline : the maps compared (those present in ``scores``).

    Returns
    -------
    One row per (method, score): ``method``, ``baseline``, ``score``, ``diff`` (mean over the pairs where
    both are defined of method - baseline), ``n_pairs`` (those pairs), ``p_value``, ``p_holm``, the
    Holm-adjusted interval ``low`` / ``high`` at ``level`` (its level), the unadjusted ``low_unadj`` /
    ``high_unadj`` at ``level``, ``family_size`` and ``n_boot_valid``.
    """
    pairs = np.sort(scores["pair"].unique())
    present = [m for m in methods if m in set(scores["method"])]
    if baseline not in set(scores["method"]) or not present:
        return pd.DataFrame()
    rows = []
    for name in SCORES:
        base = _values(scores, baseline, pairs, name)
        family, boots = [], []
        for method in present:
            d = _values(scores, method, pairs, name) - base  # NaN where either is undefined
            boot = resample.weighted_means(d, weights)
            family.append({"method": method, "baseline": baseline, "score": name,
                           "diff": float(resample.weighted_means(d, np.ones((len(d), 1)))[0]),
                           "n_pairs": int(np.isfinite(d).sum()), "p_value": multiplicity.bootstrap_p(boot),
                           "n_boot_valid": int(np.isfinite(boot).sum())})
            boots.append(boot)
        arms.adjust_family(family, boots, 1.0 - level)
        rows += family
    return pd.DataFrame(rows)


def attribute_and_score(model: nn.Module, x: torch.Tensor, lead_mask: torch.Tensor | None,
                        target: torch.Tensor, masks: np.ndarray, *, n_steps: int, batch_size: int,
                        smooth_samples: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Attribute every (input, target) pair with every method and score it against its mask.

    Parameters
    ----------
    model, x, lead_mask, target : as for :func:`integrated_gradients` (P pairs).
    masks : (P, 12, T) bool ground-truth masks.
    n_steps, batch_size : integrated-gradients settings.
    smooth_samples : scoring window (samples).
    rng : generator for the random reference maps.

    Returns
    -------
    (scores, maps): scores has one row per (pair, method) with :data:`SCORES`, ``mask_share``, the
    model's probability ``prob`` of the target and, for integrated gradients, ``completeness_error``
    (|sum of the map - (logit(x) - logit(0))| / |logit(x) - logit(0)|: too few ``n_steps`` shows here);
    maps gives each method's (P, 12, T) attribution.
    """
    prob, gap = target_probability(model, x, lead_mask, target)
    maps = {
        "integrated_gradients": integrated_gradients(model, x, lead_mask, target, n_steps, batch_size),
        "gradient_x_input": gradient_x_input(model, x, lead_mask, target, batch_size),
        "signal_magnitude": np.abs(x.numpy()).astype(np.float32),
        "random": random_attribution(tuple(x.shape), rng),
    }
    completeness = completeness_error(maps["integrated_gradients"], gap)
    lm = None if lead_mask is None else lead_mask.numpy()
    rows = []
    for method, arr in maps.items():
        for p in range(arr.shape[0]):
            sc = score_map(arr[p], masks[p], None if lm is None else lm[p], smooth_samples)
            error = float(completeness[p]) if method == "integrated_gradients" else float("nan")
            rows.append({"pair": p, "method": method, "prob": float(prob[p]), "completeness_error": error, **sc})
    return pd.DataFrame(rows), maps
