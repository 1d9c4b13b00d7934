"""Heads on encoders, shared by every stage that adapts an encoder to labels.

- :func:`train_full`: fine-tune an encoder + a new linear head end to end (BCE with positive weights);
- :func:`train_probe`: a linear head on cached frozen features, folded back into a :class:`Classifier`;
- :func:`embed_dataset` / :func:`embed_windows`: pooled embeddings (N, D) / (N, W, D) of a store dataset;
- :func:`predict_probs`: per-record probabilities (N, L), whole records or aggregated sliding windows;
- :func:`pos_weights`, :func:`fresh_encoder`: positive weights of a target matrix, a seeded random encoder.

Used by the pretrain stage (probe comparison, supervised objective), fine-tuning and transfer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ecgstudy.engine import evaluate
from ecgstudy.engine.train import FitResult, TrainConfig, fit, predict, resolve_device
from ecgstudy.models import Classifier, encoder_from_spec


class FeatureDataset(Dataset):
    """Cached embeddings ``z`` (N, D) with targets ``y`` (N, L)."""

    def __init__(self, z: np.ndarray, y: np.ndarray):
        self.z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"z": self.z[i], "y": self.y[i]}


def pos_weights(y: np.ndarray, cap: float = 100.0) -> torch.Tensor:
    """BCE positive weights n_neg / n_pos per label (L,), capped; labels without positives get 1."""
    y = np.asarray(y)
    pos = y.sum(axis=0)
    weight = np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0)
    return torch.as_tensor(np.clip(weight, 1.0 / cap, cap), dtype=torch.float32)


def bce_loss(pos_weight: torch.Tensor | None, input_key: str = "x"):
    """Loss function for :func:`ecgstudy.engine.train.fit`: BCE-with-logits of ``model`` on ``batch["y"]``."""

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
        if input_key == "x":
            logits = model(batch["x"], batch["lead_mask"].bool())
        else:
            logits = model(batch[input_key])
        weight = pos_weight.to(logits.device) if pos_weight is not None else None
        return F.binary_cross_entropy_with_logits(logits.float(), batch["y"], pos_weight=weight), {}

    return loss_fn


def logit(p: np.ndarray) -> np.ndarray:
    """float32 log-odds of probabilities (clipped away from 0 and 1): aggregated window scores as logits."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def val_metrics(logits: np.ndarray, y: np.ndarray, pos_weight: torch.Tensor | None) -> dict[str, float]:
    """Validation loss (same weighting as training) and macro AUROC of logits (N, L) vs y (N, L)."""
    loss = F.binary_cross_entropy_with_logits(torch.as_tensor(logits), torch.as_tensor(y), pos_weight=pos_weight)
    auroc = evaluate.macro_fast(y, logits, "auroc")
    return {"val_loss": float(loss), "val_auroc": auroc}


@torch.no_grad()
def embed_dataset(encoder: nn.Module, dataset: Dataset, *, bf16: bool, device: str = "cpu", batch_size: int = 128) -> np.ndarray:
    """Pooled embeddings (N, D) of every item of a store dataset (encoder in eval mode)."""
    encoder.eval().to(device)
    z, _ = predict(lambda b: encoder.embed(b["x"], b["lead_mask"].bool()), dataset, batch_size=batch_size, device=device, bf16=bf16, keys=())
    return z


@torch.no_grad()
def embed_windows(encoder: nn.Module, dataset: Dataset, window: int, stride: int, *, bf16: bool, device: str = "cpu",
                  batch_size: int = 128) -> np.ndarray:
    """Pooled embeddings (N, W, D) of every sliding window of every record of a whole-record store dataset."""
    encoder.eval().to(device)
    return evaluate.window_outputs(lambda b: encoder.embed(b["x"], b["lead_mask"].bool()), dataset, window, stride,
                                   batch_size=batch_size, device=device, bf16=bf16)


def predict_probs(model: nn.Module, dataset: Dataset, windows: tuple[int, int, str] | None, *, device, bf16: bool) -> np.ndarray:
    """Per-record probabilities (N, L) of a classifier: whole records, or sliding ``(window, stride,
    aggregate)`` windows (:func:`ecgstudy.engine.evaluate.predict_windows`)."""
    def forward(b):
        return model(b["x"], b["lead_mask"].bool())

    if windows is None:
        logits, _ = predict(forward, dataset, device=device, bf16=bf16, keys=())
        return 1.0 / (1.0 + np.exp(-logits))
    probs, _ = evaluate.predict_windows(forward, dataset, *windows, device=device, bf16=bf16, keys=())
    return probs


