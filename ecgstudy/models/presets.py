"""Named size presets of an encoder architecture, with field overrides (shared by every encoder module).

An encoder module declares a frozen spec dataclass and ``PRESETS: {name: spec}``; :func:`resolve`
turns a preset name plus overrides (from params.yaml or a checkpoint, where tuples arrive as lists) into
the spec, and :func:`plain_overrides` writes the overrides back as plain lists for checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def as_tuples(value: Any) -> Any:
    """Lists (from YAML or a checkpoint) to tuples, recursively."""
    return tuple(as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def plain_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides with tuples turned into lists, recursively (plain values for checkpoints)."""

    def lists(value: Any) -> Any:
        return [lists(v) for v in value] if isinstance(value, (list, tuple)) else value

    return {k: lists(v) for k, v in overrides.items()}


def resolve(arch: str, presets: dict[str, Any], preset: str, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The spec of ``preset`` with ``overrides`` applied, and the overrides as stored (tuples).

    Raises ValueError naming an unknown preset or override field and listing the valid ones.
    """
    if preset not in presets:
        raise ValueError(f"unknown {arch} preset {preset!r}; presets: {sorted(presets)}")
    base = presets[preset]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown {arch} override(s) {unknown}; valid: {sorted(fields)}")
    clean = {k: as_tuples(v) for k, v in overrides.items()}
    return dataclasses.replace(base, **clean), clean
