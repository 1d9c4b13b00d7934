"""Fine-tuning stage: multi-label diagnosis with few or many labels, pretrained vs not.

Strategies (all on the same encoder architecture as the pretrained checkpoint):

==============  ===================================================================================
pretrained      full fine-tune of the pretrained encoder + linear head
scratch         the same architecture, random initialisation, trained end to end (strong baseline)
linear_probe    frozen pretrained encoder, linear head on its pooled features
random_probe    frozen randomly initialised encoder + linear head (the baseline SSL must beat)
==============  ===================================================================================

Each runs at several label fractions: nested, seeded patient-level subsamples of the train split (the
5% patients are among the 25%, ...), ``repeats`` times. Repeat k draws its own subsamples (seed + k) and
trains with seed + k, the same for every strategy, so strategies pair by repeat; at fraction 1 the
repeats share the records and differ by seed only. Every strategy gets the same kind of search at every
fraction, on repeat 0, chosen on the validation split (:class:`~ecgstudy.engine.tuning.Search`): the
learning rate (``lr_grid``) of full fine-tunes, the weight decay (``weight_decay_grid``) of probes;
repeats 1.. reuse the choice. Best epochs are chosen on the validation split and every model records
whether its best epoch was its last (``stopped_at_last_epoch``: it may not have converged); test and
external-site splits are only predicted once, at the end. ``random_probe`` and ``scratch`` start from the
encoder's random-init twin (its pretraining run's initial weights with batch norm re-estimated on the same
records, :func:`ecgstudy.stages.common.random_twin`). An encoder pretrained on an evaluated record is
refused; one whose supervised pretraining saw the task's labels on the training records is refused unless
``allow_label_overlap``, and is then marked in every table (``pretraining_label_leak``). Their scores are saved (``models/finetune/scores.npz``,
:mod:`ecgstudy.engine.scores`) with point macro AUROC / AUPRC; the intervals and the paired comparisons
(pretrained vs scratch, linear_probe vs random_probe, pretrained vs linear_probe) are computed from them by
the evaluate stage, so a statistics setting never retrains a model.

Input protocol. By default models train on and are scored on whole records. The PTB-XL benchmark
protocol is ``train_crop_s`` (full fine-tunes train on random crops, redrawn every epoch) plus
``eval_window_s`` / ``eval_stride_s`` / ``eval_aggregate``: validation, test and external records are
scored by sliding windows whose probabilities are aggregated per record
(:func:`ecgstudy.engine.evaluate.predict_windows`), the same way for model selection and for the reported
numbers. The probes' heads are fitted on cached features, which cannot be re-cropped every epoch: with
windows they are fitted on the embeddings of every window of the training records and scored like the
full fine-tunes; without, on whole-record embeddings (``train_crop_s`` does not apply to them).

Decisions. After each classifier is saved, per-label thresholds are chosen on the validation split by
``threshold_rule`` and stored in its checkpoint (:mod:`ecgstudy.apply.decisions`); their sensitivity,
specificity and calibration (reliability bins, ECE) on each evaluation split go to
``reports/tables/finetune/{decisions,calibration}.csv``, and a model card is written beside the checkpoint
(:mod:`ecgstudy.apply.cards`).

The heads themselves (:func:`~ecgstudy.engine.probes.train_full`, :func:`~ecgstudy.engine.probes.train_probe`)
live in the engine: the pretrain and transfer stages use them too.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ecgstudy.apply.cards import build_card, evaluation_entry, write_card
from ecgstudy.apply.decisions import Decisions, finish_classifier
from ecgstudy.data.labels import task_labels
from ecgstudy.data.store import ECGDataset, Store
from ecgstudy.engine import evaluate
from ecgstudy.engine.jobs import run_jobs
from ecgstudy.engine.probes import embed_dataset, embed_windows, fresh_encoder, pos_weights, predict_probs, train_full, train_probe
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.engine.thresholds import parse_rule
from ecgstudy.engine.train import TrainConfig, resolve_device
from ecgstudy.engine.tuning import Search, repeat_seed, stopped_at_last_epoch
from ecgstudy.models.checkpoint import save_checkpoint
from ecgstudy.stages import artifacts
from ecgstudy.stages.artifacts import classifier_name
from ecgstudy.stages.common import (check_pretraining_leak, label_overlap, open_store_and_model, pretraining_data,
                                    random_twin, shared_records)
from ecgstudy.stages.outputs import stage_outputs, timing_rows, without_timings

STRATEGIES = ("pretrained", "scratch", "linear_probe", "random_probe")
#: strategies whose encoder starts from the pretrained weights / stays frozen
_PRETRAINED = {"pretrained", "linear_probe"}
_FROZEN = {"linear_probe", "random_probe"}


@dataclass(frozen=True)
class FinetuneConfig:
    """params.yaml ``finetune`` section."""

    store: str = "main"  # store folder under data.curated
    encoder: str = "keep"  # pretraining run whose encoder is fine-tuned: keep = pretrain.keep, or a pretrain.runs name
    task: str = "all"  # label task (ecgstudy.data.labels.TASKS)
    min_positives: int = 10  # keep labels with at least this many positives in the train split
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # pretrained (fine-tuned), scratch (same net, random init), linear_probe (frozen pretrained), random_probe (frozen random init)
    fractions: list[float] = field(default_factory=lambda: [0.05, 0.25, 1.0])  # train-split patient fractions
    repeats: int = 3  # training repeats per strategy x fraction: repeat k = subsample draw and seed seed + k, shared by every strategy (fraction 1: seed only)
    lr_grid: list[float] = field(default_factory=lambda: [5e-4, 2e-3])  # learning rates searched for pretrained and scratch at every fraction, on repeat 0, by validation macro AUROC; repeats 1.. reuse the choice
    weight_decay_grid: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # probe weight decays searched for linear_probe and random_probe the same way
    allow_label_overlap: bool = False  # accept an encoder supervised-pretrained on the task's labels on the training records (marked pretraining_label_leak in every table) instead of refusing it
    eval_splits: list[str] = field(default_factory=lambda: ["test", "external"])  # scored once, at the end
    train_crop_s: float | None = None  # random training crops (s), redrawn every epoch (PTB-XL benchmark: 2.5); null = whole records
    eval_window_s: float | None = None  # sliding-window scoring of val/test/external: window (s) (benchmark: 2.5); null = whole records
    eval_stride_s: float = 1.25  # step between window starts (s) (benchmark: half the window)
    eval_aggregate: Literal["max", "mean"] = "max"  # per-record aggregation of the window probabilities (benchmark: max)
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=6, min_steps=100, batch_size=64, lr=1e-3, warmup_frac=0.1, patience=3, max_evals=6
        )
    )  # full fine-tunes (lr: finetune.lr_grid searches it); min_steps gives small fractions enough updates; 6 epochs keep 4 strategies x 3 fractions x (2 lrs + 2 repeats) near 11 min on 2 cores
    probe: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=100, min_steps=300, batch_size=256, lr=1e-2, warmup_frac=0.0, patience=10, bf16=False, progress=False
        )
    )  # linear head on cached frozen features: cheap, so many epochs
    dropout: float = 0.1  # dropout before the linear head during full fine-tunes
    pos_weight: bool = True  # BCE positive weights n_neg / n_pos from the training subset (ECG-FM)
    monitor: Literal["val_loss", "val_auroc"] = "val_auroc"  # best-epoch selection on the validation split (the reported metric; BCE is skewed by pos_weight)
    num_threads: int = 0  # torch CPU threads (0 = torch default); with workers > 1, the threads of each worker (0 = 1)
    workers: int = 2  # (strategy, fraction) groups of full fine-tunes trained side by side in this many spawned one-thread processes on a CPU (1, or a GPU: one after another in this process); at the same threads per job the numbers do not depend on it
    threshold_rule: str = "youden"  # per-label decision thresholds chosen on val, stored in each classifier: youden | f1 | sensitivity:X

    def validate(self) -> None:
        parse_rule(self.threshold_rule)
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"unknown strategies {bad}; valid: {list(STRATEGIES)}")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions {self.fractions} must be in (0, 1]")
        bad = [s for s in self.eval_splits if s not in ("test", "external", "val")]
        if bad:
            raise ValueError(f"eval_splits {bad} not in ['test', 'external', 'val']")
        if self.repeats < 1 or self.workers < 1:
            raise ValueError(f"repeats and workers must be >= 1, got {self.repeats} and {self.workers}")
        for key in ("lr_grid", "weight_decay_grid"):
            grid = getattr(self, key)
            if not grid or any(v < 0 for v in grid) or (key == "lr_grid" and any(v == 0 for v in grid)):
                raise ValueError(f"{key} {grid} must list positive values (weight decay may be 0)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
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
    """What :func:`run` trained and wrote; intervals and comparisons are the evaluate stage's."""

    results: pd.DataFrame  # one row per strategy x fraction x repeat x eval split: point macro AUROC / AUPRC, run facts
    curves: pd.DataFrame  # per-epoch training history of every model (search candidates included)
    tuning: pd.DataFrame  # one row per strategy x fraction x searched value: validation score, chosen, best epoch
    scores: ScoreFile  # every model's probabilities on the evaluation splits (models/finetune/scores.npz)
    metrics: dict[str, Any]  # reports/metrics/finetune.json
    labels: list[str] = field(default_factory=list)
    decisions: pd.DataFrame | None = None  # per model x eval split x label: stored threshold, sensitivity, specificity, ECE
    calibration: pd.DataFrame | None = None  # per model x eval split x label: reliability-diagram bins


