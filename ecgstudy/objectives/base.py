"""Pretraining objectives, selectable by name (see :data:`OBJECTIVES`).

An objective is an :class:`torch.nn.Module` holding its own trainable heads (projection, predictor, ...);
``objective(encoder, batch, generator) -> (loss, logs)`` computes the loss of one batch of whole records
(``batch["x"]`` of shape (B, n_leads, T) at fs Hz, ``batch["lead_mask"]`` (B, n_leads), and ``batch["y"]``
(B, n_labels) for objectives that set ``needs_labels``). Only the encoder is kept after pretraining.

Each objective declares its ``params.yaml`` options as a frozen dataclass (``options_type``; the
``pretrain.objectives.<name>`` section), the encoder architectures it works with (``archs``; None = any),
builds itself with ``from_config(options, encoder, context)`` and registers with ``@register("name")``.

Implemented here:

- ``cmsc``: contrastive multi-segment coding (Kiyasseh et al. 2021, as used by ECG-FM). Two adjacent
  segments of the same record are positives, every other record's segment in the batch a negative;
  symmetric InfoNCE on L2-normalised projections with a temperature. Each segment is augmented
  independently (scale, baseline, noise) and passed through random lead masking (RLM), so the
  encoder must recognise a record from any subset of its leads: this is CMSC+RLM of ECG-FM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ecgstudy.models import ProjectionHead
from ecgstudy.objectives.augment import AugmentConfig, augment

#: Registered objectives by name.
OBJECTIVES: dict[str, type[Objective]] = {}


@dataclass(frozen=True)
class ObjectiveContext:
    """What an objective may need to know about the data and the shared settings besides its options."""

    fs: float  # sampling rate of the store (Hz)
    n_samples: int  # samples per record
    n_labels: int = 0  # labels available in batch["y"] (for supervised objectives)
    pos_weight: tuple[float, ...] = ()  # n_neg / n_pos per label on the pretraining records (supervised BCE)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # shared augmentations + RLM strengths


def register(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator adding an objective to :data:`OBJECTIVES` under ``name``."""

    def add(cls: type[Objective]) -> type[Objective]:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return add


class Objective(nn.Module):
    """Base class of pretraining objectives."""

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = False
    #: frozen dataclass of the objective's options (``pretrain.objectives.<name>`` in params.yaml)
    options_type: ClassVar[type]
    #: encoder architectures the objective works with (None = any encoder with ``embed``)
    archs: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def from_config(cls, options: Any, encoder: nn.Module, context: ObjectiveContext) -> Objective:
        """Build from the objective's options for ``encoder`` (which it may inspect, never own)."""
        raise NotImplementedError

    def forward(
        self, encoder: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


def build_objective(name: str, options: Any, encoder: nn.Module, context: ObjectiveContext) -> Objective:
    """Instantiate the registered objective ``name`` for ``encoder``.

    Raises ValueError for an unknown name or an encoder architecture the objective does not support.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown pretraining objective {name!r}; objectives: {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    arch = getattr(encoder, "arch", type(encoder).__name__)
    if cls.archs is not None and arch not in cls.archs:
        raise ValueError(f"objective {name!r} needs an encoder of architecture {list(cls.archs)}, got {arch!r}")
    if not isinstance(options, cls.options_type):
        raise TypeError(f"objective {name!r} takes {cls.options_type.__name__} options, got {type(options).__name__}")
    return cls.from_config(options, encoder, context)


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE between paired rows of (B, K) embeddings (row i of a and b are positives).

    Returns
    -------
    (loss: mean of the a->b and b->a cross-entropies, top-1 accuracy of finding the positive (a->b))
    """
    z_a = F.normalize(z_a.float(), dim=1)
    z_b = F.normalize(z_b.float(), dim=1)
    logits = z_a @ z_b.T / temperature  # (B, B) cosine similarities / temperature
    target = torch.arange(len(z_a), device=z_a.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    return loss, accuracy


def adjacent_segments(
    x: torch.Tensor, lead_mask: torch.Tensor, length: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two adjacent windows of ``length`` samples per record, from a random start.

    Parameters
    ----------
    x
        Signals (B, n_leads, T), T >= 2 * length.

    Returns
    -------
    (first segments (B, n_leads, length), second segments (B, n_leads, length))
    """
    batch, leads, total = x.shape
    if 2 * length > total:
        raise ValueError(f"two segments of {length} samples do not fit records of {total} samples")
    starts = torch.randint(0, total - 2 * length + 1, (batch,), generator=generator).to(x.device)
    offsets = starts[:, None] + torch.arange(2 * length, device=x.device)[None, :]  # (B, 2*length)
    pair = torch.gather(x, 2, offsets[:, None, :].expand(-1, leads, -1))
    return pair[..., :length], pair[..., length:]


@dataclass(frozen=True)
class CMSCOptions:
    """params.yaml ``pretrain.objectives.cmsc``."""

    segment_s: float = 4.0  # segment length in s (ECG-FM: 5 s; 4 s leaves room for a random start in 10 s)
    temperature: float = 0.1  # InfoNCE temperature (ECG-FM: 0.1)
    proj_hidden: int = 256  # projection head hidden units
    proj_dim: int = 128  # projection output size (0 = contrast pooled embeddings directly, as ECG-FM)

    def validate(self) -> None:
        if self.segment_s <= 0 or self.temperature <= 0:
            raise ValueError("segment_s and temperature must be > 0")
        if self.proj_dim < 0 or self.proj_hidden < 1:
            raise ValueError("proj_dim must be >= 0 and proj_hidden >= 1")


@register("cmsc")
class CMSC(Objective):
    """Contrastive multi-segment coding with augmentations and random lead masking.

    Parameters
    ----------
    embed_dim
        Encoder embedding size D.
    segment_len
        Samples per segment (e.g. 2.5 s x 100 Hz = 250).
    temperature
        InfoNCE temperature (ECG-FM: 0.1).
    proj_hidden, proj_dim
        Projection head sizes; ``proj_dim = 0`` contrasts the pooled embeddings directly (ECG-FM).
    augment
        Augmentation strengths, applied independently to each segment.
    """

    def __init__(
        self, embed_dim: int, segment_len: int, temperature: float, proj_hidden: int, proj_dim: int, augment: AugmentConfig
    ):
        super().__init__()
        if segment_len < 1 or temperature <= 0:
            raise ValueError("segment_len must be >= 1 and temperature > 0")
        self.segment_len = segment_len
        self.temperature = temperature
        self.augment = augment
        self.project = ProjectionHead(embed_dim, proj_hidden, proj_dim) if proj_dim > 0 else nn.Identity()

    options_type = CMSCOptions

    @classmethod
    def from_config(cls, options: CMSCOptions, encoder: nn.Module, context: ObjectiveContext) -> CMSC:
        segment_len = int(round(options.segment_s * context.fs))
        return cls(encoder.embed_dim, segment_len, options.temperature, options.proj_hidden, options.proj_dim, context.augment)

    def forward(
        self, encoder: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        x, mask = batch["x"], batch["lead_mask"].bool()
        seg_a, seg_b = adjacent_segments(x, mask, self.segment_len, generator)
        seg_a, mask_a = augment(seg_a, mask, self.augment, generator)
        seg_b, mask_b = augment(seg_b, mask, self.augment, generator)
        z = encoder.embed(torch.cat([seg_a, seg_b]), torch.cat([mask_a, mask_b]))  # (2B, D), one pass
        z = self.project(z)
        loss, accuracy = info_nce(z[: len(x)], z[len(x):], self.temperature)
        return loss, {"top1": float(accuracy)}
