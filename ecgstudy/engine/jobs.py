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
one bar over finished jobs. Under torchrun (data-parallel training) the jobs run inline.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import torch

from ecgstudy.engine import distributed

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

_STATE: Any = None  # a worker's opened inputs (set once by _start)


def _start(reopen: Callable[[], Any], threads: int) -> None:
    """Worker initialiser: its thread count, no progress bars, the stage's inputs opened once."""
    from ecgstudy.progress import MODE_ENV

    global _STATE
    os.environ[MODE_ENV] = "off"
    torch.set_num_threads(max(int(threads), 1))
    _STATE = reopen()


def _call(job: Callable[[Any, Any], Any], item: Any) -> Any:
    return job(_STATE, item)


def effective_workers(workers: int, device: torch.device | str = "cpu") -> int:
    """The worker processes :func:`run_jobs` uses: ``workers`` on a CPU; 1 on a GPU (one job at a time on it) and
    in a torchrun process."""
    if distributed.launched() or torch.device(device).type != "cpu":
        return 1
    return max(int(workers), 1)


def run_jobs(job: Callable[[S, T], R], items: Sequence[T], *, state: S | None, reopen: Callable[[], S], workers: int,
             threads: int, device: torch.device | str = "cpu", desc: str = "jobs") -> list[R]:
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
    workers, threads, device
        Worker processes and the stage's ``num_threads`` (torch CPU threads of each worker; 0 = 1); the device
        the jobs train on. With one worker (:func:`effective_workers`: also on a GPU and under torchrun) the
        jobs run here with this process's threads; with several and a single item, it runs here too, at the
        workers' thread count, so that a job's numbers do not depend on how many others there are.
    desc
        Label of the progress bar and of errors.

    Raises the first failing job's exception (its remote traceback attached as the cause) naming the item, at
    once: the workers are stopped, the jobs still running or queued are dropped. A worker that dies (its
    ``reopen`` failed, or it was killed) is reported as such. An interrupt (Ctrl-C) stops the workers too.
    """
    from ecgstudy.progress import tqdm

    items = list(items)
    workers, threads = effective_workers(workers, device), max(int(threads), 1)
    if workers <= 1 or len(items) <= 1:
        before = torch.get_num_threads()
        if workers > 1:
            torch.set_num_threads(threads)
        try:
            opened = reopen() if state is None else state
            return [job(opened, item) for item in items]
        finally:
            torch.set_num_threads(before)
    n = min(workers, len(items))
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                               initargs=(reopen, threads))
    try:
        futures = [pool.submit(_call, job, item) for item in items]
        with tqdm(total=len(items), desc=f"{desc} ({n} workers x {threads} thread(s))") as bar:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        raise RuntimeError(f"{desc}: a worker process died (its inputs could not be opened, or it "
                                           "was killed); see its error above") from error
                    if error is not None:
                        item = items[futures.index(future)]
                        raise RuntimeError(f"{desc}: the job {item!r} failed in a worker process") from error
                    bar.update(1)
        return [future.result() for future in futures]
    except BaseException:
        _stop(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Drop the queued jobs and end the worker processes now, not after their running jobs finish."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # CPython's; shutdown clears it
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