@dataclass
class _Inputs:
    """The store's task, split rows and datasets, the pretrained encoder and the input protocol."""

    store: Store
    pretrained: torch.nn.Module
    twin: torch.nn.Module  # the pretrained encoder's random-init twin (random_probe, scratch)
    twin_how: str  # how the twin was built, in words
    info: dict[str, Any]
    labels: list[str]
    targets: np.ndarray  # (N_store, L) 0/1
    rows: dict[str, np.ndarray]  # split -> store rows with a task label
    datasets: dict[str, ECGDataset]
    patients: np.ndarray  # (N_store,) str
    crop: int | None  # training crop, samples
    window: tuple[int, int] | None  # (window, stride) in samples, or None: whole records
    windows: tuple[int, int, str] | None  # (window, stride, aggregate) for predict_probs


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


def _open(cfg: FinetuneConfig, store_dir: Path, encoder_path: Path) -> _Inputs:
    """Open store and encoder, choose the task's labels on the train split, build the split datasets."""
    store, pretrained, info = open_store_and_model(store_dir, encoder_path, num_threads=cfg.num_threads)
    tl = task_labels(store, cfg.task, cfg.min_positives, within=np.asarray(store.indices("train")))
    if not tl.names:
        raise ValueError(f"{store_dir}: no label of task {cfg.task!r} has {cfg.min_positives} train positives")
    rows = {s: np.asarray([i for i in store.indices(s) if tl.keep[i]], dtype=np.int64) for s in ("train", "val", *cfg.eval_splits)}
    for s, idx in rows.items():
        if len(idx) == 0:
            raise ValueError(f"{store_dir}: split {s!r} has no records with a {cfg.task!r} label")
    crop, window = cfg.input_samples(store.fs, store.n_samples)
    twin, twin_how = random_twin(encoder_path, info)
    return _Inputs(
        store=store, pretrained=pretrained, twin=twin, twin_how=twin_how, info=info, labels=list(tl.names), targets=tl.y, rows=rows,
        datasets={s: ECGDataset(store, idx, labels=tl.y) for s, idx in rows.items()},
        patients=store.records["patient_id"].astype(str).to_numpy(), crop=crop, window=window,
        windows=None if window is None else (*window, cfg.eval_aggregate),
    )


