"""The one training engine, shared by pretraining and fine-tuning.

:func:`fit` runs epochs of a caller-supplied loss over a dataset with AdamW, linear warmup + cosine
decay, gradient accumulation, optional bf16 autocast, a tqdm bar with samples/s, per-epoch validation and
best-epoch selection / early stopping on the validation metrics only (the test split never reaches it).
It returns (and optionally writes as CSV for ``dvc plots``) one metrics row per epoch.

The caller decides what a step computes: ``loss_fn(model, batch) -> (loss, logs)``; pretraining objectives
and the supervised BCE of fine-tuning are both such functions. The pieces of the loop (resume, one epoch,
validation, state file) are in :mod:`ecgstudy.engine.loop`.

Data-parallel training: the same call runs on N processes when the script is started with
``torchrun --nproc_per_node N script.py ...`` (one process per GPU, or N CPU processes). Each process
draws ``cfg.batch_size`` samples per forward pass from its own shard of the epoch's permutation, so the
global batch is ``batch_size x world_size x grad_accum`` samples per optimizer step and the gradients are
averaged over all of them (DistributedDataParallel). Logged train metrics are averaged over all samples
of all processes; validation, the history CSV and the state file are rank 0's, and the best-epoch and
early-stopping decisions are shared, so all processes stop together with identical weights. An error in
one process ends the run (torchrun stops the others). See :mod:`ecgstudy.engine.distributed` for batch norm
under DDP.

Resuming: with ``state_path`` set, the training state is saved after every epoch; rerunning the same
command continues after the last completed epoch and ends with bit-identical weights and history
(same machine, same world size). Delete the file to start over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ecgstudy.engine import distributed, loop
from ecgstudy.engine.loop import Batch, LossFn, autocast, to_device  # autocast, to_device: public here too

# salts of distributed.mix_seed: the epoch permutations and the per-rank random streams never share a seed
_SALT_SHUFFLE, _SALT_RANK = 1, 2


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training run (a nested section of the stage configs)."""

    epochs: int = 10  # passes over the training set (upper bound when early stopping)
    min_steps: int = 0  # at least this many optimizer steps: small label fractions get more epochs
    max_steps: int = 0  # stop after exactly this many optimizer steps, mid-epoch if need be (0 = no cap; matched compute)
    batch_size: int = 64  # samples per forward pass and process (global batch = batch_size x processes x grad_accum)
    grad_accum: int = 1  # forward passes per optimizer step (effective batch = batch_size x grad_accum per process)
    lr: float = 1e-3  # peak learning rate after warmup
    weight_decay: float = 0.01  # AdamW decoupled weight decay (ECG-FM: 0.01)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas (ECG-FM: 0.9, 0.98)
    warmup_frac: float = 0.1  # fraction of all steps with linear warmup from 0
    min_lr_frac: float = 0.01  # cosine decays to this fraction of the peak lr
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    bf16: bool = False  # torch.autocast bf16: fp32 by default (bf16 is ~6x slower on CPUs without native bf16, e.g. AVX2-only); the full (GPU) profile turns it on
    patience: int = 0  # early stop after this many validations without improvement (0 = never)
    max_evals: int = 0  # validate at most this many times, evenly spaced, last epoch included (0 = every epoch)
    device: str = "auto"  # auto (cuda when available, else cpu) | cpu | cuda (under torchrun: cuda:LOCAL_RANK)
    progress: bool = True  # tqdm bar with samples/s (rank 0 only)

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("epochs, batch_size and grad_accum must be >= 1")
        if self.lr <= 0 or min(self.weight_decay, self.min_steps, self.max_steps, self.patience, self.max_evals) < 0:
            raise ValueError("lr must be > 0; weight_decay, min_steps, max_steps, patience and max_evals >= 0")
        if self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(f"min_steps {self.min_steps} exceeds max_steps {self.max_steps}")
        if not 0 <= self.warmup_frac < 1 or not 0 <= self.min_lr_frac <= 1:
            raise ValueError("warmup_frac must be in [0, 1) and min_lr_frac in [0, 1]")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


