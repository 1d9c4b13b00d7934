"""Data-parallel fit: 2 CPU processes under torchrun (gloo) against 1 process with the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from _ddp_worker import GLOBAL_BATCH, mlp_run

from ecgstudy.engine import distributed
from ecgstudy.models import build_encoder
from ecgstudy.engine.train import EpochShards

pytestmark = pytest.mark.usefixtures("torch_one_thread")

WORKER = Path(__file__).with_name("_ddp_worker.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run tests/_ddp_worker.py on 2 processes (free port on localhost); returns the reports of ranks 0, 1."""
    out = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=WORKER.parent.parent)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    reports = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return out, reports


def test_two_processes_end_with_identical_weights(ranks):
    _, (r0, r1) = ranks
    assert r0["world_size"] == r1["world_size"] == 2
    for key in ("mlp",):
        assert all(torch.equal(r0[key][k], r1[key][k]) for k in r0[key])
    mae0, mae1 = r0["mae"]["state"], r1["mae"]["state"]
    assert all(torch.equal(mae0[k], mae1[k]) for k in mae0)  # batch-norm buffers included
    assert r0["mlp_history"] == r1["mlp_history"] and r0["mae"]["history"] == r1["mae"]["history"]


def test_two_processes_of_batch_b_match_one_process_of_batch_2b(ranks):
    out, (r0, _) = ranks
    model, result = mlp_run(world_size=1)  # same global batch of 16 in one process
    diff = max((r0["mlp"][k] - v).abs().max().item() for k, v in model.state_dict().items())
    assert diff < 1e-5  # measured 1.3e-7: only the order of floating-point sums differs
    ddp = pd.DataFrame(r0["mlp_history"])
    assert list(ddp["step"]) == list(result.history["step"]) == [6, 12, 18, 24]  # 96 samples / 16 per step
    for column in ("train_loss", "val_loss", "lr"):  # train loss: averaged over both processes' samples
        assert ddp[column].to_numpy() == pytest.approx(result.history[column].to_numpy(), abs=1e-5)
    assert GLOBAL_BATCH == 16


def test_rank_zero_validates_and_writes_while_all_ranks_stop_together(ranks):
    out, (r0, r1) = ranks
    assert (out / "validated_by_rank0").exists() and not (out / "validated_by_rank1").exists()
    assert (out / "history_rank0.csv").exists() and not (out / "history_rank1.csv").exists()
    for r in (r0, r1):  # scripted validation: best at epoch 1, patience 1 -> both stop after epoch 2
        assert (r["mae"]["epochs"], r["mae"]["best_epoch"], r["mae"]["stopped_early"]) == (2, 1, True)


def test_each_rank_draws_its_own_masks(ranks):
    _, (r0, r1) = ranks
    assert r0["mae"]["mask_seed"] == 11  # rank 0 keeps the caller's generator stream
    assert r1["mae"]["mask_seed"] == distributed.mix_seed(11, 2, 1) != 11


def test_interrupted_and_resumed_ddp_run_equals_the_uninterrupted_one(ranks):
    _, reports = ranks
    for r in reports:
        assert r["resume"] == {"params_equal": True, "history_equal": True, "resumed_after": 2}


def test_sync_batchnorm_is_not_available_on_cpu(ranks):
    """Why DDP on CPU keeps per-process batch-norm statistics (see ecgstudy.engine.distributed)."""
    _, (r0, _) = ranks
    assert "expected input tensor to be on GPU" in r0["sync_batchnorm_cpu"]


def test_shards_interleave_into_the_one_process_order():
    data = list(range(10))
    single = EpochShards(data, 1, 0, seed=3)
    shards = [EpochShards(data, 2, r, seed=3) for r in (0, 1)]
    for epoch in (1, 2):
        for s in (single, *shards):
            s.set_epoch(epoch)
        order = list(single)
        assert sorted(order) == data
        assert list(shards[0]) == order[0::2] and list(shards[1]) == order[1::2]
    single.set_epoch(1)
    first = list(single)
    single.set_epoch(2)
    assert list(single) != first
    later = EpochShards(data, 1, 0, seed=4)
    later.set_epoch(1)
    assert list(later) != list(single)  # seed + 1, epoch - 1: not the same order (unlike seed + epoch)
    uneven = EpochShards(list(range(5)), 2, 1, seed=0)
    uneven.set_epoch(1)
    assert len(list(uneven)) == 3  # padded by repetition to equal shards


def test_sync_batchnorm_conversion_is_undone_exactly():
    torch.manual_seed(0)
    encoder = build_encoder("net1d", "tiny")
    params = list(encoder.parameters())
    x = torch.randn(2, 12, 300)
    before = encoder.eval()(x)
    originals = distributed.convert_sync_batchnorm(encoder)
    assert len(originals) == sum(isinstance(m, torch.nn.SyncBatchNorm) for m in encoder.modules()) > 0
    assert all(a is b for a, b in zip(params, encoder.parameters()))  # optimizer references stay valid
    distributed.revert_sync_batchnorm(encoder, originals)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in encoder.modules())
    assert all(type(encoder.get_submodule(name)) is cls for name, cls in originals.items())
    assert all(a is b for a, b in zip(params, encoder.parameters()))
    assert torch.equal(encoder(x), before)