def _frozen_features(cfg: FinetuneConfig, inp: _Inputs, encoders: dict[str, torch.nn.Module], device) -> dict:
    """{probe strategy: {split: embeddings (N, D) of whole records, or (N, W, D) of sliding windows}}."""
    features = {}
    for strategy in [s for s in cfg.strategies if s in _FROZEN]:
        enc = encoders[strategy]
        if inp.window is None:
            features[strategy] = {s: embed_dataset(enc, ds, bf16=cfg.optim.bf16, device=device) for s, ds in inp.datasets.items()}
        else:
            features[strategy] = {s: embed_windows(enc, ds, *inp.window, bf16=cfg.optim.bf16, device=device)
                                  for s, ds in inp.datasets.items()}
    return features


def _train_probe(cfg: FinetuneConfig, inp: _Inputs, encoder, feats: dict, pos_in_train, y_sub, weight, seed: int):
    """A linear head on cached features; returns (model, fit result, {split: probabilities (N, L)})."""
    if inp.window is None:
        model, fitted = train_probe(encoder, feats["train"][pos_in_train], y_sub, feats["val"], inp.datasets["val"].y,
                                    cfg.probe, seed=seed, pos_weight=weight, monitor=cfg.monitor)
        with torch.no_grad():
            preds = {s: torch.sigmoid(model.head(torch.as_tensor(feats[s]))).detach().numpy() for s in cfg.eval_splits}
        return model, fitted, preds
    n_windows, dim = feats["train"].shape[1:]  # one training example per window; probabilities aggregated per record
    model, fitted = train_probe(
        encoder, feats["train"][pos_in_train].reshape(-1, dim), np.repeat(y_sub, n_windows, axis=0),
        feats["val"].reshape(-1, dim), inp.datasets["val"].y, cfg.probe, seed=seed, pos_weight=weight,
        monitor=cfg.monitor, val_windows=n_windows, val_aggregate=cfg.eval_aggregate,
    )
    preds = {}
    for s in cfg.eval_splits:
        with torch.no_grad():
            p = torch.sigmoid(model.head(torch.as_tensor(feats[s]))).double().numpy()  # (N, W, L)
        preds[s] = evaluate.aggregate_windows(p, cfg.eval_aggregate)
    return model, fitted, preds


