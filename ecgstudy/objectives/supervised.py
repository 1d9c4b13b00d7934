"""Supervised pretraining objective ``supervised``: multi-label diagnosis as the pretext task.

ECGFounder's recipe: an encoder learns to predict many diagnostic statements at once (multi-label
binary cross-entropy with a linear head on the pooled features), on whole 10 s records. Here the label
set is a task of :data:`ecgstudy.data.labels.TASKS` on the pretraining records (the stage builds
``batch["y"]`` (B, n_labels) and the positive weights); only the encoder is kept afterwards.

Positive weights are n_neg / n_pos per label (as in fine-tuning, :func:`ecgstudy.stages.finetune.pos_weights`),
clipped to [1 / cap, cap], so rare statements are not ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ecgstudy.data.labels import TASKS
from ecgstudy.objectives.augment import AugmentConfig, augment, random_crop
from ecgstudy.objectives.base import Objective, ObjectiveContext, register


@dataclass(frozen=True)
class SupervisedOptions:
    """params.yaml ``pretrain.objectives.supervised``."""

    task: str = "superdiagnostic"  # label task of ecgstudy.data.labels.TASKS used as the pretraining label set
    min_positives: int = 10  # keep the task's labels with at least this many positive pretraining records
    crop_s: float = 0.0  # random crop length in s (0 = the whole record, as ECGFounder trains on 10 s records)
    augment: bool = False  # apply the shared augmentations + random lead masking of pretrain.augment
    pos_weight: bool = True  # weight positives by n_neg / n_pos per label (as fine-tuning does)
    pos_weight_cap: float = 100.0  # clip the positive weights to [1 / cap, cap] (finetune.pos_weights: 100)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown label task {self.task!r}; valid tasks: {list(TASKS)}")
        if self.min_positives < 1:
            raise ValueError(f"min_positives must be >= 1, got {self.min_positives}")
        if self.crop_s < 0:
            raise ValueError(f"crop_s must be >= 0 (0 = whole record), got {self.crop_s}")
        if self.pos_weight_cap < 1:
            raise ValueError(f"pos_weight_cap must be >= 1, got {self.pos_weight_cap}")


@register("supervised")
class Supervised(Objective):
    """Multi-label BCE of a linear head on the encoder's pooled features.

    Parameters
    ----------
    embed_dim
        Encoder embedding size D (``encoder.embed`` gives (B, D)).
    n_labels
        Labels L in ``batch["y"]`` (B, L).
    pos_weight
        Positive weight per label (L,), already clipped; None = unweighted BCE.
    crop_len
        Samples of the random crop (None = whole records).
    augment
        Augmentations + random lead masking applied to the (cropped) records; None = none.
    """

    needs_labels = True
    options_type = SupervisedOptions

    def __init__(
        self,
        embed_dim: int,
        n_labels: int,
        pos_weight: torch.Tensor | None = None,
        crop_len: int | None = None,
        augment: AugmentConfig | None = None,
    ):
        super().__init__()
        if n_labels < 1:
            raise ValueError("supervised pretraining needs at least one label (context.n_labels is 0)")
        if pos_weight is not None and pos_weight.shape != (n_labels,):
            raise ValueError(f"pos_weight has shape {tuple(pos_weight.shape)}, expected ({n_labels},)")
        if crop_len is not None and crop_len < 1:
            raise ValueError(f"crop_len must be >= 1 sample, got {crop_len}")
        self.n_labels = n_labels
        self.crop_len = crop_len
        self.augment = augment
        self.head = nn.Linear(embed_dim, n_labels)
        self.register_buffer("pos_weight", pos_weight.float() if pos_weight is not None else None)

    @classmethod
    def from_config(cls, options: SupervisedOptions, encoder: nn.Module, context: ObjectiveContext) -> Supervised:
        options.validate()
        if context.n_labels < 1:
            raise ValueError(f"objective 'supervised' needs labels (task {options.task!r}); the context has n_labels = 0")
        weight = None
        if options.pos_weight:
            if len(context.pos_weight) != context.n_labels:
                raise ValueError(
                    f"objective 'supervised': context.pos_weight has {len(context.pos_weight)} values "
                    f"for {context.n_labels} labels"
                )
            cap = options.pos_weight_cap
            weight = torch.tensor(context.pos_weight, dtype=torch.float32).clamp(1.0 / cap, cap)
        crop_len = int(round(options.crop_s * context.fs)) if options.crop_s > 0 else None
        if crop_len is not None and crop_len > context.n_samples:
            raise ValueError(f"crop_s {options.crop_s} s is longer than the records ({context.n_samples / context.fs:g} s)")
        return cls(encoder.embed_dim, context.n_labels, weight, crop_len, context.augment if options.augment else None)

    def forward(
        self, encoder: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """BCE of one batch: ``x`` (B, n_leads, T), ``lead_mask`` (B, n_leads), ``y`` (B, n_labels) in {0, 1}."""
        x, mask, y = batch["x"], batch["lead_mask"].bool(), batch["y"].float()
        if y.ndim != 2 or y.shape[1] != self.n_labels:
            raise ValueError(f"batch['y'] has shape {tuple(y.shape)}, expected (B, {self.n_labels})")
        if self.crop_len is not None and self.crop_len < x.shape[-1]:
            x = random_crop(x, self.crop_len, generator)
        if self.augment is not None:
            x, mask = augment(x, mask, self.augment, generator)
        logits = self.head(encoder.embed(x, mask)).float()  # (B, n_labels), loss in float32 under bf16
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight)
        return loss, {"bce": float(loss.detach())}
