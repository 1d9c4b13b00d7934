"""Streaming a folder of records through a model: read and prepare in workers, batch windows, keep order.

:func:`prepared_records` reads and prepares records (:func:`ecgstudy.apply.inputs.read_and_prepare`) in
worker processes, a bounded number of chunks in flight, yielding them in catalog order (one process when
``workers`` is 1). :func:`model_outputs` packs the windows of consecutive records into batches of about
``batch_size`` windows, runs ``forward`` on them and yields each record with its own rows of outputs. Only
a few chunks of records and one batch are held at a time: memory does not grow with the folder.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ecgstudy.apply.inputs import ApplyOptions, Prepared, Protocol, read_and_prepare

_WORKER: dict[str, Any] = {}


def _init(source, spec, protocol, options) -> None:
    _WORKER.update(source=source, spec=spec, protocol=protocol, options=options)


def _chunk(positions: list[int]) -> list[Prepared]:
    w = _WORKER
    return [read_and_prepare(w["source"], p, w["spec"], w["protocol"], w["options"]) for p in positions]


def prepared_records(source, positions: list[int], spec: dict[str, Any], protocol: Protocol, options: ApplyOptions,
                     *, workers: int = 1, chunk_size: int = 16) -> Iterator[Prepared]:
    """Every catalog row of ``positions`` prepared for the model, in order (see the module docstring)."""
    chunks = [positions[i : i + chunk_size] for i in range(0, len(positions), chunk_size)]
    n_workers = workers or os.cpu_count() or 1
    if n_workers <= 1 or len(chunks) <= 1:
        for p in positions:
            yield read_and_prepare(source, p, spec, protocol, options)
        return
    # workers only run numpy/scipy reading and filtering (no torch), so fork is safe where it exists
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(min(n_workers, len(chunks)), initializer=_init, initargs=(source, spec, protocol, options)) as pool:
        todo, pending = iter(chunks), deque()
        for chunk in todo:
            pending.append(pool.apply_async(_chunk, (chunk,)))
            if len(pending) >= 2 * n_workers:
                break
        while pending:
            done = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(_chunk, (nxt,)))
            yield from done


@torch.no_grad()
def model_outputs(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    records: Iterator[Prepared],
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[Prepared, np.ndarray | None]]:
    """``(record, outputs float32 (W, K))`` for each record in order; ``None`` outputs for excluded records.

    ``forward(x (B, 12, window) float32, lead_mask (B, 12) bool) -> (B, K)`` runs on batches of about
    ``batch_size`` windows (a record's windows are never split across two results).
    """
    device = torch.device(device)
    waiting: list[Prepared] = []
    n_windows = 0

    def flush() -> Iterator[tuple[Prepared, np.ndarray | None]]:
        ready = [r for r in waiting if r.windows is not None]
        out = np.zeros((0, 0), np.float32)
        if ready:
            x = torch.from_numpy(np.concatenate([r.windows for r in ready]))
            mask = torch.from_numpy(np.concatenate([np.repeat(r.mask[None], len(r.windows), 0) for r in ready]))
            out = np.concatenate([forward(x[i : i + batch_size].to(device), mask[i : i + batch_size].to(device))
                                  .float().cpu().numpy() for i in range(0, len(x), batch_size)])
        start = 0
        for r in waiting:
            if r.windows is None:
                yield r, None
                continue
            yield r, out[start : start + len(r.windows)]
            start += len(r.windows)

    for record in records:
        waiting.append(record)
        n_windows += 0 if record.windows is None else len(record.windows)
        if n_windows >= batch_size:
            yield from flush()
            waiting, n_windows = [], 0
    if waiting:
        yield from flush()
