"""Independent jobs in worker processes (ecgstudy.engine.jobs): order, threads, state, errors."""

import os
from functools import partial

import pytest
import torch

from ecgstudy.engine.jobs import run_jobs, worker_threads
from ecgstudy.progress import MODE_ENV


def _opened(offset: int) -> dict:
    return {"offset": offset, "pid": os.getpid()}


def _job(state: dict, item: int) -> tuple:
    """What a worker saw: the item's result, its process, its threads and progress mode, who opened its state."""
    if item < 0:
        raise ValueError(f"negative item {item}")
    return item * item + state["offset"], os.getpid(), torch.get_num_threads(), os.environ.get(MODE_ENV), state["pid"]


def test_inline_runs_on_the_given_state_in_order():
    out = run_jobs(_job, [3, 1, 2], state=_opened(10), reopen=partial(_opened, 99), workers=1, threads=1)
    assert [o[0] for o in out] == [19, 11, 14]
    assert {o[1] for o in out} == {os.getpid()}


def test_workers_return_results_in_item_order_with_their_own_opened_state_and_threads():
    items = [5, 4, 3, 2, 1, 0]
    out = run_jobs(_job, items, state=None, reopen=partial(_opened, 7), workers=2, threads=1, desc="squares")
    assert [o[0] for o in out] == [i * i + 7 for i in items]  # order of items, state opened by reopen
    pids = {o[1] for o in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(o[4] == o[1] for o in out)  # each worker opened its own inputs, once
    assert {o[2] for o in out} == {1} and {o[3] for o in out} == {"off"}  # one thread, no progress bars


def test_a_failing_job_names_its_item_and_keeps_the_cause():
    with pytest.raises(RuntimeError, match=r"squares: the job -2 failed") as info:
        run_jobs(_job, [1, -2, 3], state=None, reopen=partial(_opened, 0), workers=2, threads=1, desc="squares")
    assert "negative item -2" in str(info.value.__cause__)


def test_worker_threads():
    assert worker_threads(0) == 1 and worker_threads(3) == 3