def tuned_param(strategy: str) -> str:
    """The hyper-parameter searched for ``strategy``: ``lr`` (full fine-tunes) or ``weight_decay`` (probes)."""
    return "weight_decay" if strategy in _FROZEN else "lr"


def _grid(cfg: FinetuneConfig, strategy: str) -> list[float]:
    return list(cfg.weight_decay_grid if strategy in _FROZEN else cfg.lr_grid)


def _train_model(cfg: FinetuneConfig, inp: _Inputs, strategy: str, fraction: float, sub: np.ndarray, features: dict,
                 probe_encoders: dict, seed: int, device, value: float | None = None):
    """Train one strategy on the subsample ``sub`` (store rows) with the searched hyper-parameter at ``value``
    (None: the optimiser preset's); returns (model, fit result, {split: probs})."""
    y_sub = inp.targets[sub]
    weight = pos_weights(y_sub) if cfg.pos_weight else None
    if strategy in _FROZEN:
        probe_cfg = cfg if value is None else dataclasses.replace(cfg, probe=dataclasses.replace(cfg.probe, weight_decay=value))
        pos_in_train = np.searchsorted(inp.rows["train"], sub)
        return _train_probe(probe_cfg, inp, probe_encoders[strategy], features[strategy], pos_in_train, y_sub, weight, seed)
    encoder = fresh_encoder(inp.info["spec"], seed)
    # pretrained starts from the pretrained weights, scratch from the twin: the run's own initial weights
    encoder.load_state_dict((inp.pretrained if strategy in _PRETRAINED else inp.twin).state_dict())
    optim = cfg.optim if value is None else dataclasses.replace(cfg.optim, lr=value)
    train_set = ECGDataset(inp.store, sub, labels=inp.targets, crop=inp.crop, random_crop=inp.crop is not None, seed=seed)
    model, fitted = train_full(
        encoder, train_set, inp.datasets["val"], len(inp.labels), optim, seed=seed, dropout=cfg.dropout,
        pos_weight=weight, monitor=cfg.monitor, desc=f"{strategy} {fraction:g}", windows=inp.windows,
    )
    preds = {s: predict_probs(model, inp.datasets[s], inp.windows, device=device, bf16=cfg.optim.bf16) for s in cfg.eval_splits}
    return model, fitted, preds


@dataclass
class _Context:
    """What every (strategy, fraction) group reads: the opened inputs and the run's settings."""

    cfg: FinetuneConfig
    inp: _Inputs
    features: dict  # probe strategy -> split -> cached frozen features (empty in a worker: probes run in the stage)
    probe_encoders: dict[str, torch.nn.Module]  # linear_probe -> pretrained, random_probe -> twin
    device: torch.device
    models_dir: Path
    encoder_path: Path
    seed: int
    leak: dict[str, list[str]]


