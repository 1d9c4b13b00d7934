"""ECG encoders and heads.

Every encoder takes signals of shape (B, n_leads, T) (normalised as the store's preprocessing spec
says) and a bool lead mask (B, n_leads), and returns features of shape (B, D, T'); ``embed`` pools them to
(B, D); ``embed_dim`` is D. Build them by name with :func:`build_encoder` so checkpoints can rebuild them.

- :mod:`ecgstudy.models.net1d`: RegNet-style 1-D CNN (ECGFounder's design), presets tiny .. base
- :mod:`ecgstudy.models.wav2vec2`: wav2vec 2.0-style transformer (ECG-FM's encoder), presets tiny .. base
- :mod:`ecgstudy.models.heads`: :class:`Classifier` (linear head on pooled features), projection heads
- :mod:`ecgstudy.models.checkpoint`: strict save/load carrying config, preprocessing and labels
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ecgstudy.models import net1d, wav2vec2
from ecgstudy.models.heads import Classifier, ProjectionHead

#: Encoder architectures by name: builder(preset, n_leads, **overrides) -> nn.Module.
ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "net1d": net1d.build,
    "wav2vec2": wav2vec2.build,
}


def build_encoder(arch: str, preset: str, n_leads: int = 12, **overrides: Any) -> nn.Module:
    """Build an encoder by architecture and size preset.

    Parameters
    ----------
    arch
        Architecture name, a key of :data:`ENCODERS` (``"net1d"``, ``"wav2vec2"``).
    preset
        Size preset of that architecture (both: tiny, small, medium, base).
    n_leads
        Input leads (12 for the standard order I, II, III, aVR, aVL, aVF, V1-V6).
    overrides
        Architecture fields replacing the preset's (e.g. ``kernel_size=8``).
    """
    if arch not in ENCODERS:
        raise ValueError(f"unknown encoder architecture {arch!r}; architectures: {sorted(ENCODERS)}")
    return ENCODERS[arch](preset, n_leads=n_leads, **overrides)


def encoder_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild an encoder from its ``spec_dict`` (as stored in checkpoints)."""
    missing = sorted({"arch", "preset", "n_leads"} - set(spec))
    if missing:
        raise ValueError(f"encoder spec lacks key(s) {missing}: {spec}")
    return build_encoder(spec["arch"], spec["preset"], spec["n_leads"], **dict(spec.get("overrides") or {}))


def random_init_like(info: dict[str, Any], seed: int) -> nn.Module:
    """A freshly initialised encoder of a checkpoint's architecture (seeded; eval mode; global RNG untouched).

    ``info`` is the info dict of :func:`ecgstudy.models.checkpoint.load_encoder` (its ``spec`` is the
    encoder spec, or a classifier spec holding it under ``encoder``). With the seed the pretraining run
    initialised with, it is exactly that run's starting point: the random-init baseline.
    """
    import torch

    spec = info["spec"]["encoder"] if info.get("kind") == "classifier" else info["spec"]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = encoder_from_spec(spec)
    return model.eval()


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "ENCODERS", "Classifier", "ProjectionHead", "build_encoder", "count_parameters", "encoder_from_spec",
    "random_init_like",
]
