"""Heads that sit on an encoder's pooled embedding (B, D)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Classifier(nn.Module):
    """Multi-label classifier: encoder -> time-average -> dropout -> linear head.

    Parameters
    ----------
    encoder
        Any encoder of :mod:`ecgstudy.models` (has ``embed`` and ``embed_dim``).
    n_labels
        Number of outputs L (one logit per label).
    dropout
        Dropout before the linear head during training.
    freeze_encoder
        Linear probe: encoder parameters get ``requires_grad=False``, the encoder runs without gradients
        and stays in eval mode (its batch-norm statistics are not updated) even when ``train()`` is called.
    """

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.0, freeze_encoder: bool = False):
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be >= 1, got {n_labels}")
        self.encoder = encoder
        self.n_labels = n_labels
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.embed_dim, n_labels)
        self.freeze_encoder = False
        if freeze_encoder:
            self.set_frozen(True)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (linear probe) or unfreeze (full fine-tune) the encoder."""
        self.freeze_encoder = frozen
        for p in self.encoder.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    @property
    def spec_dict(self) -> dict[str, Any]:
        """Plain-python description of the whole model (encoder spec + number of labels)."""
        return {"encoder": self.encoder.spec_dict, "n_labels": self.n_labels}

    def embed(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled encoder features (B, D) of signals (B, n_leads, T)."""
        if self.freeze_encoder:
            with torch.no_grad():
                return self.encoder.embed(x, lead_mask)
        return self.encoder.embed(x, lead_mask)

    def forward(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L) of signals (B, n_leads, T) with lead mask (B, n_leads)."""
        return self.head(self.dropout(self.embed(x, lead_mask)))


class ProjectionHead(nn.Module):
    """Two-layer MLP mapping embeddings (B, D) to the contrastive space (B, out_dim) (SimCLR-style)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
