"""The opening every model-reading stage shares: threads, the curated store, a checkpoint that fits it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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