#: The history's wall-clock columns (per epoch): kept in :attr:`FitResult.history`, left out of the history CSV,
#: which is a DVC output and must be byte-identical when the same training is run again.
TIMING_COLUMNS = ("samples_per_s", "seconds")


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    history: pd.DataFrame  # one row per epoch: epoch, step, lr, train_loss, <train logs>, <val metrics>, seconds
    best_epoch: int  # epoch whose weights the model holds at the end (last epoch without validation)
    best_score: float  # monitored validation value at best_epoch (nan without validation)
    stopped_early: bool  # patience ran out before cfg.epochs
    resumed_after: int = 0  # epochs restored from the state file (0 = trained from the start)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(n: int) -> None:
    """Use ``n`` intra-op CPU threads (0 keeps torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


def warmup_cosine(step: int, total: int, warmup_frac: float, min_lr_frac: float) -> float:
    """Learning-rate multiplier at optimizer ``step`` of ``total``: linear warmup, then cosine decay."""
    warmup = int(round(warmup_frac * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool = False) -> DataLoader:
    """Single-process loader; shuffling draws from a torch Generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    drop_last = drop_last and len(dataset) > batch_size  # never drop the only batch of a tiny set
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)


class EpochShards(DistributedSampler):
    """Training order of :func:`fit`: a fresh permutation every epoch, sharded over processes.

    The permutation of epoch ``e`` is drawn from a generator seeded with a mix of ``seed`` and ``e``
    (:func:`ecgstudy.engine.distributed.mix_seed`; unlike ``seed + e``, seeds s and s + 1 do not share orders).
    Process ``r`` of ``W`` takes positions r, r + W, r + 2W, ... of it, padded by repetition (or, with
    ``drop_last``, cut) to a multiple of W. Global step k of W processes with batch b therefore covers
    the same samples as step k of one process with batch W*b. Call :meth:`set_epoch` before each epoch;
    the order depends on nothing else, so a resumed run sees the same order.
    """

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(distributed.mix_seed(self.seed, _SALT_SHUFFLE, self.epoch))
        order = torch.randperm(n, generator=g).tolist()
        if self.total_size > n:
            order += (order * math.ceil(self.total_size / n))[: self.total_size - n]
        return iter(order[: self.total_size][self.rank :: self.num_replicas])


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Dataset,
    cfg: TrainConfig,
    *,
    seed: int,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    monitor: str = "val_loss",
    mode: Literal["min", "max"] = "min",
    drop_last: bool = False,
    history_csv: str | Path | None = None,
    desc: str = "train",
    state_path: str | Path | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    sync_batchnorm: bool = True,
) -> FitResult:
    """Train ``model`` in place, in one process or data-parallel under torchrun.

    Parameters
    ----------
    model
        Module whose parameters with ``requires_grad`` are optimised (frozen parts stay untouched).
    loss_fn
        ``loss_fn(model, batch) -> (scalar loss, {name: float})``; ``batch`` is the collated dataset
        items moved to the device. Called inside the bf16 autocast context when ``cfg.bf16``. Under DDP
        it receives the plain model (not the wrapper) and may call any of its methods.
    train_data
        Dataset of dict items (e.g. :class:`ecgstudy.data.store.ECGDataset` over the train split); its
        ``set_epoch(epoch)``, when present, is called before every epoch (new random crops).
    cfg
        Optimisation settings; ``cfg.batch_size`` is per process (see the module docstring).
    seed
        Seeds the epoch permutations (:class:`EpochShards`) and torch's global RNG (dropout, init of
        lazily built parts); same inputs, seed and number of processes give the same numbers.
    validate
        ``validate(model) -> {name: float}`` on the VALIDATION split, run after every epoch (or as
        ``cfg.max_evals`` spaces it) with the model in eval mode and gradients off; its keys join the
        epoch's row. Under DDP it runs on rank 0 only and must not use collective operations.
    monitor, mode
        Validation key and direction used for best-epoch selection and early stopping; the model ends
        with the weights of the best epoch.
    drop_last
        Drop the last incomplete batch (contrastive objectives need full batches).
    history_csv
        Where to write the per-epoch rows without their wall-clock columns (CSV, for ``dvc plots``; rank 0 only).
    desc
        Label of the progress bar and of error messages.
    state_path
        Training-state file (see :mod:`ecgstudy.engine.state`). After every epoch rank 0 rewrites it
        atomically with the model, optimizer and scheduler states, step, history rows, best epoch /
        score / weights, early-stopping counter, and the RNG states of every process (torch, numpy,
        python and ``generators``). If it exists when fit starts, its fingerprint must equal this call's
        (else ValueError listing the differing keys: it never overwrites another run's state silently),
        and training continues after its last epoch; a completed run returns its result without training.
        The file is kept at the end; delete it to train from the start.
    generators
        The torch Generators that ``loss_fn`` draws from (e.g. an objective's crops and masks), by name.
        Their states are saved and restored with the state file. Under DDP, rank r > 0 reseeds each from
        a mix of its seed and r, so ranks draw differently (rank 0 keeps the caller's stream).
    fingerprint
        Extra plain values identifying the run (e.g. the stage config, the data version); joins the
        fingerprint beside the TrainConfig (``progress`` excluded), seed, world size, training-set size,
        monitor, mode, drop_last and the generator names.
    on_epoch_end
        Called on every process with the epoch's row after the state file is written; an exception
        raised there stops training (the tests use it to simulate an interruption).
    sync_batchnorm
        Under DDP on CUDA, convert batch norm to :class:`torch.nn.SyncBatchNorm` for the run (converted
        back at the end), so N processes x batch b normalise like 1 process x batch N*b. Not available
        on CPU (see :mod:`ecgstudy.engine.distributed`).
    """
    engine = _prepare(model, train_data, cfg, seed=seed, drop_last=drop_last, desc=desc,
                      generators=generators, sync_batchnorm=sync_batchnorm)
    run, run_id = loop.RunState(best_epoch=engine.epochs), None
    if state_path is not None:
        run_id = loop.run_fingerprint(engine, seed=seed, monitor=monitor, mode=mode, drop_last=drop_last,
                                      caller=fingerprint)
        run = loop.open_state(engine, state_path, run_id)
    loop.wrap_model(engine, loss_fn)
    show_bar = cfg.progress and engine.group.is_main
    for epoch in range(run.done + 1, engine.epochs + 1):
        if run.stopped_early:
            break
        row, start = loop.train_one_epoch(engine, run, epoch, show_bar)
        row, validated = loop.validate_epoch(engine, epoch, row, start, validate, monitor)
        run.rows.append(row)
        if validated:
            loop.update_best(engine, run, epoch, row, monitor, mode)
        if state_path is not None:
            loop.save_state(engine, run, state_path, run_id, epoch)  # type: ignore[arg-type]
        if on_epoch_end is not None:
            on_epoch_end(row)
    return _finish(engine, run, history_csv)