def train_full(
    encoder: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    n_labels: int,
    cfg: TrainConfig,
    *,
    seed: int,
    dropout: float = 0.1,
    pos_weight: torch.Tensor | None = None,
    monitor: str = "val_loss",
    desc: str = "finetune",
    windows: tuple[int, int, str] | None = None,
) -> tuple[Classifier, FitResult]:
    """Fine-tune ``encoder`` + a new linear head end to end.

    With ``val_set`` (whole-record store dataset whose ``y`` are the targets) the best epoch on it is kept;
    without, the weights after the last step. ``windows`` = (window, stride, aggregate): validation
    records are scored by sliding windows (:func:`predict_probs`), as the test records will be.
    """
    torch.manual_seed(seed)
    model = Classifier(encoder, n_labels, dropout=dropout)
    device = resolve_device(cfg.device)

    def validate(m: nn.Module) -> dict[str, float]:
        if windows is None:
            logits, fields = predict(lambda b: m(b["x"], b["lead_mask"].bool()), val_set, device=device, bf16=cfg.bf16)
            return val_metrics(logits, fields["y"], pos_weight)
        probs = predict_probs(m, val_set, windows, device=device, bf16=cfg.bf16)
        return val_metrics(logit(probs), val_set.y, pos_weight)

    mode = "min" if monitor == "val_loss" else "max"
    result = fit(
        model, bce_loss(pos_weight), train_set, cfg, seed=seed,
        validate=validate if val_set is not None else None, monitor=monitor, mode=mode, desc=desc,
    )
    return model.cpu().eval(), result


def train_probe(
    encoder: nn.Module | None,
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_val: np.ndarray | None,
    y_val: np.ndarray | None,
    cfg: TrainConfig,
    *,
    seed: int,
    pos_weight: torch.Tensor | None = None,
    monitor: str = "val_loss",
    val_windows: int = 1,
    val_aggregate: str = "max",
) -> tuple[Classifier, FitResult]:
    """Linear head on frozen features; returns a :class:`Classifier` (frozen ``encoder`` + that head), or
    with ``encoder=None`` the head alone (an ``nn.Linear`` on raw features, for cross-validation).

    ``z_*`` are the encoder's pooled embeddings (N, D) of the records (see :func:`embed_dataset`), ``y_*``
    their targets (N, L); without validation features the head after the last step is kept. With
    ``val_windows`` W > 1, ``z_val`` holds W consecutive window embeddings per record (N_val * W, D) and
    the head's window probabilities are aggregated per record (``val_aggregate``) before scoring. Features are
    standardised with the training set's mean and standard deviation while the head is fitted (so the
    learning rate suits any encoder's feature scale), then the standardisation is folded into the head's
    weights: the returned classifier takes raw signals. The encoder's weights and batch-norm statistics
    are never touched.
    """
    torch.manual_seed(seed)
    mean = z_train.mean(axis=0, keepdims=True)
    std = z_train.std(axis=0, keepdims=True) + 1e-6
    head = nn.Linear(z_train.shape[1], y_train.shape[1])

    def validate(m: nn.Module) -> dict[str, float]:
        z = torch.as_tensor((z_val - mean) / std, dtype=torch.float32)
        logits = m(z).numpy()
        if val_windows > 1:
            probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
            logits = logit(evaluate.aggregate_windows(probs.reshape(-1, val_windows, probs.shape[1]), val_aggregate))
        return val_metrics(logits, y_val, pos_weight)

    mode = "min" if monitor == "val_loss" else "max"
    cfg = dataclasses.replace(cfg, device="cpu")  # a linear layer on cached features: no accelerator needed
    result = fit(
        head, bce_loss(pos_weight, input_key="z"), FeatureDataset((z_train - mean) / std, y_train), cfg, seed=seed,
        validate=validate if z_val is not None else None, monitor=monitor, mode=mode, desc="probe",
    )
    model = Classifier(encoder, y_train.shape[1], freeze_encoder=True) if encoder is not None else None
    folded = model.head if model is not None else nn.Linear(z_train.shape[1], y_train.shape[1])
    with torch.no_grad():  # w.(z - mean)/std + b  ==  (w/std).z + (b - w.(mean/std))
        weight = head.weight / torch.as_tensor(std, dtype=torch.float32)
        folded.weight.copy_(weight)
        folded.bias.copy_(head.bias - (weight * torch.as_tensor(mean, dtype=torch.float32)).sum(dim=1))
    return (model if model is not None else folded).eval(), result


def fresh_encoder(spec: dict[str, Any], seed: int) -> nn.Module:
    """Randomly initialised encoder of the given architecture (init seeded)."""
    torch.manual_seed(seed)
    return encoder_from_spec(spec)
