"""Fine-tuning stage: multi-label diagnosis with few or many labels, pretrained vs not.

Strategies (all on the same encoder architecture as the pretrained checkpoint):

==============  ===================================================================================
pretrained      full fine-tune of the pretrained encoder + linear head
scratch         the same architecture, random initialisation, trained end to end (strong baseline)
linear_probe    frozen pretrained encoder, linear head on its pooled features
random_probe    frozen randomly initialised encoder + linear head (the baseline SSL must beat)
==============  ===================================================================================

Each runs at several label fractions: nested, seeded patient-level subsamples of the train split (the
5% patients are among the 25%, ...). Best epochs are chosen on the validation split; test and
external-site splits are only predicted once, at the end, and scored with macro AUROC / AUPRC and
bootstrap intervals on resamples shared by all models (see :mod:`ecgstudy.evaluate`). Paired bootstrap
differences compare pretrained vs scratch and linear_probe vs random_probe.

Input protocol. By default models train on and are scored on whole records. The PTB-XL benchmark
protocol is ``train_crop_s`` (full fine-tunes train on random crops, redrawn every epoch) plus
``eval_window_s`` / ``eval_stride_s`` / ``eval_aggregate``: validation, test and external records are
scored by sliding windows whose probabilities are aggregated per record
(:func:`ecgstudy.evaluate.predict_windows`), the same way for model selection and for the reported
numbers. The probes' heads are fitted on cached features, which cannot be re-cropped every epoch: with
windows they are fitted on the embeddings of every window of the training records and scored like the
full fine-tunes; without, on whole-record embeddings (``train_crop_s`` does not apply to them).

The reusable pieces (:func:`train_full`, :func:`train_probe`, :func:`embed_dataset`) also serve the
rare-disease transfer stage.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ecgstudy import evaluate
from ecgstudy.models import Classifier, encoder_from_spec
from ecgstudy.models.checkpoint import check_preprocessing, load_encoder, save_checkpoint
from ecgstudy.train import FitResult, TrainConfig, fit, predict, resolve_device, set_threads

STRATEGIES = ("pretrained", "scratch", "linear_probe", "random_probe")
#: strategies whose encoder starts from the pretrained weights / stays frozen
_PRETRAINED = {"pretrained", "linear_probe"}
_FROZEN = {"linear_probe", "random_probe"}
#: paired comparisons reported (A minus B)
COMPARISONS = (("pretrained", "scratch"), ("linear_probe", "random_probe"), ("pretrained", "linear_probe"))


@dataclass(frozen=True)
class FinetuneConfig:
    """params.yaml ``finetune`` section."""

    store: str = "main"  # store folder under data.curated
    encoder: str = "models/pretrain/encoder.pt"  # pretrained encoder checkpoint (pretrain stage output)
    task: str = "all"  # label task (ecgstudy.labels.TASKS)
    min_positives: int = 10  # keep labels with at least this many positives in the train split
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # see the module docstring
    fractions: list[float] = field(default_factory=lambda: [0.05, 0.25, 1.0])  # train-split patient fractions
    eval_splits: list[str] = field(default_factory=lambda: ["test", "external"])  # scored once, at the end
    train_crop_s: float | None = None  # random training crops (s), redrawn every epoch (PTB-XL benchmark: 2.5); null = whole records
    eval_window_s: float | None = None  # sliding-window scoring of val/test/external: window (s) (benchmark: 2.5); null = whole records
    eval_stride_s: float = 1.25  # step between window starts (s) (benchmark: half the window)
    eval_aggregate: Literal["max", "mean"] = "max"  # per-record aggregation of the window probabilities (benchmark: max)
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=10, min_steps=100, batch_size=64, lr=1e-3, warmup_frac=0.1, patience=4, max_evals=10
        )
    )  # full fine-tunes; min_steps gives small fractions enough updates
    probe: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=100, min_steps=300, batch_size=256, lr=1e-2, warmup_frac=0.0, patience=10, bf16=False, progress=False
        )
    )  # linear head on cached frozen features: cheap, so many epochs
    dropout: float = 0.1  # dropout before the linear head during full fine-tunes
    pos_weight: bool = True  # BCE positive weights n_neg / n_pos from the training subset (ECG-FM)
    monitor: Literal["val_loss", "val_auroc"] = "val_auroc"  # best-epoch selection on the validation split (the reported metric; BCE is skewed by pos_weight)
    n_boot: int = 200  # bootstrap resamples for the confidence intervals
    ci: float = 0.95  # confidence level of the intervals
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"unknown strategies {bad}; valid: {list(STRATEGIES)}")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions {self.fractions} must be in (0, 1]")
        bad = [s for s in self.eval_splits if s not in ("test", "external", "val")]
        if bad:
            raise ValueError(f"eval_splits {bad} not in ['test', 'external', 'val']")
        if self.n_boot < 1 or not 0 < self.ci < 1 or not 0 <= self.dropout < 1:
            raise ValueError("n_boot must be >= 1, ci in (0, 1), dropout in [0, 1)")
        for key in ("train_crop_s", "eval_window_s", "eval_stride_s"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ValueError(f"{key} must be positive (or null where allowed), got {value}")

    def input_samples(self, fs: float, n_samples: int) -> tuple[int | None, tuple[int, int] | None]:
        """(training crop, (eval window, stride)) in samples for records of ``n_samples`` at ``fs`` Hz;
        None where whole records are used. Fails naming the key when a length does not fit the records."""
        def samples(key: str) -> int:
            n = int(round(getattr(self, key) * fs))
            if not 1 <= n <= n_samples:
                raise ValueError(f"finetune.{key} = {getattr(self, key)} s is {n} samples at {fs:g} Hz; it must be "
                                 f"between 1 sample and the records' {n_samples} samples ({n_samples / fs:g} s)")
            return n

        crop = samples("train_crop_s") if self.train_crop_s is not None else None
        if self.eval_window_s is None:
            return crop, None
        stride = int(round(self.eval_stride_s * fs))
        if stride < 1:
            raise ValueError(f"finetune.eval_stride_s = {self.eval_stride_s} s is under one sample at {fs:g} Hz")
        return crop, (samples("eval_window_s"), stride)

    def protocol(self) -> dict[str, str]:
        """Plain-words training and evaluation inputs (for the metrics)."""
        train = "whole records" if self.train_crop_s is None else f"random {self.train_crop_s:g} s crops, redrawn every epoch"
        if self.eval_window_s is None:
            return {"train_inputs": train, "eval_inputs": "whole records"}
        return {"train_inputs": train, "eval_inputs": f"{self.eval_window_s:g} s windows every {self.eval_stride_s:g} s, "
                                                      f"{self.eval_aggregate} of the window probabilities per record"}


@dataclass
class FinetuneResult:
    """Tables and headline metrics of :func:`run_finetune`."""

    results: pd.DataFrame  # one row per strategy x fraction x eval split: auroc/auprc with CIs
    per_label: pd.DataFrame  # per-label AUROC/AUPRC per run and split
    comparisons: pd.DataFrame  # paired bootstrap differences
    curves: pd.DataFrame  # per-epoch training history of every run
    metrics: dict[str, Any]  # for reports/metrics/finetune.json
    labels: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- data helpers


class FeatureDataset(Dataset):
    """Cached embeddings ``z`` (N, D) with targets ``y`` (N, L)."""

    def __init__(self, z: np.ndarray, y: np.ndarray):
        self.z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        self.y = torch.as_tensor(np.asarray(y, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"z": self.z[i], "y": self.y[i]}


def patient_subsample(patients: np.ndarray, indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Records of a seeded random ``fraction`` of the patients among ``indices`` (sorted store rows).

    One permutation of the patients (sorted ids, ``numpy.random.Generator(seed)``) serves every
    fraction, so smaller subsets are nested in larger ones. At least one patient is kept.
    """
    indices = np.asarray(indices)
    unique = np.unique(np.asarray(patients)[indices])
    order = np.random.default_rng(seed).permutation(len(unique))
    n_keep = max(1, math.ceil(fraction * len(unique)))
    chosen = set(unique[order[:n_keep]].tolist())
    return np.sort(indices[[p in chosen for p in np.asarray(patients)[indices]]])


