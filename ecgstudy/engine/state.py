"""The resumable training state of :func:`ecgstudy.engine.train.fit`: one file, rewritten after every epoch.

The file is a :func:`torch.save` of tensors and plain python values only, read back with
``torch.load(weights_only=True)``::

    {"format": "ecgstudy-train-state", "version": 1,
     "fingerprint": {dotted key: plain value},  # TrainConfig, seed, world size, data size, caller's keys
     "epoch": int,                              # last completed epoch
     "step": int,                               # optimizer steps so far
     "rows": [{column: value}],                 # history rows of the completed epochs
     "best_epoch": int, "best_score": float, "best_state": {name: tensor} | None,
     "stale": int, "stopped_early": bool,
     "model": state_dict, "optimizer": state_dict, "scheduler": state_dict,
     "rng": [per rank: {"torch": uint8 tensor, "cuda": uint8 tensor (CUDA runs),
                        "numpy": {...}, "python": {...}, "generators": {name: uint8 tensor}}]}

It is written to a temporary file beside the target and renamed (:func:`os.replace`), so an
interruption at any moment leaves either the previous epoch's state or the new one, never half a file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "ecgstudy-train-state"
VERSION = 1
_REQUIRED = (
    "fingerprint", "epoch", "step", "rows", "best_epoch", "best_score", "best_state", "stale", "stopped_early",
    "model", "optimizer", "scheduler", "rng",
)


class TrainStateError(ValueError):
    """An unreadable, foreign or incompatible training state file; the message names the file."""


def plain(value: Any, where: str = "value") -> Any:
    """``value`` as plain python (dict / list / str / int / float / bool / None); NaN stays NaN.

    Dataclasses become dicts, tuples lists, numpy scalars and one-element tensors python numbers, paths
    strings; anything else raises TypeError naming ``where``.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"{where} has non-plain type {type(value).__name__}: {value!r}")


def fingerprint(parts: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten nested plain values to {dotted key: value} (lists stay whole values)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = value

    walk("", plain(parts, "fingerprint"))
    return flat


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


def mismatches(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: saved value -> current value`` for every key that differs (NaN equals NaN)."""
    absent = _Absent()

    def same(a: Any, b: Any) -> bool:
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))

    return [
        f"{k}: {saved.get(k, absent)!r} -> {current.get(k, absent)!r}"
        for k in sorted(set(saved) | set(current))
        if not same(saved.get(k, absent), current.get(k, absent))
    ]


def rng_state(generators: Mapping[str, torch.Generator], device: torch.device) -> dict[str, Any]:
    """Snapshot of torch's (and CUDA's), numpy's and python's global RNGs and of ``generators``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator], device: torch.device) -> None:
    """Restore a :func:`rng_state` snapshot (the generators must have the same names)."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
    for name, g in generators.items():
        g.set_state(state["generators"][name])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (tensors + plain values) atomically: temporary file beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a state file written by :func:`save`; :class:`TrainStateError` naming the file otherwise."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt or not a torch file at all
        raise TrainStateError(
            f"{path}: cannot read the training state ({type(exc).__name__}: {str(exc)[:200]}); "
            "delete the file to train from the start"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainStateError(f"{path}: not an {FORMAT} file; delete or move it to train from the start")
    if state.get("version") != VERSION:
        raise TrainStateError(f"{path}: training state version {state.get('version')}, this code reads {VERSION}")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise TrainStateError(f"{path}: training state lacks {missing}; delete the file to train from the start")
    return state
