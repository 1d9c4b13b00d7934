"""The pieces of :func:`ecgstudy.engine.train.fit`: run state, resume, one epoch, validation, state file.

``fit`` sets up an :class:`Engine` (device, process group, sampler, loader, optimizer, schedule), then runs

1. :func:`open_state`: a fresh :class:`RunState`, or the one of the training-state file (resume);
2. :func:`wrap_model`: the loss step behind one forward, in DistributedDataParallel under torchrun;
3. per epoch: :func:`train_one_epoch` (its metrics row), :func:`validate_epoch` (validation metrics and
   timing), :func:`update_best` (best epoch, early stopping), :func:`save_state` (the state file);

and finishes by loading the best weights. Every call that draws random numbers (seeding, epoch
permutations, dataset crops, dropout, objectives' generators) happens in one fixed order, so the same
inputs give bit-identical weights and history, also across an interruption and resume.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ecgstudy.engine import distributed, state as train_state
from ecgstudy.progress import tqdm  # widget bar in JupyterLab; plain text under papermill, dvc repro, CI

if TYPE_CHECKING:
    from ecgstudy.engine.train import TrainConfig

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]]


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast context on ``device`` (a no-op when disabled)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class LossStep(nn.Module):
    """``forward(batch) = loss_fn(model, batch)``: puts the whole step behind one forward for DDP."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_fn(self.model, batch)


@dataclass
class Engine:
    """What one :func:`fit` call trains with; built once before the first epoch."""

    model: nn.Module
    data: Dataset
    cfg: TrainConfig
    desc: str  # label of the progress bar and of error messages
    device: torch.device
    group: distributed.DistInfo
    generators: dict[str, torch.Generator]
    synced: dict[str, type[nn.Module]]  # batch-norm layers converted to SyncBatchNorm for the run
    params: list[nn.Parameter]
    sampler: DistributedSampler
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    epochs: int  # last epoch (cfg.epochs, or more for cfg.min_steps)
    total_steps: int  # optimizer steps of the whole schedule
    eval_every: int  # validate every this many epochs (and at the last)
    runner: nn.Module | None = None  # LossStep, or its DDP wrapper (set by wrap_model)


@dataclass
class RunState:
    """Progress of a run: what the state file carries from one epoch to the next."""

    best_epoch: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # history rows of the completed epochs
    step: int = 0  # optimizer steps so far
    best_score: float = float("nan")
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best epoch (None before validation)
    stale: int = 0  # validations since the last improvement
    stopped_early: bool = False
    done: int = 0  # epochs restored from the state file