def _context(cfg: FinetuneConfig, store_dir: Path, encoder_path: Path, models_dir: Path, seed: int,
             leak: dict[str, list[str]], inp: _Inputs | None = None, *, with_features: bool = False) -> _Context:
    """Open (or reuse ``inp``) the stage's inputs; with the probes' frozen features when asked."""
    inp = _open(cfg, store_dir, encoder_path) if inp is None else inp
    device = resolve_device(cfg.optim.device)
    probe_encoders = {"linear_probe": inp.pretrained, "random_probe": inp.twin}
    features = _frozen_features(cfg, inp, probe_encoders, device) if with_features else {}
    return _Context(cfg, inp, features, probe_encoders, device, Path(models_dir), Path(encoder_path), seed, leak)


@dataclass
class _Group:
    """One strategy at one label fraction: the search on repeat 0, the other repeats, and what they wrote."""

    rows: list[dict] = field(default_factory=list)  # results.csv rows (repeat x split)
    curves: list[pd.DataFrame] = field(default_factory=list)  # per-epoch histories of every model trained, candidates included
    tuning: list[dict] = field(default_factory=list)  # tuning.csv rows (one per searched value)
    decided: Decisions | None = None  # repeat 0's thresholds and reliability bins
    scores: list[tuple[tuple[str, str, str], str, np.ndarray]] = field(default_factory=list)  # (strategy, fraction, repeat), split, probs (N, L)
    models: dict[str, dict] = field(default_factory=dict)  # scores.meta["models"] entries
    search: dict = field(default_factory=dict)  # scores.meta["tuning"] entry


def _train_group(ctx: _Context, job: tuple[float, str]) -> _Group:
    """Train ``strategy`` at ``fraction`` (the job): repeat 0 searches, repeats 1.. reuse its choice; repeat 0's
    classifier is saved with its thresholds and card. Independent of every other group (own seeds)."""
    fraction, strategy = job
    cfg, inp = ctx.cfg, ctx.inp
    search = Search(tuned_param(strategy), _grid(cfg, strategy), f"best-epoch validation {cfg.monitor} on repeat 0")
    group = _Group()
    for k in range(cfg.repeats):
        run_seed = repeat_seed(ctx.seed, k)
        sub = patient_subsample(inp.patients, inp.rows["train"], fraction, run_seed)
        if k == 0:
            model, fitted, preds, seconds = _search(cfg, inp, strategy, fraction, sub, ctx.features, ctx.probe_encoders,
                                                    run_seed, ctx.device, search, group.curves, group.tuning)
        else:
            start = time.perf_counter()
            model, fitted, preds = _train_model(cfg, inp, strategy, fraction, sub, ctx.features, ctx.probe_encoders,
                                                run_seed, ctx.device, search.chosen)
            seconds = time.perf_counter() - start
            group.curves.append(fitted.history.assign(strategy=strategy, fraction=fraction, repeat=k,
                                                      **{f"searched_{search.param}": search.chosen}))
        stopped = stopped_at_last_epoch(fitted)
        if k == 0:
            path = save_checkpoint(
                ctx.models_dir / classifier_name(strategy, fraction), model,
                config={**dataclasses.asdict(cfg), "strategy": strategy, "fraction": fraction, "seed": run_seed,
                        "repeat": k, search.param: search.chosen},
                preprocessing=inp.info["preprocessing"], labels=inp.labels,
                extra={"best_epoch": fitted.best_epoch, "stopped_at_last_epoch": stopped, "n_train": len(sub),
                       "pretrained_from": artifacts.shown(ctx.encoder_path), "tuning": search.record()},
            )
            group.decided = _finish(cfg, inp, path, model, preds, sub, fitted.best_epoch, strategy, fraction, ctx.device)
        group.models[f"{strategy}/{fraction:g}/r{k}"] = {
            "best_epoch": int(fitted.best_epoch), "stopped_at_last_epoch": stopped, search.param: search.chosen}
        for split, p in preds.items():
            group.scores.append(((strategy, f"{fraction:g}", f"r{k}"), split, p))
            group.rows.append({
                "strategy": strategy, "fraction": fraction, "repeat": k, "split": split, "n_train": len(sub),
                "n_train_patients": len(np.unique(inp.patients[sub])),
                **point_estimates(inp.datasets[split].y, p), "tuned_param": search.param,
                "tuned_value": search.chosen, "best_epoch": fitted.best_epoch,
                "epochs_run": len(fitted.history), "stopped_at_last_epoch": stopped,
                "pretraining_label_leak": bool(ctx.leak) and strategy in _PRETRAINED, "train_seconds": seconds,
            })
    group.search = search.record()
    return group


