"""Checkpoints that carry their config, preprocessing spec and label vocabulary, loaded strictly.

A checkpoint file is a plain dictionary written by :func:`torch.save` holding only tensors and plain
python values (so :func:`torch.load` with ``weights_only=True`` reads it)::

    {"format": "ecgstudy-checkpoint", "version": 1,
     "kind": "encoder" | "classifier",
     "spec": {...},              # how to rebuild the model (encoder spec_dict, n_labels)
     "state_dict": {name: tensor},
     "config": {...},            # the stage config that produced it
     "preprocessing": {...},     # store meta["preprocessing"] + fs + n_samples + leads
     "labels": [...],            # label vocabulary of the outputs (empty for encoders)
     "extra": {...}}             # anything else plain (metrics, epoch, ...)

Loading rebuilds the model from ``spec`` and fails with :class:`CheckpointError` listing every missing or
unexpected key and every shape mismatch, so a checkpoint never loads silently into random weights.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ecgstudy.models.heads import Classifier

FORMAT = "ecgstudy-checkpoint"
VERSION = 1
_SHOW = 20  # key names listed in an error before summarising the rest


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message names the file and the problem."""


def preprocessing_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing a model expects, from a store's ``meta.json`` content.

    Returns ``meta["preprocessing"]`` plus ``fs`` (Hz), ``n_samples`` and ``leads`` (input order).
    """
    missing = [k for k in ("fs", "n_samples", "leads") if k not in meta]
    if missing:
        raise KeyError(f"store meta lacks key(s) {missing} needed for the preprocessing spec")
    spec = dict(meta.get("preprocessing") or {})
    spec.update(fs=meta["fs"], n_samples=meta["n_samples"], leads=list(meta["leads"]))
    return _plain(spec, "preprocessing")


#: The normalisations whose statistics (``stats``) are part of the model's input contract.
DATASET_NORMALISATIONS = ("dataset_per_lead_zscore", "dataset_zscore")


def check_preprocessing(expected: dict[str, Any], meta: dict[str, Any], where: str) -> None:
    """Fail when a store's sampling rate, lead order or normalisation differ from a model's spec.

    With a dataset normalisation the fitted statistics must be the same numbers too (the store's
    ``preprocessing.stats`` against the checkpoint's: both the pretraining corpus's train split).
    ``n_samples`` may differ (the encoders are fully convolutional and pool over time).
    """
    actual = preprocessing_spec(meta)
    problems = [
        f"{key}: model {expected.get(key)!r} vs store {actual.get(key)!r}"
        for key in ("fs", "leads", "normalise")
        if key in expected and expected.get(key) != actual.get(key)
    ]
    if expected.get("normalise") in DATASET_NORMALISATIONS and not problems:
        mine, theirs = expected.get("stats") or {}, actual.get("stats") or {}
        keys = ("mean", "std", "global_mean", "global_std")
        if any(mine.get(k) != theirs.get(k) for k in keys):
            problems.append(f"normalisation statistics: model's fitted on {mine.get('fitted_on')!r}, store's on "
                            f"{theirs.get('fitted_on')!r} (curate every store with the pretraining corpus's statistics)")
    if problems:
        raise CheckpointError(f"{where}: preprocessing mismatch ({'; '.join(problems)})")


def _plain(value: Any, where: str) -> Any:
    """Convert to plain python (dict/list/str/int/float/bool/None) or fail naming the offending key."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"checkpoint field {where} has non-plain type {type(value).__name__}: {value!r}")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    config: dict[str, Any] | Any,
    preprocessing: dict[str, Any],
    labels: list[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (an encoder or a :class:`Classifier`) with its provenance; returns the path.

    Parameters
    ----------
    path
        Target file (folders are created; written to a temporary file, then renamed).
    model
        Encoder of :mod:`ecgstudy.models` (has ``spec_dict``) or a :class:`Classifier`.
    config
        The config that produced the model (a dict or a dataclass; must be plain values).
    preprocessing
        What the inputs went through (see :func:`preprocessing_spec`).
    labels
        Output label vocabulary, in logit order (``[]`` for an encoder).
    """
    kind = "classifier" if isinstance(model, Classifier) else "encoder"
    if kind == "classifier" and len(labels) != model.n_labels:
        raise ValueError(f"{len(labels)} labels given for a classifier with {model.n_labels} outputs")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "spec": _plain(model.spec_dict, "spec"),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": _plain(config, "config"),
        "preprocessing": _plain(preprocessing, "preprocessing"),
        "labels": [str(label) for label in labels],
        "extra": _plain(extra or {}, "extra"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file (tensors and plain values only) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of all kinds: report the file
        raise CheckpointError(f"{path}: not a loadable ecgstudy checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ecgstudy checkpoint (format marker {FORMAT!r} missing)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, expected {VERSION}")
    for key in ("kind", "spec", "state_dict", "config", "preprocessing", "labels"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks field {key!r}")
    return payload


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model``; every key must match in name and shape, else :class:`CheckpointError`."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys [{_names(missing)}]")
    if unexpected:
        problems.append(f"unexpected keys [{_names(unexpected)}]")
    if mismatched:
        problems.append(f"shape mismatches [{_names(mismatched)}]")
    if problems:
        raise CheckpointError(f"{where}: state does not match the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def _info(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    keys = ("kind", "spec", "config", "preprocessing", "labels")
    return {**{k: payload[k] for k in keys}, "extra": payload.get("extra", {}), "path": str(path)}


def load_encoder(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The encoder of an encoder or classifier checkpoint, and the checkpoint's info.

    Returns
    -------
    (encoder in eval mode, info) where info has kind, spec, config, preprocessing, labels, extra, path.
    """
    from ecgstudy.models import encoder_from_spec  # the registry imports this module's siblings

    path = Path(path)
    payload = read_checkpoint(path)
    state = payload["state_dict"]
    if payload["kind"] == "classifier":
        spec = payload["spec"]["encoder"]
        state = {k.removeprefix("encoder."): v for k, v in state.items() if not k.startswith("head.")}
    elif payload["kind"] == "encoder":
        spec = payload["spec"]
    else:
        raise CheckpointError(f"{path}: unknown checkpoint kind {payload['kind']!r}")
    try:
        encoder = encoder_from_spec(spec)
    except ValueError as exc:
        raise CheckpointError(f"{path}: cannot rebuild the encoder: {exc}") from exc
    load_state_strict(encoder, state, str(path))
    return encoder.eval(), _info(payload, path)


def load_classifier(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """A :class:`Classifier` from a classifier checkpoint, and the checkpoint's info (see :func:`load_encoder`)."""
    from ecgstudy.models import encoder_from_spec

    path = Path(path)
    payload = read_checkpoint(path)
    if payload["kind"] != "classifier":
        raise CheckpointError(f"{path}: holds an {payload['kind']!r}, not a classifier; use load_encoder")
    spec = payload["spec"]
    try:
        model = Classifier(encoder_from_spec(spec["encoder"]), int(spec["n_labels"]))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the classifier: {exc}") from exc
    if len(payload["labels"]) != model.n_labels:
        raise CheckpointError(f"{path}: {len(payload['labels'])} labels for {model.n_labels} outputs")
    load_state_strict(model, payload["state_dict"], str(path))
    return model.eval(), _info(payload, path)


def update_extra(path: str | Path, **fields: Any) -> Path:
    """Add or replace plain ``extra`` fields of a saved checkpoint (e.g. thresholds chosen after training).

    The weights, spec and provenance are left as they are; the file is rewritten atomically.
    """
    path = Path(path)
    payload = read_checkpoint(path)
    payload["extra"] = {**payload.get("extra", {}), **_plain(fields, "extra")}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def n_parameters(path: str | Path) -> int:
    """Number of parameters (weights and biases; buffers such as batch-norm statistics excluded) in a checkpoint."""
    from ecgstudy.models import encoder_from_spec

    payload = read_checkpoint(path)
    spec = payload["spec"]["encoder"] if payload["kind"] == "classifier" else payload["spec"]
    count = sum(p.numel() for p in encoder_from_spec(spec).parameters())
    if payload["kind"] == "classifier":
        head = [v for k, v in payload["state_dict"].items() if k.startswith("head.")]
        count += sum(int(v.numel()) for v in head)
    return int(count)