def _prepare(
    model: nn.Module,
    train_data: Dataset,
    cfg: TrainConfig,
    *,
    seed: int,
    drop_last: bool,
    desc: str,
    generators: Mapping[str, torch.Generator] | None,
    sync_batchnorm: bool,
) -> loop.Engine:
    """Device, process group, seeding, sampler and loader, optimizer and schedule of a :func:`fit` call."""
    device = resolve_device(cfg.device)
    group = distributed.init(device.type)
    if group.enabled and device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
    generators = dict(generators or {})
    torch.manual_seed(seed)
    use_sync_bn = sync_batchnorm and group.enabled and device.type == "cuda"  # CPU: see ecgstudy.engine.distributed
    synced = distributed.convert_sync_batchnorm(model) if use_sync_bn else {}
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("fit: the model has no trainable parameters")
    sampler = EpochShards(train_data, group.world_size, group.rank, shuffle=True, seed=seed, drop_last=drop_last)
    loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler,
                        drop_last=drop_last and len(sampler) > cfg.batch_size)  # never drop the only batch
    if len(loader) == 0:
        raise ValueError("fit: the training set is empty")
    steps_per_epoch = max(len(loader) // cfg.grad_accum, 1)
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    total_steps = epochs * steps_per_epoch
    if cfg.max_steps:  # a fixed number of optimizer steps whatever the dataset size (the last epoch may be partial)
        epochs, total_steps = math.ceil(cfg.max_steps / steps_per_epoch), cfg.max_steps
    eval_every = math.ceil(epochs / cfg.max_evals) if cfg.max_evals else 1
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, cfg.warmup_frac, cfg.min_lr_frac)
    )
    if group.rank > 0:  # independent dropout and objective draws per process, deterministic per rank
        torch.manual_seed(distributed.mix_seed(seed, _SALT_RANK, group.rank))
        for g in generators.values():
            g.manual_seed(distributed.mix_seed(g.initial_seed(), _SALT_RANK, group.rank))
    return loop.Engine(
        model=model, data=train_data, cfg=cfg, desc=desc, device=device, group=group, generators=generators,
        synced=synced, params=params, sampler=sampler, loader=loader, optimizer=optimizer, scheduler=scheduler,
        epochs=epochs, total_steps=total_steps, eval_every=eval_every,
    )