def pos_weights(y: np.ndarray, cap: float = 100.0) -> torch.Tensor:
    """BCE positive weights n_neg / n_pos per label (L,), capped; labels without positives get 1."""
    y = np.asarray(y)
    pos = y.sum(axis=0)
    weight = np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0)
    return torch.as_tensor(np.clip(weight, 1.0 / cap, cap), dtype=torch.float32)


def bce_loss(pos_weight: torch.Tensor | None, input_key: str = "x"):
    """Loss function for :func:`ecgstudy.train.fit`: BCE-with-logits of ``model`` on ``batch["y"]``."""

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
        if input_key == "x":
            logits = model(batch["x"], batch["lead_mask"].bool())
        else:
            logits = model(batch[input_key])
        weight = pos_weight.to(logits.device) if pos_weight is not None else None
        return F.binary_cross_entropy_with_logits(logits.float(), batch["y"], pos_weight=weight), {}

    return loss_fn


def _logit(p: np.ndarray) -> np.ndarray:
    """float32 log-odds of probabilities (clipped away from 0 and 1): aggregated window scores as logits."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


def _val_metrics(logits: np.ndarray, y: np.ndarray, pos_weight: torch.Tensor | None) -> dict[str, float]:
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
    aggregate)`` windows (:func:`ecgstudy.evaluate.predict_windows`)."""
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
            return _val_metrics(logits, fields["y"], pos_weight)
        probs = predict_probs(m, val_set, windows, device=device, bf16=cfg.bf16)
        return _val_metrics(_logit(probs), val_set.y, pos_weight)

    mode = "min" if monitor == "val_loss" else "max"
    result = fit(
        model, bce_loss(pos_weight), train_set, cfg, seed=seed,
        validate=validate if val_set is not None else None, monitor=monitor, mode=mode, desc=desc,
    )
    return model.cpu().eval(), result


