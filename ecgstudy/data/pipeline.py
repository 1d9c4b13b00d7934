"""The per-record curation pipeline and its ordered parallel execution.

One record: read (its reader) -> mV -> standard lead order -> quality checks (:mod:`ecgstudy.data.quality`)
-> harmonisation (:mod:`ecgstudy.data.preprocess`). :func:`process_record` never raises for bad data: it
returns an :class:`Outcome` carrying either the harmonised signal or the exclusion reason.
:func:`process_in_order` runs it over worker processes in chunks and yields the results in catalog
order, so the store does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgstudy.data import preprocess, quality
from ecgstudy.data.curate_config import CurateConfig
from ecgstudy.data.sources import RecordReadError, Source



@dataclass
class Outcome:
    """Result of processing one record: a harmonised signal, or an exclusion reason."""

    position: int
    signal: np.ndarray | None = None  # float32 (12, n_samples) at the store fs, mV; (K, 12, n_samples) under the windows policy
    mask: np.ndarray | None = None  # bool (12,)
    fs: float = float("nan")  # original rate
    duration_s: float = float("nan")  # original duration
    offset_s: float | np.ndarray = 0.0  # time in the original record of stored sample 0; (K,) under the windows policy
    reason: str | None = None
    detail: str = ""
    flags: list[tuple[str, str]] = field(default_factory=list)


_WORKER: dict[str, Any] = {}


def _init_worker(source: Source, cfg: CurateConfig) -> None:
    _WORKER["source"], _WORKER["cfg"] = source, cfg


def _process_chunk(positions: list[int]) -> list[Outcome]:
    return [process_record(_WORKER["source"], _WORKER["cfg"], p) for p in positions]


def process_record(source: Source, cfg: CurateConfig, position: int) -> Outcome:
    """Read, quality-check and harmonise catalog row ``position`` (never raises for bad data)."""
    out = Outcome(position)
    try:
        raw = source.read_signal(position)
        out.fs, out.duration_s = raw.fs, raw.duration_s
        data = preprocess.to_millivolts(raw.data, raw.units)
        data, mask = preprocess.to_standard_leads(data, raw.leads, cfg.lead_aliases)
    except RecordReadError as exc:  # paths relative to the dataset root: the store is portable
        out.reason, out.detail = exc.reason, exc.detail.replace(f"{source.root}{os.sep}", "")
        return out
    except ValueError as exc:  # unknown unit, two leads with one name
        out.reason, out.detail = "bad_leads_or_units", str(exc)
        return out
    try:
        qc = quality.check(data, mask, raw.fs, cfg.duration_s, cfg.qc, longer_ok=cfg.length_policy == "windows")
        if qc.excluded:
            out.reason, out.detail = qc.reason, qc.detail
            return out
        data[~qc.mask] = np.nan
        out.signal, out.offset_s = preprocess.harmonise(
            data,
            raw.fs,
            fs_out=cfg.fs,
            n_samples=cfg.n_samples,
            length_policy=cfg.length_policy,
            bandpass_hz=cfg.bandpass,
            notch_hz=cfg.notch,
            baseline_median_s=cfg.baseline_median_s,
        )
        out.mask, out.flags = qc.mask, qc.flags
    except Exception as exc:  # a record that breaks processing is excluded, not a crash halfway
        out.reason, out.detail = "processing_error", f"{type(exc).__name__}: {exc}"
    return out


def process_in_order(source: Source, cfg: CurateConfig, positions: list[int]) -> Iterator[list[Outcome]]:
    """Process ``positions`` in chunks, yielding chunk results in order (bounded work in flight)."""
    chunks = [positions[i : i + cfg.chunk_size] for i in range(0, len(positions), cfg.chunk_size)]
    n_workers = cfg.n_workers or os.cpu_count() or 1
    if n_workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield [process_record(source, cfg, p) for p in chunk]
        return
    # fork where available: works from notebooks and unguarded scripts, and workers only run numpy/scipy
    # code (no OpenMP/torch), so the parent's threads are not an issue; spawn elsewhere
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(min(n_workers, len(chunks)), initializer=_init_worker, initargs=(source, cfg)) as pool:
        pending: deque = deque()
        todo = iter(chunks)
        for chunk in todo:
            pending.append(pool.apply_async(_process_chunk, (chunk,)))
            if len(pending) >= 2 * n_workers:
                break
        while pending:
            result = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(_process_chunk, (nxt,)))
            yield result
