"""Validity check of the attribution scores on a task with a known answer.

On a synthetic task whose label depends only on a bump in lead V2 between 3 and 4 s, a small CNN trained
for a few steps must put its attribution there (far above the random reference map), or the scores of
the stage would mean nothing. The signals are 12 x 1000 samples at 100 Hz (10 s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ecgstudy.data.leads import LEADS
from ecgstudy.engine.attribution import attribute_and_score, summarise_scores


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
    seed : seeds the data, the initial weights, the batches and the random reference map (the torch
        global generator is left as it was: the weights are drawn inside ``torch.random.fork_rng``).
    n_train : training records; 2 x ``n_explain`` more are held out, and their positives explained.
    train_steps, lr : Adam steps (batch 32) and learning rate (60 steps suffice on every seed tried).
    n_steps, smooth_samples : integrated-gradients steps and scoring window (samples at 100 Hz).

    Returns
    -------
    :func:`~ecgstudy.engine.attribution.summarise_scores` table (no bootstrap) plus ``heldout_accuracy``:
    integrated gradients and gradient x input must beat the random map by a wide margin for the scoring
    to be meaningful.
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
    summary = summarise_scores(scores)
    summary["heldout_accuracy"] = acc
    return summary


def validity_metrics(validity: pd.DataFrame | None) -> dict:
    """``{"synthetic_check": {...}}`` headline of :func:`synthetic_check` (empty when it did not run)."""
    if validity is None:
        return {}
    v = validity.set_index("method")
    return {"synthetic_check": {
        "heldout_accuracy": float(v["heldout_accuracy"].iloc[0]),
        **{f"{m}_{s}": float(v.at[m, s]) for m in ("integrated_gradients", "random")
           for s in ("pointing_hit_rate", "enrichment", "auroc")},
    }}