def run_fingerprint(
    engine: Engine, *, seed: int, monitor: str, mode: str, drop_last: bool, caller: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The values a state file must share with this call to be resumed by it."""
    return train_state.fingerprint({
        "train": {k: v for k, v in asdict(engine.cfg).items() if k != "progress"},
        "seed": seed, "world_size": engine.group.world_size, "n_train": len(engine.data),  # type: ignore[arg-type]
        "monitor": monitor, "mode": mode, "drop_last": drop_last, "generators": sorted(engine.generators),
        "caller": dict(caller or {}),
    })


def open_state(engine: Engine, state_path: str | Path, run_id: Mapping[str, Any]) -> RunState:
    """A fresh :class:`RunState`, or the saved one with model, optimizer, schedule and RNGs restored."""
    run = RunState(best_epoch=engine.epochs)
    if not Path(state_path).exists():
        return run
    state = train_state.load(state_path)
    differ = train_state.mismatches(state["fingerprint"], run_id)
    if differ:
        raise ValueError(
            f"{state_path}: saved training state belongs to another run; differing keys: "
            + "; ".join(differ) + ". Delete the file to train from the start."
        )
    try:
        engine.model.load_state_dict(state["model"])
        engine.optimizer.load_state_dict(state["optimizer"])
        engine.scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise train_state.TrainStateError(f"{state_path}: does not fit this model: {exc}") from exc
    run.rows, run.step, run.stale = list(state["rows"]), state["step"], state["stale"]
    run.stopped_early, run.best_epoch = state["stopped_early"], state["best_epoch"]
    run.best_score, run.best_state = state["best_score"], state["best_state"]
    train_state.set_rng_state(state["rng"][engine.group.rank], engine.generators, engine.device)
    run.done = int(state["epoch"])
    return run


def wrap_model(engine: Engine, loss_fn: LossFn) -> None:
    """Set ``engine.runner``: the loss step, in DistributedDataParallel when several processes train."""
    step_module = LossStep(engine.model, loss_fn)
    engine.runner = step_module
    if engine.group.enabled:
        device_ids = [engine.device.index] if engine.device.type == "cuda" else None
        engine.runner = DistributedDataParallel(step_module, device_ids=device_ids)


def train_one_epoch(engine: Engine, run: RunState, epoch: int, show_bar: bool) -> tuple[dict[str, Any], float]:
    """One pass over the epoch's shard; returns its training row and the epoch's start time."""
    cfg, group, loader, optimizer = engine.cfg, engine.group, engine.loader, engine.optimizer
    engine.sampler.set_epoch(epoch)
    if hasattr(engine.data, "set_epoch"):
        engine.data.set_epoch(epoch)  # new random crops each epoch (ECGDataset)
    engine.model.train()
    start = time.perf_counter()
    sums: dict[str, float] = {}
    n_seen = 0
    optimizer.zero_grad(set_to_none=True)
    # Every DataLoader iterator draws a seed from torch's global RNG when created, and some bars call iter() on
    # a wrapped iterable as soon as they are built (tqdm.auto's): the bar gets the epoch's one iterator.
    batches = iter(loader)
    bar = tqdm(batches, total=len(loader), desc=f"{engine.desc} {epoch}/{engine.epochs}", disable=not show_bar,
               leave=False, mininterval=1.0)
    for i, batch in enumerate(bar):
        batch = to_device(batch, engine.device)
        boundary = (i + 1) % cfg.grad_accum == 0 or i + 1 == len(loader)
        loss, logs = _forward_backward(engine, batch, boundary, f"epoch {epoch}, batch {i}")
        n = next(v.shape[0] for v in batch.values() if torch.is_tensor(v))
        n_seen += n
        for k, v in {"train_loss": float(loss.detach()), **logs}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        if boundary:
            _optimizer_step(engine, run)
            if cfg.max_steps and run.step >= cfg.max_steps:
                break  # the step budget is spent (matched compute): the last epoch stops here
        if show_bar:
            sps = n_seen / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{sums['train_loss'] / n_seen:.4f}", sps=f"{sps:.0f}")
    bar.close()
    if group.enabled:
        n_seen, sums = _reduce_over_processes(engine, n_seen, sums)
    train_seconds = time.perf_counter() - start
    row: dict[str, Any] = {"epoch": epoch, "step": run.step, "lr": optimizer.param_groups[0]["lr"]}
    row.update({k: v / max(n_seen, 1) for k, v in sums.items()})
    row["samples_per_s"] = n_seen / max(train_seconds, 1e-9)
    return row, start


def _forward_backward(
    engine: Engine, batch: Batch, boundary: bool, where: str
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one forward pass and its (accumulated) gradients; raises on a non-finite loss."""
    cfg, group, runner = engine.cfg, engine.group, engine.runner
    assert runner is not None, "wrap_model first"
    # accumulate locally between optimizer steps; gradients are averaged over processes at a step
    sync = runner.no_sync() if group.enabled and not boundary else contextlib.nullcontext()
    with sync:
        with autocast(engine.device, cfg.bf16):
            loss, logs = runner(batch)
        if not torch.isfinite(loss):
            where += f", rank {group.rank}" if group.enabled else ""
            raise FloatingPointError(f"{engine.desc}: non-finite loss {loss.item()} at {where}")
        (loss / cfg.grad_accum).backward()
    return loss, logs


def _optimizer_step(engine: Engine, run: RunState) -> None:
    """Clip, step, zero the gradients and advance the schedule (it stays at its end after total_steps)."""
    if engine.cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(engine.params, engine.cfg.grad_clip)
    engine.optimizer.step()
    engine.optimizer.zero_grad(set_to_none=True)
    if run.step < engine.total_steps:
        engine.scheduler.step()
    run.step += 1


def _reduce_over_processes(engine: Engine, n_seen: int, sums: dict[str, float]) -> tuple[int, dict[str, float]]:
    """Sample-weighted sums over every process; rank 0's batch-norm statistics everywhere."""
    keys = sorted(sums)
    if any(other != keys for other in distributed.gather_objects(keys)):
        raise ValueError(f"{engine.desc}: loss_fn logged different keys on different processes")
    n_seen, *totals = distributed.all_reduce_sum([n_seen, *(sums[k] for k in keys)], engine.device)
    sums = dict(zip(keys, totals))
    distributed.broadcast_buffers(engine.model)
    return n_seen, sums


def validate_epoch(
    engine: Engine,
    epoch: int,
    row: dict[str, Any],
    start: float,
    validate: Callable[[nn.Module], dict[str, float]] | None,
    monitor: str,
) -> tuple[dict[str, Any], bool]:
    """Complete the epoch's row with validation metrics (when due) and timing; returns (row, validated).

    Validation runs on rank 0; the finished row is rank 0's on every process.
    """
    group = engine.group
    evaluate_now = validate is not None and (epoch % engine.eval_every == 0 or epoch == engine.epochs)
    if evaluate_now:
        metrics: dict[str, Any] | None = None
        if group.is_main:
            engine.model.eval()
            with torch.no_grad():
                metrics = train_state.plain(validate(engine.model), "validation metrics")  # type: ignore[misc]
        row.update(distributed.broadcast_object(metrics) if group.enabled else metrics)
        if monitor not in row:
            raise KeyError(f"{engine.desc}: monitored key {monitor!r} not among validation keys {sorted(row)}")
    row["seconds"] = time.perf_counter() - start
    row = train_state.plain(row, "history row")
    if group.enabled:
        row = distributed.broadcast_object(row)  # one history on every process (rank 0's timings)
    return row, evaluate_now


def _improved(value: float, best: float, mode: str) -> bool:
    if math.isnan(value):
        return False
    return math.isnan(best) or (value < best if mode == "min" else value > best)


def update_best(engine: Engine, run: RunState, epoch: int, row: dict[str, Any], monitor: str, mode: str) -> None:
    """Best-epoch selection on the monitored value of a validated epoch, and the early-stopping counter."""
    score = float(row[monitor])
    if _improved(score, run.best_score, mode):
        run.best_epoch, run.best_score, run.stale = epoch, score, 0
        run.best_state = {k: v.detach().clone() for k, v in engine.model.state_dict().items()}
    else:
        run.stale += 1
        run.stopped_early = bool(engine.cfg.patience and run.stale >= engine.cfg.patience and epoch < engine.epochs)


def save_state(engine: Engine, run: RunState, state_path: str | Path, run_id: Mapping[str, Any], epoch: int) -> None:
    """Rank 0 writes the state file after ``epoch`` with every process's RNG states; all wait for it."""
    group = engine.group
    rng = train_state.rng_state(engine.generators, engine.device)
    rngs = distributed.gather_objects(rng) if group.enabled else [rng]
    if group.is_main:
        train_state.save(state_path, {
            "fingerprint": run_id, "epoch": epoch, "step": run.step, "rows": run.rows,
            "best_epoch": run.best_epoch, "best_score": run.best_score, "best_state": run.best_state,
            "stale": run.stale, "stopped_early": run.stopped_early, "model": engine.model.state_dict(),
            "optimizer": engine.optimizer.state_dict(), "scheduler": engine.scheduler.state_dict(), "rng": rngs,
        })
    if group.enabled:
        distributed.barrier()  # no process goes on (or stops) before the file is complete
