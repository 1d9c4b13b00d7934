"""Self-supervised pretraining stage: an encoder learns from unlabelled training-split records.

- :mod:`ecgstudy.pretrain.augment`: ECG augmentations (crop, scale, baseline, noise, random lead masking)
- :mod:`ecgstudy.pretrain.objectives`: objectives by name (``cmsc``: CMSC + RLM), registry for more

:func:`run_pretrain` is the stage: it reads the curated store, trains the encoder with the shared engine
(:func:`ecgstudy.train.fit`) on the train split, selects the epoch with the lowest validation loss (the
validation split, never test), and writes ``encoder.pt`` (weights + config + preprocessing spec) and the
per-epoch curve. Batch-norm statistics are then re-estimated on whole, un-augmented training records
(pretraining showed the encoder lead-masked segments), so frozen-encoder uses see matching statistics.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ecgstudy.models import build_encoder, count_parameters
from ecgstudy.models.checkpoint import preprocessing_spec, save_checkpoint
from ecgstudy.pretrain.augment import AugmentConfig
from ecgstudy.pretrain.objectives import OBJECTIVES, ObjectiveContext, build_objective
from ecgstudy.train import (
    TrainConfig,
    autocast,
    fit,
    make_loader,
    recalibrate_batchnorm,
    resolve_device,
    set_threads,
    to_device,
)

_SPLITS = ("train", "val", "test", "external")


@dataclass(frozen=True)
class PretrainConfig:
    """params.yaml ``pretrain`` section."""

    store: str = "main"  # store folder under data.curated
    arch: str = "net1d"  # encoder architecture (ecgstudy.models.ENCODERS)
    preset: str = "tiny"  # encoder size: tiny (~0.6 M params) fits the 2-core CPU budget
    objective: str = "cmsc"  # pretraining objective (ecgstudy.pretrain.objectives.OBJECTIVES)
    segment_s: float = 4.0  # CMSC segment length in s (ECG-FM: 5 s; 4 s leaves room for a random start in 10 s)
    temperature: float = 0.1  # InfoNCE temperature (ECG-FM: 0.1)
    proj_hidden: int = 256  # projection head hidden units
    proj_dim: int = 128  # projection output size (0 = contrast pooled embeddings directly, as ECG-FM)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # per-segment augmentations + RLM
    splits: list[str] = field(default_factory=lambda: ["train"])  # records pretrained on (never test)
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=30, batch_size=128, lr=2e-3, warmup_frac=0.05, patience=0)
    )  # 30 epochs x ~2,000 records x 2 segments of 4 s: about 80 s on 2 cores with bf16
    recalibrate_bn: bool = True  # re-estimate batch-norm statistics on un-augmented train records at the end
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r} unknown; objectives: {sorted(OBJECTIVES)}")
        bad = [s for s in self.splits if s not in _SPLITS]
        if bad or not self.splits:
            raise ValueError(f"splits {self.splits} must be a non-empty subset of {list(_SPLITS)}")
        if "test" in self.splits:
            raise ValueError("pretraining on the test split would leak it into every downstream evaluation")
        if self.segment_s <= 0 or self.temperature <= 0:
            raise ValueError("segment_s and temperature must be > 0")


@dataclass
class PretrainResult:
    """What :func:`run_pretrain` returns."""

    history: pd.DataFrame  # per-epoch rows (train_loss, train top1, val_loss, val_top1, lr, samples_per_s)
    checkpoint: Path  # the saved encoder
    metrics: dict[str, Any]  # headline numbers for reports/metrics/pretrain.json


def _loss_on(objective, encoder, dataset, batch_size: int, seed: int, device: torch.device, bf16: bool) -> dict[str, float]:
    """Objective loss and top-1 over a dataset with a fixed generator (comparable across epochs)."""
    generator = torch.Generator().manual_seed(seed)
    loader = make_loader(dataset, batch_size, shuffle=False, seed=seed, drop_last=True)
    total, acc, n = 0.0, 0.0, 0
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device, bf16):
            loss, logs = objective(encoder, batch, generator)
        total += float(loss) * len(batch["x"])
        acc += logs.get("top1", float("nan")) * len(batch["x"])
        n += len(batch["x"])
    return {"val_loss": total / max(n, 1), "val_top1": acc / max(n, 1)}


def run_pretrain(
    cfg: PretrainConfig,
    store_dir: str | Path,
    models_dir: str | Path,
    *,
    seed: int,
    history_csv: str | Path | None = None,
) -> PretrainResult:
    """Pretrain an encoder on the store's ``cfg.splits`` and save it as ``<models_dir>/encoder.pt``.

    Parameters
    ----------
    cfg
        The pretrain section.
    store_dir
        Curated store (contract 2) with signals (N, 12, T) at fs Hz.
    models_dir
        Folder for ``encoder.pt``.
    seed
        Seeds the encoder init, shuffling and every augmentation draw.
    history_csv
        Where to write the per-epoch curve (for ``dvc plots``).
    """
    from ecgstudy.store import ECGDataset, Store  # the store module is its own engineer's

    set_threads(cfg.num_threads)
    store = Store(store_dir)
    indices = store.indices(list(cfg.splits))
    val_indices = store.indices("val")
    if len(indices) == 0:
        raise ValueError(f"{store_dir}: no records in split(s) {cfg.splits}")
    train_set = ECGDataset(store, indices)
    val_set = ECGDataset(store, val_indices) if len(val_indices) and "val" not in cfg.splits else None

    torch.manual_seed(seed)
    encoder = build_encoder(cfg.arch, cfg.preset, n_leads=len(store.meta["leads"]))
    context = ObjectiveContext(fs=float(store.fs), n_samples=int(store.meta["n_samples"]))
    objective = build_objective(cfg.objective, cfg, encoder.embed_dim, context)
    if objective.needs_labels:
        raise ValueError(f"objective {cfg.objective!r} needs labels; the pretrain stage feeds unlabelled records")
    model = torch.nn.ModuleDict({"encoder": encoder, "objective": objective})
    device = resolve_device(cfg.optim.device)
    generator = torch.Generator().manual_seed(seed + 1)

    def loss_fn(m, batch):
        return m["objective"](m["encoder"], batch, generator)

    def validate(m):
        return _loss_on(m["objective"], m["encoder"], val_set, cfg.optim.batch_size, seed + 2, device, cfg.optim.bf16)

    start = time.perf_counter()
    result = fit(
        model,
        loss_fn,
        train_set,
        cfg.optim,
        seed=seed,
        validate=validate if val_set is not None else None,
        monitor="val_loss",
        mode="min",
        drop_last=True,
        history_csv=history_csv,
        desc="pretrain",
    )
    encoder = model["encoder"]
    if cfg.recalibrate_bn:  # statistics of augmented, lead-masked segments -> of whole records
        recalibrate_batchnorm(
            encoder, lambda b: encoder.embed(b["x"], b["lead_mask"].bool()), train_set,
            batch_size=cfg.optim.batch_size, device=device, bf16=cfg.optim.bf16,
        )
    seconds = time.perf_counter() - start
    encoder = encoder.cpu().eval()
    checkpoint = save_checkpoint(
        Path(models_dir) / "encoder.pt",
        encoder,
        config={**dataclasses.asdict(cfg), "seed": seed},
        preprocessing=preprocessing_spec(store.meta),
        labels=[],
        extra={"best_epoch": result.best_epoch, "best_val_loss": result.best_score, "n_train": len(indices)},
    )
    last = result.history.iloc[-1]
    metrics = {
        "objective": cfg.objective,
        "encoder": f"{cfg.arch}-{cfg.preset}",
        "n_params": count_parameters(encoder),
        "n_train_records": int(len(indices)),
        "epochs_run": int(len(result.history)),
        "best_epoch": int(result.best_epoch),
        "best_val_loss": result.best_score,
        "final_train_loss": float(last["train_loss"]),
        "train_samples_per_s": float(result.history["samples_per_s"].mean()),
        "seconds": seconds,
    }
    if "val_top1" in result.history:
        metrics["best_val_top1"] = float(result.history.loc[result.history["epoch"] == result.best_epoch, "val_top1"].iloc[0])
    return PretrainResult(history=result.history, checkpoint=checkpoint, metrics=metrics)
