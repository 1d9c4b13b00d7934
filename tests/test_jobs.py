"""Independent jobs in worker processes (ecgstudy.engine.jobs): order, threads, state, errors."""

import os
import time
from functools import partial

import pytest
import torch

from ecgstudy.engine.jobs import effective_workers, run_jobs
from ecgstudy.progress import MODE_ENV


def _opened(offset: int) -> dict:
    return {"offset": offset, "pid": os.getpid()}


def _job(state: dict, item: int) -> tuple:
    """What a worker saw: the item's result, its process, its threads and progress mode, who opened its state."""
    if item < 0:
        raise ValueError(f"negative item {item}")
    if item >= 1000:  # a long job
        time.sleep(60)
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


def _broken(offset: int) -> dict:
    raise OSError("store not found")


def test_a_failure_stops_the_running_jobs_instead_of_waiting_for_them():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="the job -1 failed"):
        run_jobs(_job, [1000, -1, 1000], state=None, reopen=partial(_opened, 0), workers=2, threads=1)
    assert time.perf_counter() - start < 45  # the 60 s job was ended, not awaited


def test_a_worker_whose_inputs_cannot_be_opened_is_reported_as_a_dead_worker():
    with pytest.raises(RuntimeError, match="a worker process died"):
        run_jobs(_job, [1, 2], state=None, reopen=partial(_broken, 0), workers=2, threads=1)


def test_a_single_job_runs_here_at_the_workers_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        (out,) = run_jobs(_job, [3], state=_opened(0), reopen=partial(_opened, 0), workers=2, threads=1)
        assert out[1] == os.getpid() and out[2] == 1  # here, at one thread: as it would run in a worker
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)


def test_workers_default_to_one_thread_and_a_gpu_gets_one_job_at_a_time():
    out = run_jobs(_job, [1, 2], state=None, reopen=partial(_opened, 0), workers=2, threads=0)
    assert {o[2] for o in out} == {1} and os.getpid() not in {o[1] for o in out}  # num_threads 0: one per worker
    assert effective_workers(2, "cpu") == 2 and effective_workers(2, "cuda") == 1 and effective_workers(0) == 1