def train_all(cfg: FinetuneConfig, store_dir: str | Path, encoder_path: str | Path, models_dir: str | Path, *,
              seed: int) -> FinetuneResult:
    """Train every strategy at every label fraction and repeat, save the classifiers and their evaluation-split scores.

    The full fine-tunes of each (strategy, fraction) run as one job, ``cfg.workers`` jobs at a time in worker
    processes (:func:`ecgstudy.engine.jobs.run_jobs`); the probes train here, on cached features. Outputs are
    assembled in (fraction, strategy, repeat) order whichever job finished first.

    Parameters
    ----------
    cfg
        The finetune section.
    store_dir
        Main curated store (signals (N, 12, T) at fs Hz) with train/val/test/external splits.
    encoder_path
        Pretrained encoder checkpoint; its preprocessing spec must match the store's. Its random-init twin
        is read from beside it (:func:`ecgstudy.stages.common.random_twin`).
    models_dir
        Folder for ``<strategy>_<fraction>.pt`` classifier checkpoints (repeat 0's model: the search's choice).
    seed
        Repeat k subsamples and trains with seed + k (:func:`ecgstudy.engine.tuning.repeat_seed`).
    """
    store_dir, encoder_path, models_dir = Path(store_dir), Path(encoder_path), Path(models_dir)
    inp = _open(cfg, store_dir, encoder_path)
    leak = _check_encoder(cfg, inp, encoder_path)
    ctx = _context(cfg, store_dir, encoder_path, models_dir, seed, leak, inp, with_features=True)
    scores = ScoreFile(meta={"task": cfg.task, "n_labels": len(inp.labels), "protocol": cfg.protocol(),
                             "strategies": list(cfg.strategies), "fractions": list(cfg.fractions),
                             "repeats": cfg.repeats, "repeat_design": _REPEAT_DESIGN, "baseline_init": inp.twin_how,
                             "pretraining_label_leak": leak, "tuning": {}, "models": {}})
    for split in cfg.eval_splits:
        scores.add_group(split, inp.datasets[split].y, inp.patients[inp.rows[split]], inp.labels)
    jobs = [(f, s) for f in cfg.fractions for s in cfg.strategies]
    full = sorted((j for j in jobs if j[1] not in _FROZEN), key=lambda j: -j[0])  # largest first
    groups = dict(zip(full, run_jobs(_train_group, full, state=ctx, workers=cfg.workers, threads=cfg.num_threads,
                                     device=ctx.device, desc="finetune",
                                     reopen=partial(_context, cfg, store_dir, encoder_path, models_dir, seed, leak))))
    groups.update({j: _train_group(ctx, j) for j in jobs if j[1] in _FROZEN})
    for job in jobs:
        group = groups[job]
        for key, split, p in group.scores:
            scores.add(key, split, p)
        scores.meta["models"].update(group.models)
        scores.meta["tuning"][f"{job[1]}/{job[0]:g}"] = group.search
    results = pd.DataFrame([row for job in jobs for row in groups[job].rows])
    return FinetuneResult(results=results, curves=pd.concat([c for j in jobs for c in groups[j].curves], ignore_index=True),
                          tuning=pd.DataFrame([row for j in jobs for row in groups[j].tuning]),
                          scores=scores, metrics=_headline(results, inp.labels, cfg, scores.meta), labels=inp.labels,
                          decisions=pd.concat([groups[j].decided.operating for j in jobs], ignore_index=True),
                          calibration=pd.concat([groups[j].decided.reliability for j in jobs], ignore_index=True))


