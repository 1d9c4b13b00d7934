"""Independent training jobs side by side, each in a worker process of its own with few CPU threads.

A stage's training runs (the fine-tunes of one strategy and label fraction, the runs of one rare
condition, one pretraining objective) do not depend on each other: each seeds its own generators and
reads only the stage's inputs. On a small CPU machine, small models use several threads badly (Net1D
tiny, batch 32 x 12 x 250 on 2 cores: 312 samples/s with 2 threads, 368 with 1, and 715 from two
one-thread processes together), so :func:`run_jobs` runs ``workers`` such jobs at once in spawned
processes of ``threads`` threads each.

Each worker opens the stage's inputs once (``reopen()``, e.g. the store and the encoders, from disk)
and then runs ``job(state, item)`` for the items it is handed, in the order given (put the largest
first: the pool hands out items as workers free up). Results come back in the order of ``items``, so
the caller assembles its outputs exactly as a sequential loop would. A job's numbers depend on its
inputs, its seed and the threads it ran with, not on which worker ran it or when: ``workers`` = 2 with
one thread each gives the same numbers as ``workers`` = 1 in a one-thread process
(tests/test_jobs.py). With ``workers`` <= 1 the jobs run here, one after another, on ``state``.

Workers print no progress bars of their own (their text would interleave); the calling process shows
one bar over finished jobs. Under torchrun (data-parallel training) callers run inline.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

_STATE: Any = None  # a worker's opened inputs (set once by _start)


def _start(reopen: Callable[[], Any], threads: int) -> None:
    """Worker initialiser: its thread count, no progress bars, the stage's inputs opened once."""
    import torch

    from ecgstudy.progress import MODE_ENV

    global _STATE
    os.environ[MODE_ENV] = "off"
    torch.set_num_threads(max(int(threads), 1))
    _STATE = reopen()


def _call(job: Callable[[Any, Any], Any], item: Any) -> Any:
    return job(_STATE, item)


def worker_threads(num_threads: int) -> int:
    """Torch threads of each worker: a stage's ``num_threads`` when set (> 0), else 1."""
    return num_threads if num_threads > 0 else 1


def run_jobs(job: Callable[[S, T], R], items: Sequence[T], *, state: S | None, reopen: Callable[[], S], workers: int,
             threads: int, desc: str = "jobs") -> list[R]:
    """``[job(state, item) for item in items]``, in ``workers`` spawned processes when ``workers`` > 1.

    Parameters
    ----------
    job
        A module-level function (it is pickled to the workers) of (opened inputs, item).
    items
        Picklable job descriptions, largest first for the best balance.
    state
        The inputs already open in this process (used when running inline; None opens them with ``reopen``).
    reopen
        A picklable callable (e.g. a ``functools.partial`` of a module-level function) that opens the same
        inputs in a worker.
    workers, threads
        Worker processes and torch CPU threads in each. ``workers`` <= 1 runs inline with this process's threads.
    desc
        Label of the progress bar and of errors.

    Raises the first job's exception (its remote traceback attached as the cause) naming the item; the jobs
    not yet started are cancelled.
    """
    from ecgstudy.progress import tqdm

    items = list(items)
    if workers <= 1 or len(items) <= 1:
        opened = reopen() if state is None else state
        return [job(opened, item) for item in items]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context, initializer=_start,
                             initargs=(reopen, threads)) as pool:
        futures = [pool.submit(_call, job, item) for item in items]
        with tqdm(total=len(items), desc=f"{desc} ({min(workers, len(items))} workers x {threads} thread(s))") as bar:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        item = items[futures.index(future)]
                        raise RuntimeError(f"{desc}: the job {item!r} failed in a worker process") from future.exception()
        return [future.result() for future in futures]