def _finish(engine: loop.Engine, run: loop.RunState, history_csv: str | Path | None) -> FitResult:
    """Best weights into the model (original batch norm back), eval mode, history (CSV on rank 0)."""
    model = engine.model
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    else:
        run.best_epoch = len(run.rows)
    if engine.synced:
        distributed.revert_sync_batchnorm(model, engine.synced)
    model.eval()
    history = pd.DataFrame(run.rows)
    if history_csv is not None and engine.group.is_main:
        Path(history_csv).parent.mkdir(parents=True, exist_ok=True)
        history.drop(columns=[c for c in TIMING_COLUMNS if c in history]).to_csv(history_csv, index=False)
    return FitResult(history=history, best_epoch=run.best_epoch, best_score=run.best_score,
                     stopped_early=run.stopped_early, resumed_after=run.done)


@torch.no_grad()
def recalibrate_batchnorm(
    module: nn.Module,
    forward: Callable[[Batch], torch.Tensor],
    dataset: Dataset,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    bf16: bool = True,
) -> int:
    """Re-estimate the batch-norm running statistics of ``module`` on ``dataset``; returns the layers reset.

    Pretraining feeds augmented inputs (random lead masking zeroes about half the leads, segments are
    shorter), so the running statistics it leaves describe inputs that downstream use never shows. One
    pass without gradients, in train mode with a cumulative average (momentum None), over un-augmented
    records makes a frozen encoder's features match its real inputs. Weights are not changed.
    """
    device = torch.device(device) if isinstance(device, str) else device
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average over all batches of the pass
    was_training = module.training
    module.to(device).train()
    for batch in make_loader(dataset, batch_size, shuffle=False, seed=0):
        with autocast(device, bf16):
            forward(to_device(batch, device))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    module.train(was_training)
    return len(layers)


@torch.no_grad()
def predict(
    forward: Callable[[Batch], torch.Tensor],
    dataset: Dataset,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    bf16: bool = True,
    keys: Iterable[str] = ("y",),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``forward(batch) -> (B, K)`` over a dataset in order (no shuffling, no gradients).

    Returns
    -------
    (outputs float32 (N, K), {key: stacked dataset field (N, ...)} for the requested ``keys``)
    """
    device = torch.device(device) if isinstance(device, str) else device
    loader = make_loader(dataset, batch_size, shuffle=False, seed=0)
    outputs, fields = [], {k: [] for k in keys}
    for batch in loader:
        for k in fields:
            fields[k].append(batch[k].numpy())
        batch = to_device(batch, device)
        with autocast(device, bf16):
            out = forward(batch)
        outputs.append(out.float().cpu().numpy())
    if not outputs:
        raise ValueError("predict: the dataset is empty")
    return np.concatenate(outputs), {k: np.concatenate(v) for k, v in fields.items()}