def _finish(cfg: FinetuneConfig, inp: _Inputs, path: Path, model, preds: dict, sub: np.ndarray, best_epoch: int,
            strategy: str, fraction: float, device) -> Decisions:
    """Thresholds chosen on val into the saved classifier, its test operating points, and its model card."""
    val_p = predict_probs(model, inp.datasets["val"], inp.windows, device=device, bf16=cfg.optim.bf16)
    decided = finish_classifier(path, inp.labels, (inp.datasets["val"].y, val_p),
                                {s: (inp.datasets[s].y, p) for s, p in preds.items()}, cfg.threshold_rule)
    pretrained = strategy in _PRETRAINED
    training = {"source": inp.store.meta.get("source"), "task": cfg.task, "strategy": strategy,
                "label_fraction": fraction, "train_records": len(sub),
                "train_patients": len(np.unique(inp.patients[sub])), "val_records": len(inp.rows["val"]),
                "best_epoch": best_epoch, **cfg.protocol(), "subsample": "seeded patient-level, nested across fractions"}
    pretraining = ({"source": inp.store.meta.get("source"), "objective": inp.info["config"].get("objective"),
                    "encoder": artifacts.shown(Path(inp.info["path"])), "records": inp.info["extra"].get("n_train"),
                    "splits": inp.info["config"].get("splits")} if pretrained else {"objective": "none (random init)"})
    evaluation = {s: evaluation_entry(decided.operating[decided.operating["split"] == s], point_estimates(y, p)["auroc"],
                                      len(y), cfg.protocol()["eval_inputs"])
                  for s, (y, p) in ((s, (inp.datasets[s].y, p)) for s, p in preds.items())}
    write_card(path, build_card(path, training=training, pretraining=pretraining, evaluation=evaluation,
                                label_info=inp.store.meta.get("label_info")))
    decided.operating.insert(0, "model", f"{strategy}_{fraction:g}")
    decided.reliability.insert(0, "model", f"{strategy}_{fraction:g}")
    return decided


_REPEAT_DESIGN = ("repeat k: patient subsample draw and training seed seed + k, shared by every strategy (arms pair by "
                  "repeat); at fraction 1 every repeat has the same records and differs by seed only; the searched "
                  "value is chosen on repeat 0 and reused by the other repeats; classifier checkpoints: repeat 0")


def _search(cfg: FinetuneConfig, inp: _Inputs, strategy: str, fraction: float, sub: np.ndarray, features: dict,
            probe_encoders: dict, seed: int, device, search: Search, curves: list, tuning: list):
    """Repeat 0: train every grid value, score each on validation (its best epoch), keep the chosen one.

    Returns the chosen (model, fit result, {split: probs}, seconds); appends every candidate's curve and
    tuning row. Only the validation split decides; test and external scores of the others are dropped.
    """
    candidates = []
    for value in search.grid:
        start = time.perf_counter()
        model, fitted, preds = _train_model(cfg, inp, strategy, fraction, sub, features, probe_encoders, seed, device, value)
        seconds = time.perf_counter() - start
        score = fitted.best_score if cfg.monitor == "val_auroc" else -fitted.best_score
        stopped = stopped_at_last_epoch(fitted)
        search.add(score, best_epoch=int(fitted.best_epoch), epochs_run=len(fitted.history), stopped_at_last_epoch=stopped)
        curves.append(fitted.history.assign(strategy=strategy, fraction=fraction, repeat=0,
                                            **{f"searched_{search.param}": value}))
        tuning.append({"strategy": strategy, "fraction": fraction, "param": search.param, "value": value,
                       "val_score": fitted.best_score, "monitor": cfg.monitor, "best_epoch": fitted.best_epoch,
                       "epochs_run": len(fitted.history), "stopped_at_last_epoch": stopped, "train_seconds": seconds})
        candidates.append((model, fitted, preds, seconds))
    for row in tuning[-len(search.grid):]:
        row["chosen"] = row["value"] == search.chosen
    return candidates[search.best_index]


def _check_encoder(cfg: FinetuneConfig, inp: _Inputs, encoder_path) -> dict[str, list[str]]:
    """The guards on what the encoder was pretrained on; returns the task labels a supervised pretraining saw
    on these training records (empty: none), after refusing what must be refused.

    - pretrained on any validation, test or external record: refused (ValueError);
    - supervised-pretrained on the task's labels (or their diagnostic (sub)class) on the training records,
      or on records the checkpoint does not name: refused unless ``allow_label_overlap``.
    Labels seen on other records (a separate pretraining corpus, as ECGFounder's) are not a leak.
    """
    check_pretraining_leak(inp.info, inp.store, {s: inp.rows[s] for s in ("val", *cfg.eval_splits)}, encoder_path)
    overlap = label_overlap(inp.labels, pretraining_data(inp.info)["labels"], inp.store.meta.get("label_info", {}))
    if not overlap:
        return {}
    ids = inp.store.records["record_id"].astype(str).to_numpy()[inp.rows["train"]]
    shared = shared_records(inp.info, ids)
    if shared == 0:
        return {}
    where = "records it does not name" if shared is None else f"{shared} of the training records"
    if not cfg.allow_label_overlap:
        raise ValueError(f"{encoder_path}: the encoder's supervised pretraining used {len(overlap)} of the evaluated "
                         f"labels ({', '.join(sorted(overlap)[:8])}{', ...' if len(overlap) > 8 else ''}) on {where}: its "
                         "label-fraction results would not be label-efficient; choose a self-supervised finetune.encoder, "
                         "or set finetune.allow_label_overlap: true to run it marked (pretraining_label_leak)")
    return overlap


