"""Process-group helpers for data-parallel training under ``torchrun`` (one process per device).

``torchrun --nproc_per_node N script.py ...`` starts N copies of a script with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`init` joins that process group once
(gloo for CPU tensors, nccl for CUDA) and is a no-op in a plain ``python`` run, so the same code runs in
both. :func:`ecgstudy.engine.train.fit` calls it; nothing here runs at import time.

Batch norm: :class:`torch.nn.SyncBatchNorm` only synchronises CUDA (and a few other accelerator)
tensors; on CPU its forward raises in torch 2.13. Under DDP on CPU every process therefore normalises
with the statistics of its own per-process batch, so for models with batch norm N processes x batch b
train differently from 1 process x batch N*b (Net1D tiny, 2 x 8 vs 1 x 16, 4 AdamW steps at lr 1e-3:
parameters differ by up to 5e-3, the size of the updates themselves); models without batch norm match up
to the order of floating-point sums (tests/test_distributed.py). On CUDA, fit converts batch norm to
SyncBatchNorm for the run (:func:`convert_sync_batchnorm`), which normalises with the statistics of the
global batch; that path needs several GPUs and is not exercised by the CPU test suite.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the process group (rank 0 of 1 when not distributed)."""

    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (selects the CUDA device)

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates and writes files."""
        return self.rank == 0


def launched() -> bool:
    """True when started by torchrun (or similar) with ``WORLD_SIZE`` > 1 in the environment."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def info() -> DistInfo:
    """This process's rank, world size and local rank (0, 1, 0 outside an initialised group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    rank = dist.get_rank()
    return DistInfo(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))


def init(device_type: str) -> DistInfo:
    """Join the torchrun process group once (gloo on CPU, nccl on CUDA); no-op when not launched.

    A group the caller initialised already is used as it is. The group is destroyed at interpreter exit.
    """
    if dist.is_available() and dist.is_initialized():
        return info()
    if not launched():
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE > 1 but {missing} not set: launch with torchrun")
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    atexit.register(_shutdown)
    return info()


def _shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mix_seed(seed: int, *salt: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``salt`` (e.g. a purpose and a rank or an epoch).

    Distinct salts give statistically independent streams; the same arguments give the same seed.
    """
    state = np.random.SeedSequence([seed % 2**64, *salt]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` (picklable) on every process."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every process, in rank order, on every process."""
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait until every process arrives here."""
    dist.barrier()


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every process, in place."""
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def convert_sync_batchnorm(module: nn.Module) -> dict[str, type[nn.Module]]:
    """Replace every batch-norm layer below ``module`` by :class:`nn.SyncBatchNorm`, in place.

    Returns {qualified name: original class} for :func:`revert_sync_batchnorm`. ``module`` itself must not
    be a batch-norm layer. Parameters and buffers are kept (same objects), so optimizers stay valid.
    """
    originals: dict[str, type[nn.Module]] = {}
    for name, child in list(module.named_modules()):
        for child_name, sub in list(child.named_children()):
            if isinstance(sub, nn.modules.batchnorm._BatchNorm) and not isinstance(sub, nn.SyncBatchNorm):
                originals[f"{name}.{child_name}" if name else child_name] = type(sub)
                setattr(child, child_name, _swap_class(sub, nn.SyncBatchNorm))
    return originals


def revert_sync_batchnorm(module: nn.Module, originals: dict[str, type[nn.Module]]) -> None:
    """Undo :func:`convert_sync_batchnorm`: the listed layers get their original classes back."""
    for qualified, cls in originals.items():
        parent_name, _, child_name = qualified.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child_name, _swap_class(getattr(parent, child_name), cls))


def _swap_class(layer: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """A new ``cls`` layer with ``layer``'s settings that holds ``layer``'s parameters and buffers."""
    new = cls(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    for name, value in [*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]:
        setattr(new, name, value)
    return new.train(layer.training)
