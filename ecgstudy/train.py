"""The one training engine, shared by pretraining and fine-tuning.

:func:`fit` runs epochs of a caller-supplied loss over a dataset with AdamW, linear warmup + cosine
decay, gradient accumulation, optional bf16 autocast, a tqdm bar with samples/s, per-epoch validation and
best-epoch selection / early stopping on the validation metrics only (the test split never reaches it).
It returns (and optionally writes as CSV for ``dvc plots``) one metrics row per epoch.

The caller decides what a step computes: ``loss_fn(model, batch) -> (loss, logs)``; pretraining objectives
and the supervised BCE of fine-tuning are both such functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm  # text bar: readable in papermill's executed notebooks and logs

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training run (a nested section of the stage configs)."""

    epochs: int = 10  # passes over the training set (upper bound when early stopping)
    min_steps: int = 0  # at least this many optimizer steps: small label fractions get more epochs
    batch_size: int = 64  # samples per forward pass
    grad_accum: int = 1  # forward passes per optimizer step (effective batch = batch_size x grad_accum)
    lr: float = 1e-3  # peak learning rate after warmup
    weight_decay: float = 0.01  # AdamW decoupled weight decay (ECG-FM: 0.01)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas (ECG-FM: 0.9, 0.98)
    warmup_frac: float = 0.1  # fraction of all steps with linear warmup from 0
    min_lr_frac: float = 0.01  # cosine decays to this fraction of the peak lr
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    bf16: bool = True  # torch.autocast bf16 (1.5-1.8x faster on this CPU, same loss)
    patience: int = 0  # early stop after this many validations without improvement (0 = never)
    max_evals: int = 0  # validate at most this many times, evenly spaced, last epoch included (0 = every epoch)
    device: str = "auto"  # auto (cuda when available, else cpu) | cpu | cuda
    progress: bool = True  # tqdm bar with samples/s

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("epochs, batch_size and grad_accum must be >= 1")
        if self.lr <= 0 or min(self.weight_decay, self.min_steps, self.patience, self.max_evals) < 0:
            raise ValueError("lr must be > 0; weight_decay, min_steps, patience and max_evals >= 0")
        if not 0 <= self.warmup_frac < 1 or not 0 <= self.min_lr_frac <= 1:
            raise ValueError("warmup_frac must be in [0, 1) and min_lr_frac in [0, 1]")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    history: pd.DataFrame  # one row per epoch: epoch, step, lr, train_loss, <train logs>, <val metrics>, seconds
    best_epoch: int  # epoch whose weights the model holds at the end (last epoch without validation)
    best_score: float  # monitored validation value at best_epoch (nan without validation)
    stopped_early: bool  # patience ran out before cfg.epochs


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(n: int) -> None:
    """Use ``n`` intra-op CPU threads (0 keeps torch's default)."""
    if n > 0:
        torch.set_num_threads(n)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast context on ``device`` (a no-op when disabled)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


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


def _improved(value: float, best: float, mode: str) -> bool:
    if math.isnan(value):
        return False
    return math.isnan(best) or (value < best if mode == "min" else value > best)


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
) -> FitResult:
    """Train ``model`` in place.

    Parameters
    ----------
    model
        Module whose parameters with ``requires_grad`` are optimised (frozen parts stay untouched).
    loss_fn
        ``loss_fn(model, batch) -> (scalar loss, {name: float})``; ``batch`` is the collated dataset
        items moved to the device. Called inside the bf16 autocast context when ``cfg.bf16``.
    train_data
        Dataset of dict items (e.g. :class:`ecgstudy.store.ECGDataset` over the train split).
    cfg
        Optimisation settings.
    seed
        Seeds the shuffling order (a torch Generator) and torch's global RNG (dropout, init of lazily
        built parts); same inputs and seed give the same numbers.
    validate
        ``validate(model) -> {name: float}`` on the VALIDATION split, run after every epoch with the model
        in eval mode and gradients off; its keys join the epoch's row.
    monitor, mode
        Validation key and direction used for best-epoch selection and early stopping; the model ends
        with the weights of the best epoch.
    drop_last
        Drop the last incomplete batch (contrastive objectives need full batches).
    history_csv
        Where to write the per-epoch rows (CSV, for ``dvc plots``).
    """
    device = resolve_device(cfg.device)
    torch.manual_seed(seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("fit: the model has no trainable parameters")
    loader = make_loader(train_data, cfg.batch_size, shuffle=True, seed=seed, drop_last=drop_last)
    if len(loader) == 0:
        raise ValueError("fit: the training set is empty")
    steps_per_epoch = max(len(loader) // cfg.grad_accum, 1)
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    total_steps = epochs * steps_per_epoch
    eval_every = math.ceil(epochs / cfg.max_evals) if cfg.max_evals else 1
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, cfg.warmup_frac, cfg.min_lr_frac)
    )
    rows: list[dict[str, Any]] = []
    best_epoch, best_score, best_state, stale, step = epochs, float("nan"), None, 0, 0
    stopped_early = False
    for epoch in range(1, epochs + 1):
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)  # new random crops each epoch (ECGDataset)
        model.train()
        start = time.perf_counter()
        sums: dict[str, float] = {}
        n_seen = 0
        bar = tqdm(loader, desc=f"{desc} {epoch}/{epochs}", disable=not cfg.progress, leave=False, mininterval=1.0)
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar):
            batch = to_device(batch, device)
            with autocast(device, cfg.bf16):
                loss, logs = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: non-finite loss {loss.item()} at epoch {epoch}, batch {i}")
            (loss / cfg.grad_accum).backward()
            n = next(v.shape[0] for v in batch.values() if torch.is_tensor(v))
            n_seen += n
            for k, v in {"train_loss": float(loss.detach()), **logs}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            if (i + 1) % cfg.grad_accum == 0 or i + 1 == len(loader):
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if step < total_steps:
                    scheduler.step()
                step += 1
            bar.set_postfix(loss=f"{sums['train_loss'] / n_seen:.4f}", sps=f"{n_seen / (time.perf_counter() - start):.0f}")
        bar.close()
        train_seconds = time.perf_counter() - start
        row: dict[str, Any] = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"]}
        row.update({k: v / max(n_seen, 1) for k, v in sums.items()})
        row["samples_per_s"] = n_seen / max(train_seconds, 1e-9)
        evaluate_now = validate is not None and (epoch % eval_every == 0 or epoch == epochs)
        if evaluate_now:
            model.eval()
            with torch.no_grad():
                row.update(validate(model))
            if monitor not in row:
                raise KeyError(f"{desc}: monitored key {monitor!r} not among validation keys {sorted(row)}")
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if evaluate_now:
            score = float(row[monitor])
            if _improved(score, best_score, mode):
                best_epoch, best_score, stale = epoch, score, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if cfg.patience and stale >= cfg.patience and epoch < epochs:
                    stopped_early = True
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(rows)
    model.eval()
    history = pd.DataFrame(rows)
    if history_csv is not None:
        Path(history_csv).parent.mkdir(parents=True, exist_ok=True)
        history.to_csv(history_csv, index=False)
    return FitResult(history=history, best_epoch=best_epoch, best_score=best_score, stopped_early=stopped_early)


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