def train_probe(
    encoder: nn.Module,
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
    """Linear head on frozen features; returns a :class:`Classifier` (frozen ``encoder`` + that head).

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
            logits = _logit(evaluate.aggregate_windows(probs.reshape(-1, val_windows, probs.shape[1]), val_aggregate))
        return _val_metrics(logits, y_val, pos_weight)

    mode = "min" if monitor == "val_loss" else "max"
    cfg = dataclasses.replace(cfg, device="cpu")  # a linear layer on cached features: no accelerator needed
    result = fit(
        head, bce_loss(pos_weight, input_key="z"), FeatureDataset((z_train - mean) / std, y_train), cfg, seed=seed,
        validate=validate if z_val is not None else None, monitor=monitor, mode=mode, desc="probe",
    )
    model = Classifier(encoder, y_train.shape[1], freeze_encoder=True)
    with torch.no_grad():  # w.(z - mean)/std + b  ==  (w/std).z + (b - w.(mean/std))
        weight = head.weight / torch.as_tensor(std, dtype=torch.float32)
        model.head.weight.copy_(weight)
        model.head.bias.copy_(head.bias - (weight * torch.as_tensor(mean, dtype=torch.float32)).sum(dim=1))
    return model.eval(), result


# ----------------------------------------------------------------------------- the stage


def _fresh_encoder(spec: dict[str, Any], seed: int) -> nn.Module:
    """Randomly initialised encoder of the given architecture (init seeded)."""
    torch.manual_seed(seed)
    return encoder_from_spec(spec)


def checkpoint_name(strategy: str, fraction: float) -> str:
    """File name of a fine-tuned model: ``<strategy>_<fraction>.pt`` (contract 4)."""
    return f"{strategy}_{fraction:g}.pt"


def run_finetune(
    cfg: FinetuneConfig,
    store_dir: str | Path,
    encoder_path: str | Path,
    models_dir: str | Path,
    *,
    seed: int,
) -> FinetuneResult:
    """Train every strategy at every label fraction and score it on the evaluation splits.

    Parameters
    ----------
    cfg
        The finetune section.
    store_dir
        Main curated store (signals (N, 12, T) at fs Hz) with train/val/test/external splits.
    encoder_path
        Pretrained encoder checkpoint; its preprocessing spec must match the store's.
    models_dir
        Folder for ``<strategy>_<fraction>.pt`` classifier checkpoints.
    seed
        Seeds subsampling, initialisation, training order and bootstrap resamples.
    """
    from ecgstudy.labels import task_labels
    from ecgstudy.store import ECGDataset, Store

    set_threads(cfg.num_threads)
    store = Store(store_dir)
    pretrained, info = load_encoder(encoder_path)
    check_preprocessing(info["preprocessing"], store.meta, str(encoder_path))
    train_all = np.asarray(store.indices("train"))
    tl = task_labels(store, cfg.task, cfg.min_positives, within=train_all)
    if not tl.names:
        raise ValueError(f"{store_dir}: no label of task {cfg.task!r} has {cfg.min_positives} train positives")
    keep, targets, labels = tl.keep, tl.y, list(tl.names)
    split_idx = {s: np.asarray([i for i in store.indices(s) if keep[i]], dtype=np.int64) for s in ("train", "val", *cfg.eval_splits)}
    for s, idx in split_idx.items():
        if len(idx) == 0:
            raise ValueError(f"{store_dir}: split {s!r} has no records with a {cfg.task!r} label")
    datasets = {s: ECGDataset(store, idx, labels=targets) for s, idx in split_idx.items()}
    patients = store.records["patient_id"].astype(str).to_numpy()
    preprocessing = info["preprocessing"]
    device = resolve_device(cfg.optim.device)
    bf16 = cfg.optim.bf16
    crop, window = cfg.input_samples(store.fs, store.n_samples)
    windows = None if window is None else (*window, cfg.eval_aggregate)  # (window, stride, aggregate)

    features: dict[str, dict[str, np.ndarray]] = {}  # (N, D) whole records, or (N, W, D) windows
    # random_probe and scratch start from the same seeded random init, so their comparison is paired
    probe_encoders = {"linear_probe": pretrained, "random_probe": _fresh_encoder(info["spec"], seed)}
    for strategy in [s for s in cfg.strategies if s in _FROZEN]:
        enc = probe_encoders[strategy]
        if window is None:
            features[strategy] = {s: embed_dataset(enc, ds, bf16=bf16, device=device) for s, ds in datasets.items()}
        else:
            features[strategy] = {s: embed_windows(enc, ds, *window, bf16=bf16, device=device) for s, ds in datasets.items()}

    rows, per_label_rows, curves, scores = [], [], [], {}
    for fraction in cfg.fractions:
        sub = patient_subsample(patients, split_idx["train"], fraction, seed)
        pos_in_train = np.searchsorted(split_idx["train"], sub)
        y_sub = targets[sub]
        weight = pos_weights(y_sub) if cfg.pos_weight else None
        for strategy in cfg.strategies:
            start = time.perf_counter()
            if strategy in _FROZEN and window is None:
                feats = features[strategy]
                model, fitted = train_probe(
                    probe_encoders[strategy], feats["train"][pos_in_train], y_sub, feats["val"], datasets["val"].y,
                    cfg.probe, seed=seed, pos_weight=weight, monitor=cfg.monitor,
                )
                preds = {s: torch.sigmoid(model.head(torch.as_tensor(feats[s]))).detach().numpy() for s in cfg.eval_splits}
            elif strategy in _FROZEN:  # one training example per window; window probabilities aggregated per record
                feats = features[strategy]
                n_windows, dim = feats["train"].shape[1:]
                model, fitted = train_probe(
                    probe_encoders[strategy], feats["train"][pos_in_train].reshape(-1, dim), np.repeat(y_sub, n_windows, axis=0),
                    feats["val"].reshape(-1, dim), datasets["val"].y, cfg.probe, seed=seed, pos_weight=weight,
                    monitor=cfg.monitor, val_windows=n_windows, val_aggregate=cfg.eval_aggregate,
                )
                preds = {}
                for s in cfg.eval_splits:
                    with torch.no_grad():
                        p = torch.sigmoid(model.head(torch.as_tensor(feats[s]))).double().numpy()  # (N, W, L)
                    preds[s] = evaluate.aggregate_windows(p, cfg.eval_aggregate)
            else:
                encoder = _fresh_encoder(info["spec"], seed)
                if strategy in _PRETRAINED:
                    encoder.load_state_dict(pretrained.state_dict())
                train_set = ECGDataset(store, sub, labels=targets, crop=crop, random_crop=crop is not None, seed=seed)
                model, fitted = train_full(
                    encoder, train_set, datasets["val"], len(labels), cfg.optim, seed=seed, dropout=cfg.dropout,
                    pos_weight=weight, monitor=cfg.monitor, desc=f"{strategy} {fraction:g}", windows=windows,
                )
                preds = {s: predict_probs(model, datasets[s], windows, device=device, bf16=bf16) for s in cfg.eval_splits}
            seconds = time.perf_counter() - start
            save_checkpoint(
                Path(models_dir) / checkpoint_name(strategy, fraction), model,
                config={**dataclasses.asdict(cfg), "strategy": strategy, "fraction": fraction, "seed": seed},
                preprocessing=preprocessing, labels=labels,
                extra={"best_epoch": fitted.best_epoch, "n_train": len(sub), "pretrained_from": str(encoder_path)},
            )
            history = fitted.history.assign(strategy=strategy, fraction=fraction)
            curves.append(history)
            for split, p in preds.items():
                y_true = datasets[split].y
                scores[(strategy, fraction, split)] = p
                summary = evaluate.summarize(y_true, p, n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
                rows.append({
                    "strategy": strategy, "fraction": fraction, "split": split,
                    "n_train": len(sub), "n_train_patients": len(np.unique(patients[sub])),
                    **summary, "best_epoch": fitted.best_epoch, "epochs_run": len(fitted.history),
                    "train_seconds": seconds,
                })
                table = evaluate.per_label_table(y_true, p, labels)
                per_label_rows.append(table.assign(strategy=strategy, fraction=fraction, split=split))
    comparisons = _compare(scores, {s: datasets[s].y for s in cfg.eval_splits}, cfg, seed)
    results = pd.DataFrame(rows)
    return FinetuneResult(
        results=results,
        per_label=pd.concat(per_label_rows, ignore_index=True),
        comparisons=comparisons,
        curves=pd.concat(curves, ignore_index=True),
        metrics=_headline(results, comparisons, labels, cfg),
        labels=labels,
    )


def _compare(scores: dict, y_by_split: dict[str, np.ndarray], cfg: FinetuneConfig, seed: int) -> pd.DataFrame:
    """Paired bootstrap differences (A - B) of macro AUROC and AUPRC for :data:`COMPARISONS`."""
    rows = []
    for a, b in COMPARISONS:
        if a not in cfg.strategies or b not in cfg.strategies:
            continue
        for fraction in cfg.fractions:
            for split, y in y_by_split.items():
                for metric in evaluate.METRICS:
                    res = evaluate.paired_bootstrap(
                        y, scores[(a, fraction, split)], scores[(b, fraction, split)], metric,
                        n_boot=cfg.n_boot, ci=cfg.ci, seed=seed,
                    )
                    rows.append({"a": a, "b": b, "fraction": fraction, "split": split, "metric": metric, **res})
    return pd.DataFrame(rows, columns=["a", "b", "fraction", "split", "metric", "diff", "low", "high", "p_value", "n_boot"])


def _headline(results: pd.DataFrame, comparisons: pd.DataFrame, labels: list[str], cfg: FinetuneConfig) -> dict[str, Any]:
    """Flat-ish metrics: macro AUROC/AUPRC (+ CI) per split, strategy and fraction; key differences."""
    metrics: dict[str, Any] = {"task": cfg.task, "n_labels": len(labels), "protocol": cfg.protocol()}
    for row in results.itertuples():
        key = f"{row.strategy}_{row.fraction:g}"
        metrics.setdefault(row.split, {})[key] = {
            "auroc": row.auroc, "auroc_low": row.auroc_low, "auroc_high": row.auroc_high, "auprc": row.auprc,
        }
    for row in comparisons[comparisons["metric"] == "auroc"].itertuples():
        metrics.setdefault("auroc_diff", {}).setdefault(row.split, {})[f"{row.a}-{row.b}_{row.fraction:g}"] = {
            "diff": row.diff, "low": row.low, "high": row.high,
        }
    return metrics


def write_tables(result: FinetuneResult, tables_dir: str | Path, plots_dir: str | Path) -> dict[str, Path]:
    """Write results, per-label, comparison tables (CSV) and the training curves (CSV for dvc plots)."""
    tables_dir, plots_dir = Path(tables_dir), Path(plots_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": tables_dir / "results.csv",
        "per_label": tables_dir / "per_label.csv",
        "comparisons": tables_dir / "comparisons.csv",
        "curves": plots_dir / "curves.csv",
    }
    result.results.to_csv(paths["results"], index=False)
    result.per_label.to_csv(paths["per_label"], index=False)
    result.comparisons.to_csv(paths["comparisons"], index=False)
    result.curves.to_csv(paths["curves"], index=False)
    return paths
