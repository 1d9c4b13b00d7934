"""The opening every model-reading stage shares: threads, the curated store, a checkpoint that fits it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ecgstudy.data.store import Store
from ecgstudy.engine.train import set_threads
from ecgstudy.models.checkpoint import check_preprocessing, load_encoder


def open_store_and_model(
    store_dir: str | Path,
    checkpoint: str | Path,
    *,
    num_threads: int = 0,
    load: Callable[[str | Path], tuple[nn.Module, dict[str, Any]]] = load_encoder,
) -> tuple[Store, nn.Module, dict[str, Any]]:
    """Set torch's CPU threads, open the store, load the checkpoint and check it fits the store.

    ``load`` is :func:`~ecgstudy.models.checkpoint.load_encoder` (default) or ``load_classifier``. The
    checkpoint's preprocessing spec must fit the store (:func:`~ecgstudy.models.checkpoint.check_preprocessing`:
    sampling rate, leads and normalisation; it fails naming the differing key). Returns
    ``(store, model, info)`` where ``info`` carries the checkpoint's spec, config, labels and preprocessing.
    """
    set_threads(num_threads)
    store = Store(store_dir)
    model, info = load(checkpoint)
    check_preprocessing(info["preprocessing"], store.meta, str(checkpoint))
    return store, model, info


# --- what an encoder was pretrained on, and the guards built on it ------------------------------------------

def pretraining_data(info: dict[str, Any]) -> dict[str, Any]:
    """What a pretrained encoder checkpoint says it was trained on: ``{"store", "source", "splits",
    "labels", "record_ids"}`` (``extra["pretraining_data"]``, written by the pretrain stage); missing
    facts are None (a checkpoint from elsewhere). ``labels`` falls back to ``extra["pretraining_labels"]``."""
    extra = info.get("extra") or {}
    data = dict(extra.get("pretraining_data") or {})
    data.setdefault("labels", extra.get("pretraining_labels"))
    for key in ("store", "source", "splits", "record_ids"):
        data.setdefault(key, None)
    return data


def label_overlap(labels: list[str], pretraining_labels: list[str] | None, label_info: dict[str, dict]) -> dict[str, list[str]]:
    """{label: pretraining labels that are the label itself or its diagnostic (sub)class}, for each of
    ``labels`` a supervised pretraining objective saw (``label_info``: the store's ``meta["label_info"]``)."""
    seen = set(pretraining_labels or [])
    out = {}
    for label in labels:
        info = label_info.get(label, {})
        related = {label, info.get("diagnostic_subclass") or "", info.get("diagnostic_class") or ""} - {""}
        if related & seen:
            out[label] = sorted(related & seen)
    return out


def shared_records(info: dict[str, Any], record_ids: np.ndarray) -> int | None:
    """How many of ``record_ids`` the encoder was pretrained on (None when its checkpoint does not say)."""
    pretrained_on = pretraining_data(info)["record_ids"]
    if pretrained_on is None:
        return None
    return int(np.isin(np.asarray(record_ids).astype(str), np.asarray(pretrained_on, dtype=str)).sum())


def check_pretraining_leak(info: dict[str, Any], store: Store, rows_by_split: dict[str, np.ndarray], checkpoint) -> None:
    """Refuse an encoder pretrained on any record this stage evaluates or selects models on.

    ``rows_by_split``: the store rows of each split the stage scores (validation included: model selection
    happens there). Fails with ValueError naming the checkpoint, the split and the number of shared records.
    """
    ids = store.records["record_id"].astype(str).to_numpy()
    for split, rows in rows_by_split.items():
        n = shared_records(info, ids[np.asarray(rows, dtype=np.int64)])
        if n:
            raise ValueError(f"{checkpoint}: the encoder was pretrained on {n} record(s) of the {split!r} split of "
                             f"{store.path}; pretraining must not read an evaluated split (pretrain.splits)")


def random_twin(encoder_path: str | Path, info: dict[str, Any], fallback_seed: int | None = None,
                require: bool = False) -> tuple[nn.Module, str]:
    """The pretrained encoder's random-init twin and how it was built.

    The pretrain stage saves, beside each run's checkpoint, the run's own starting weights (the same
    seeded init) with batch-norm statistics re-estimated on the same records as the pretrained encoder
    (:func:`ecgstudy.stages.artifacts.twin_path`): random-init baselines then differ from the pretrained
    encoder by pretraining only. An encoder from elsewhere has no twin: a fresh init with the
    checkpoint's seed (``fallback_seed`` when given, else the checkpoint config's seed or 0) is returned,
    without batch-norm re-estimation, and the description says so; with ``require`` it raises
    :class:`ecgstudy.stages.artifacts.MissingArtifact` instead (a stage whose claim is "pretrained vs
    random init" must not silently compare against a differently built baseline).
    """
    from ecgstudy.models import random_init_like
    from ecgstudy.stages.artifacts import twin_path

    run = ((info.get("config") or {}).get("run") or {}).get("name")
    path = twin_path(Path(encoder_path).parent, run) if run else None
    if path is not None and path.is_file():
        twin, twin_info = load_encoder(path)
        if twin_info["spec"] != info["spec"]:
            raise ValueError(f"{path}: random-init twin spec {twin_info['spec']} differs from {encoder_path}'s {info['spec']}")
        return twin, f"twin {path.name}: the run's initial weights, batch norm re-estimated on its pretraining records"
    if require:
        from ecgstudy.stages.artifacts import MissingArtifact, shown

        where = shown(path) if path is not None else f"a random-init twin of {Path(encoder_path).name} (its config names no run)"
        raise MissingArtifact(f"{where} not found: the random-init twin is written by the 'pretrain' stage beside "
                              f"each run's checkpoint; run it first (`make repro STAGE=pretrain`)")
    seed = int(fallback_seed if fallback_seed is not None else (info.get("config") or {}).get("seed") or 0)
    return random_init_like(info, seed), (f"fresh init (seed {seed}) without batch-norm re-estimation: no random-init "
                                          f"twin beside {Path(encoder_path).name}")
