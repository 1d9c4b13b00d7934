"""Net1D: a RegNet-style 1-D convolutional ECG encoder (the block design ECGFounder describes).

Layout, input of shape (B, n_leads, T) at any sampling rate:

- stem: convolution (kernel ``stem_kernel``, stride 2) -> batch norm -> Swish
- ``len(filters)`` stages; stage ``i`` has ``blocks[i]`` bottleneck blocks with ``filters[i]`` output
  channels; the first block of every stage halves the time axis (stride 2)
- bottleneck block (pre-activation): BN -> Swish -> 1x1 conv -> BN -> Swish -> grouped conv (kernel
  ``kernel_size``, channels per group ``groups_width``) -> BN -> Swish -> 1x1 conv -> squeeze-excitation
  (reduction ``se_reduction``), added to a shortcut that max-pools the time axis and zero-pads channels
- a final BN -> Swish, giving features of shape (B, filters[-1], ceil(T / 2 ** (1 + len(filters))))

Presets (parameter counts do not depend on the input length; see :data:`PRESETS`):

========  ====================================  ====================  ============
preset    filters                               blocks per stage      parameters
========  ====================================  ====================  ============
tiny      16, 32, 32, 80, 80, 256, 256           1 each                ~0.6 M
small     16, 32, 32, 80, 80, 256, 256           2 each                ~1.2 M
medium    32, 64, 64, 160, 160, 512, 512         2 each                ~4.1 M
base      64, 160, 160, 400, 400, 1024, 1024     2, 2, 2, 3, 3, 4, 4   ~30.6 M (ECGFounder: ~31 M)
========  ====================================  ====================  ============
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ecgstudy.models import presets


@dataclass(frozen=True)
class Net1DSpec:
    """Architecture of a :class:`Net1D` encoder."""

    filters: tuple[int, ...]  # output channels of each stage
    blocks: tuple[int, ...]  # bottleneck blocks per stage
    stem_channels: int  # channels after the stem convolution
    kernel_size: int = 16  # grouped-conv kernel (ECGFounder: 16 samples)
    stem_kernel: int = 16  # stem kernel
    groups_width: int = 16  # channels per group of the grouped conv (RegNet's group width)
    bottleneck_ratio: float = 1.0  # middle channels = ratio x output channels (ECGFounder: 1.0)
    se_reduction: int = 2  # squeeze-excitation bottleneck reduction r (ECGFounder: 2)

    def validate(self) -> None:
        if len(self.filters) != len(self.blocks) or not self.filters:
            raise ValueError(f"filters {self.filters} and blocks {self.blocks} must be non-empty and equally long")
        if min(self.filters) < 1 or min(self.blocks) < 1 or self.stem_channels < 1:
            raise ValueError("filters, blocks and stem_channels must be positive")
        if self.kernel_size < 1 or self.groups_width < 1 or self.se_reduction < 1:
            raise ValueError("kernel_size, groups_width and se_reduction must be positive")


#: Named sizes; ``base`` is ECGFounder's published configuration.
PRESETS: dict[str, Net1DSpec] = {
    "tiny": Net1DSpec(filters=(16, 32, 32, 80, 80, 256, 256), blocks=(1,) * 7, stem_channels=16),
    "small": Net1DSpec(filters=(16, 32, 32, 80, 80, 256, 256), blocks=(2,) * 7, stem_channels=16),
    "medium": Net1DSpec(filters=(32, 64, 64, 160, 160, 512, 512), blocks=(2,) * 7, stem_channels=32),
    "base": Net1DSpec(
        filters=(64, 160, 160, 400, 400, 1024, 1024), blocks=(2, 2, 2, 3, 3, 4, 4), stem_channels=64
    ),
}


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad the time axis of (B, C, T) so a conv gives ceil(T / stride) outputs."""
    length = x.shape[-1]
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return F.pad(x, (total // 2, total - total // 2))


class _SqueezeExcite(nn.Module):
    """Channel gating from the time-averaged features: (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.expand(F.silu(self.reduce(x.mean(dim=-1)))))  # (B, C)
        return x * gate.unsqueeze(-1)


class _Bottleneck(nn.Module):
    """Pre-activation bottleneck with grouped conv, SE and a max-pool / zero-pad shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, spec: Net1DSpec):
        super().__init__()
        width = spec.groups_width
        mid = max(width, int(round(c_out * spec.bottleneck_ratio / width)) * width)
        self.stride = stride
        self.kernel = spec.kernel_size
        self.c_in, self.c_out = c_in, c_out
        self.norm_in = nn.BatchNorm1d(c_in)
        self.expand = nn.Conv1d(c_in, mid, 1, bias=False)
        self.norm_mid = nn.BatchNorm1d(mid)
        self.spatial = nn.Conv1d(mid, mid, spec.kernel_size, stride=stride, groups=mid // width, bias=False)
        self.norm_out = nn.BatchNorm1d(mid)
        self.project = nn.Conv1d(mid, c_out, 1, bias=False)
        self.se = _SqueezeExcite(c_out, spec.se_reduction)
        # Shortcut: identity, or a learned 1x1 projection only when channels shrink (never in the presets).
        self.shrink = nn.Conv1d(c_in, c_out, 1, bias=False) if c_out < c_in else None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = F.max_pool1d(x, self.stride, self.stride, ceil_mode=True)
        if self.shrink is not None:
            return self.shrink(x)
        if self.c_out > self.c_in:
            extra = self.c_out - self.c_in
            x = F.pad(x, (0, 0, extra // 2, extra - extra // 2))  # zero channels on both sides
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(F.silu(self.norm_in(x)))
        h = F.silu(self.norm_mid(h))
        h = self.spatial(_same_pad(h, self.kernel, self.stride))
        h = self.project(F.silu(self.norm_out(h)))
        return self.se(h) + self._shortcut(x)


class Net1D(nn.Module):
    """RegNet-style 1-D CNN encoder for ECGs with any subset of leads.

    Parameters
    ----------
    spec
        Architecture (see :class:`Net1DSpec` and :data:`PRESETS`).
    n_leads
        Input channels (12 for the standard leads I, II, III, aVR, aVL, aVF, V1-V6).
    preset
        Name recorded in :attr:`spec_dict` so a checkpoint can rebuild the model.
    """

    arch = "net1d"

    def __init__(self, spec: Net1DSpec, n_leads: int = 12, preset: str = "custom", overrides: dict | None = None):
        super().__init__()
        spec.validate()
        self.spec = spec
        self.n_leads = n_leads
        self.preset = preset
        self.overrides = dict(overrides or {})
        self.embed_dim = spec.filters[-1]
        self.stem = nn.Conv1d(n_leads, spec.stem_channels, spec.stem_kernel, stride=2, bias=False)
        self.stem_norm = nn.BatchNorm1d(spec.stem_channels)
        blocks: list[nn.Module] = []
        c_in = spec.stem_channels
        for c_out, n_blocks in zip(spec.filters, spec.blocks):
            for b in range(n_blocks):
                blocks.append(_Bottleneck(c_in, c_out, 2 if b == 0 else 1, spec))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final_norm = nn.BatchNorm1d(c_in)

    @property
    def spec_dict(self) -> dict[str, Any]:
        """Plain-python description that :func:`ecgstudy.models.build_encoder` rebuilds from."""
        return {"arch": self.arch, "preset": self.preset, "n_leads": self.n_leads,
                "overrides": presets.plain_overrides(self.overrides)}

    @property
    def downsampling(self) -> int:
        """Input samples per output time step (2 ** (1 + number of stages))."""
        return 2 ** (1 + len(self.spec.filters))

    def forward(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Features of an ECG batch.

        Parameters
        ----------
        x
            Signals of shape (B, n_leads, T), normalised as the store's preprocessing spec says.
        lead_mask
            Bool (B, n_leads), True where the lead is present; absent leads are zeroed before the stem.

        Returns
        -------
        Features of shape (B, embed_dim, ceil(T / downsampling)).
        """
        if x.ndim != 3 or x.shape[1] != self.n_leads:
            raise ValueError(f"Net1D expects input of shape (B, {self.n_leads}, T), got {tuple(x.shape)}")
        if lead_mask is not None:
            if lead_mask.shape != x.shape[:2]:
                raise ValueError(f"lead_mask shape {tuple(lead_mask.shape)} does not match input {tuple(x.shape[:2])}")
            x = x * lead_mask.unsqueeze(-1).to(x.dtype)
        h = F.silu(self.stem_norm(self.stem(_same_pad(x, self.spec.stem_kernel, 2))))  # (B, stem, T/2)
        h = self.blocks(h)  # (B, filters[-1], T / 2**(1+stages))
        return F.silu(self.final_norm(h))

    def embed(self, x: torch.Tensor, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Time-averaged features (B, embed_dim) for probes, UMAP and heads."""
        return self.forward(x, lead_mask).mean(dim=-1)


def build(preset: str, n_leads: int = 12, **overrides: Any) -> Net1D:
    """A :class:`Net1D` from a named preset, with optional field overrides (e.g. ``kernel_size=8``)."""
    spec, clean = presets.resolve("net1d", PRESETS, preset, overrides)
    return Net1D(spec, n_leads=n_leads, preset=preset, overrides=clean)
