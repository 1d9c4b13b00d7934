"""ECG augmentations on batches, every draw from an explicit :class:`torch.Generator`.

All functions take signals ``x`` of shape (B, n_leads, T) (normalised, at the store's fs) and return a new
tensor; none modifies its input. Random lead masking (RLM) also updates the bool lead mask (B, n_leads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (0 switches one off)."""

    scale: float = 0.2  # amplitude scale drawn per sample and lead from [1 - scale, 1 + scale]
    baseline: float = 0.1  # constant offset per sample and lead, std in normalised units
    noise: float = 0.05  # white gaussian noise, std in normalised units
    rlm_p: float = 0.5  # random lead masking: each present lead zeroed with this probability (ECG-FM: 0.5)

    def validate(self) -> None:
        if not 0 <= self.scale < 1:
            raise ValueError(f"scale must be in [0, 1), got {self.scale}")
        if self.baseline < 0 or self.noise < 0:
            raise ValueError("baseline and noise must be >= 0")
        if not 0 <= self.rlm_p < 1:
            raise ValueError(f"rlm_p must be in [0, 1), got {self.rlm_p}")


def random_crop(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """A window of ``length`` samples per sample of (B, L, T), start drawn uniformly -> (B, L, length)."""
    batch, _, total = x.shape
    if length > total:
        raise ValueError(f"crop of {length} samples from signals of {total}")
    starts = torch.randint(0, total - length + 1, (batch,), generator=generator)
    offsets = starts[:, None] + torch.arange(length)[None, :]  # (B, length)
    return torch.gather(x, 2, offsets[:, None, :].expand(-1, x.shape[1], -1).to(x.device))


def amplitude_scale(x: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Multiply each lead of each sample by a factor from [1 - scale, 1 + scale]."""
    factors = 1 + (2 * torch.rand(x.shape[:2], generator=generator) - 1) * scale  # (B, L)
    return x * factors.unsqueeze(-1).to(x)


def baseline_shift(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Add a constant offset (gaussian, ``std``) to each lead of each sample."""
    return x + (torch.randn(x.shape[:2], generator=generator) * std).unsqueeze(-1).to(x)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Add white gaussian noise of standard deviation ``std``."""
    return x + (torch.randn(x.shape, generator=generator) * std).to(x)


def random_lead_mask(lead_mask: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Drop each present lead with probability ``p``; every sample keeps at least one present lead.

    Parameters
    ----------
    lead_mask
        Bool (B, n_leads), True where the lead is present.

    Returns
    -------
    New bool mask (B, n_leads), a subset of the input's True entries.
    """
    keep = torch.rand(lead_mask.shape, generator=generator) >= p
    new = lead_mask & keep.to(lead_mask.device)
    empty = ~new.any(dim=1) & lead_mask.any(dim=1)
    if empty.any():
        # restore one present lead, chosen at random, where masking removed them all
        scores = torch.rand(lead_mask.shape, generator=generator).to(lead_mask.device) * lead_mask
        pick = scores.argmax(dim=1)
        new[empty, pick[empty]] = True
    return new


def augment(
    x: torch.Tensor, lead_mask: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply scale, baseline shift, noise and RLM as configured; masked leads are zeroed.

    Returns
    -------
    (signals (B, n_leads, T), lead mask (B, n_leads))
    """
    if cfg.scale:
        x = amplitude_scale(x, cfg.scale, generator)
    if cfg.baseline:
        x = baseline_shift(x, cfg.baseline, generator)
    if cfg.noise:
        x = gaussian_noise(x, cfg.noise, generator)
    if cfg.rlm_p:
        lead_mask = random_lead_mask(lead_mask, cfg.rlm_p, generator)
    return x * lead_mask.unsqueeze(-1).to(x), lead_mask