def point_estimates(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Macro AUROC / AUPRC over evaluable labels of targets (N, L) and probabilities (N, L), with n and n_labels."""
    return {"n": int(len(y)), "n_labels": int(evaluate.evaluable(y).sum()),
            **{metric: evaluate.macro(y, p, metric) for metric in evaluate.METRICS}}


def _headline(results: pd.DataFrame, labels: list[str], cfg: FinetuneConfig, meta: dict[str, Any]) -> dict[str, Any]:
    """Task, label count, protocol, repeats, and per split, strategy and fraction: the mean and spread over
    repeats of the point macro AUROC / AUPRC, the searched value and how many repeats stopped at their last epoch."""
    metrics: dict[str, Any] = {"task": cfg.task, "n_labels": len(labels), "protocol": cfg.protocol(),
                               "repeats": cfg.repeats, "repeat_design": meta["repeat_design"],
                               "baseline_init": meta["baseline_init"]}
    if meta["pretraining_label_leak"]:
        metrics["pretraining_label_leak"] = {k: ", ".join(v) for k, v in meta["pretraining_label_leak"].items()}
    for (split, strategy, fraction), group in results.groupby(["split", "strategy", "fraction"], sort=False):
        metrics.setdefault(split, {})[f"{strategy}_{fraction:g}"] = {
            **{m: float(group[m].mean()) for m in ("auroc", "auprc")},
            **{f"{m}_sd_repeats": float(group[m].std(ddof=0)) for m in ("auroc", "auprc")},
            "repeats": int(len(group)), group["tuned_param"].iloc[0]: float(group["tuned_value"].iloc[0]),
            "stopped_at_last_epoch": int(group["stopped_at_last_epoch"].sum()),
        }
    return metrics


def run(cfg, root: Path | None = None) -> FinetuneResult:
    """The finetune stage: train, save classifiers and scores, write tables, curves and metrics.

    ``cfg`` is ``ecgstudy.config.stage_config("finetune", params)``; outputs go under ``root`` (default: the
    repository root): ``models/finetune/`` (repeat 0's classifiers with their model cards, ``scores.npz``),
    ``reports/tables/finetune/results.csv`` (every repeat), ``tuning.csv`` (every searched value),
    ``decisions.csv`` and ``calibration.csv`` (thresholds chosen on val; reliability bins),
    ``reports/plots/finetune/curves.csv`` and ``reports/metrics/finetune.json``; wall-clock columns go to
    ``reports/timings/finetune.json``, never to a tracked output.
    """
    out = stage_outputs("finetune", root, models=True, plots=True, figures=False)
    store_dir = artifacts.store_path(cfg.data.curated, cfg.finetune.store, out.root)
    encoder = artifacts.encoder_path(cfg.finetune.encoder, out.root)
    result = train_all(cfg.finetune, store_dir, encoder, out.models, seed=cfg.seed)
    result.scores.save(out.root / artifacts.FINETUNE_SCORES)
    without_timings(result.results).to_csv(out.tables / "results.csv", index=False)
    without_timings(result.tuning).to_csv(out.tables / "tuning.csv", index=False)
    without_timings(result.curves).to_csv(out.plots / "curves.csv", index=False)
    result.decisions.to_csv(out.tables / "decisions.csv", index=False)  # thresholds chosen on val, on the eval splits
    result.calibration.to_csv(out.tables / "calibration.csv", index=False)  # reliability-diagram bins
    out.write_metrics(result.metrics)
    out.write_timings({"models": timing_rows(result.results, ["strategy", "fraction", "repeat", "split"]),
                       "search": timing_rows(result.tuning, ["strategy", "fraction", "value"]),
                       "epochs": timing_rows(result.curves, ["strategy", "fraction", "repeat", "epoch"])})
    return result
