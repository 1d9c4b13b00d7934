"""The pretrain stage: train every configured run, keep one encoder, compare them with linear probes.

:func:`pretrain_run` trains one run (objective x encoder) with the shared engine on the pretraining
splits, keeps the epoch with the lowest validation-split objective loss, re-estimates batch-norm
statistics on whole un-augmented records, and saves ``<models_dir>/<run>.pt``. :func:`run_pretrain`
does that for each run, copies the kept run to ``encoder.pt`` and scores every encoder with the
linear-probe comparison of :mod:`ecgstudy.stages.pretrain.compare`.

Every run starts from the same seed, so runs of the same architecture and size start from identical
weights, which are exactly the random-init baseline of the comparison.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ecgstudy.engine import distributed
from ecgstudy.engine.jobs import effective_workers, run_jobs
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.plots import training as training_plots
from ecgstudy.stages import artifacts
from ecgstudy.stages.outputs import stage_outputs
from ecgstudy.engine.probes import pos_weights
from ecgstudy.engine.tuning import stopped_at_last_epoch
from ecgstudy.models import build_encoder, count_parameters
from ecgstudy.models.checkpoint import preprocessing_spec, read_checkpoint, save_checkpoint
from ecgstudy.objectives import OBJECTIVES, ObjectiveContext, build_objective
from ecgstudy.stages.pretrain.config import PretrainConfig, PretrainRun
from ecgstudy.engine.train import autocast, fit, make_loader, recalibrate_batchnorm, resolve_device, set_threads, to_device

if TYPE_CHECKING:
    from ecgstudy.data.store import Store

#: Where per-epoch training states live (outside DVC outputs, so an interrupted stage resumes).
RESUME_DIR = Path("models/resume/pretrain")


@dataclass
class RunResult:
    """One trained run."""

    name: str
    history: pd.DataFrame  # per-epoch rows of ecgstudy.engine.train.fit
    checkpoint: Path  # <models_dir>/<name>.pt
    metrics: dict[str, Any]  # objective, encoder, n_params, best epoch and loss (no wall-clock values)
    timings: dict[str, Any] = field(default_factory=dict)  # seconds, train samples/s: reports/timings/pretrain.json


@dataclass
class PretrainResult:
    """What :func:`run_pretrain` returns."""

    runs: dict[str, RunResult]  # by run name, in params order
    comparison: pd.DataFrame  # linear-probe AUROC of each run vs random init (ecgstudy.stages.pretrain.compare)
    checkpoint: Path  # models/pretrain/encoder.pt: the kept run's encoder
    metrics: dict[str, Any]  # for reports/metrics/pretrain.json
    scores: ScoreFile = field(default_factory=ScoreFile)  # validation probe scores (models/pretrain/probe_scores.npz)
    figures: dict[str, Path] = field(default_factory=dict)  # written figures by name

    @property
    def history(self) -> pd.DataFrame:
        """Every run's per-epoch rows with a ``run`` column."""
        return pd.concat([r.history.assign(run=name) for name, r in self.runs.items()], ignore_index=True)


def _objective_loss(objective, encoder, dataset, batch_size: int, seed: int, device: torch.device, bf16: bool) -> dict[str, float]:
    """Mean objective loss and logs over a dataset with a fixed generator (comparable across epochs)."""
    generator = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    n = 0
    for batch in make_loader(dataset, batch_size, shuffle=False, seed=seed, drop_last=True):
        batch = to_device(batch, device)
        with autocast(device, bf16):
            loss, logs = objective(encoder, batch, generator)
        size = len(batch["x"])
        for key, value in {"loss": float(loss), **logs}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * size
        n += size
    return {f"val_{k}": v / max(n, 1) for k, v in sums.items()}


def _labels_for(objective: str, options: Any, store: Store, rows: np.ndarray) -> tuple[np.ndarray | None, list[str], np.ndarray]:
    """Targets (N_store, L) and names for a label-reading objective, and the rows that have a label.

    Label-free objectives get (None, [], rows): every record serves.
    """
    if not OBJECTIVES[objective].needs_labels:
        return None, [], rows
    from ecgstudy.data.labels import task_labels

    tl = task_labels(store, options.task, options.min_positives, within=rows)
    if not tl.names:
        raise ValueError(f"{store.path}: no {options.task!r} label has {options.min_positives} positives to pretrain on")
    return tl.y, list(tl.names), rows[tl.keep[rows]]


def pretrain_run(
    run: PretrainRun,
    cfg: PretrainConfig,
    store: Store,
    models_dir: str | Path,
    *,
    seed: int,
    history_csv: str | Path | None = None,
    state_path: str | Path | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train one run on ``cfg.splits`` of ``store`` and save ``<models_dir>/<run.name>.pt``.

    Parameters
    ----------
    run, cfg
        The run and the whole pretrain section (optim, augmentations, objective options).
    store
        Curated store with signals (N, 12, T) at ``store.fs`` Hz.
    seed
        Seeds the encoder init (the same for every run), shuffling and every augmentation and mask draw.
    history_csv
        Per-epoch curve for ``dvc plots``.
    state_path
        Per-epoch training state: rerunning after an interruption resumes from the last finished epoch.
    on_epoch_end
        Called with each epoch's row (see :func:`ecgstudy.engine.train.fit`).

    Under ``torchrun`` every process trains its shard (:mod:`ecgstudy.engine.distributed`); only the main
    process writes the checkpoint.
    """
    options = cfg.options(run.objective)
    rows, targets, label_names, train_set, val_set = _datasets(run, cfg, options, store)

    torch.manual_seed(seed)
    encoder = build_encoder(run.arch, run.preset, n_leads=len(store.leads))
    context = ObjectiveContext(
        fs=float(store.fs),
        n_samples=int(store.n_samples),
        n_labels=len(label_names),
        pos_weight=tuple(pos_weights(targets[rows]).tolist()) if targets is not None else (),
        augment=cfg.augment,
    )
    objective = build_objective(run.objective, options, encoder, context)
    model = torch.nn.ModuleDict({"encoder": encoder, "objective": objective})
    optim = dataclasses.replace(cfg.optim, epochs=run.epochs or cfg.optim.epochs, lr=run.lr or cfg.optim.lr,
                                max_steps=cfg.steps or cfg.optim.max_steps)
    device = resolve_device(optim.device)
    generator = torch.Generator().manual_seed(seed + 1)

    def loss_fn(m, batch):
        return m["objective"](m["encoder"], batch, generator)

    def validate(m):
        return _objective_loss(m["objective"], m["encoder"], val_set, optim.batch_size, seed + 2, device, optim.bf16)

    start = time.perf_counter()
    result = fit(
        model,
        loss_fn,
        train_set,
        optim,
        seed=seed,
        validate=validate if val_set is not None else None,
        monitor="val_loss",
        mode="min",
        drop_last=True,
        history_csv=history_csv,
        desc=f"pretrain {run.name}",
        state_path=state_path,
        generators={"objective": generator},
        on_epoch_end=on_epoch_end,
        fingerprint={"run": dataclasses.asdict(run), "options": dataclasses.asdict(options),
                     "augment": dataclasses.asdict(cfg.augment), "splits": list(cfg.splits), "seed": seed,
                     "n_records": int(len(rows))},
    )
    encoder = model["encoder"]
    twin = _random_twin(run, store, seed)  # the run's own starting weights (same seed, same builder)
    if cfg.recalibrate_bn:  # statistics of augmented, masked segments -> of whole records; the twin likewise
        for module in (encoder, twin):
            recalibrate_batchnorm(
                module, lambda b, m=module: m.embed(b["x"], b["lead_mask"].bool()), train_set,
                batch_size=optim.batch_size, device=device, bf16=optim.bf16,
            )
    seconds = time.perf_counter() - start
    encoder, twin = encoder.cpu().eval(), twin.cpu().eval()
    checkpoint = Path(models_dir) / f"{run.name}.pt"
    if distributed.info().is_main:
        provenance = {
            "config": {"run": dataclasses.asdict(run), "options": dataclasses.asdict(options),
                       "augment": dataclasses.asdict(cfg.augment), "optim": dataclasses.asdict(optim),
                       "splits": list(cfg.splits), "seed": seed, "objective": run.objective},
            "preprocessing": preprocessing_spec(store.meta),
            "labels": [],
        }
        data = {"store": Path(store.path).name, "source": store.meta.get("source"), "splits": list(cfg.splits),
                "labels": label_names, "record_ids": store.records["record_id"].astype(str).to_numpy()[rows].tolist()}
        save_checkpoint(checkpoint, encoder, **provenance, extra={
            "best_epoch": result.best_epoch, "best_val_loss": result.best_score, "n_train": int(len(rows)),
            "pretraining_labels": label_names, "pretraining_data": data})
        save_checkpoint(artifacts.twin_path(models_dir, run.name), twin, **provenance, extra={
            "random_init_of": run.name, "n_train": int(len(rows)), "pretraining_labels": [],
            "pretraining_data": {**data, "labels": [], "record_ids": []},
            "batchnorm_recalibrated_on": int(len(rows)) if cfg.recalibrate_bn else 0})
    metrics = _run_metrics(run, encoder, rows, result, optim)
    timings = {"seconds": seconds, "train_samples_per_s": float(result.history["samples_per_s"].mean())}
    return RunResult(name=run.name, history=result.history, checkpoint=checkpoint, metrics=metrics, timings=timings)


def _random_twin(run: PretrainRun, store: Store, seed: int) -> torch.nn.Module:
    """The run's starting encoder, rebuilt: the same builder and seed as :func:`pretrain_run` (global RNG kept)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_encoder(run.arch, run.preset, n_leads=len(store.leads))


def _run_metrics(run: PretrainRun, encoder, rows: np.ndarray, result, optim) -> dict[str, Any]:
    """Objective, encoder, size, compute, training facts and (where logged) the best epoch's top-1 of one run."""
    history = result.history
    steps = int(history["step"].iloc[-1]) if len(history) else 0
    metrics: dict[str, Any] = {
        "objective": run.objective,
        "encoder": f"{run.arch}-{run.preset}",
        "n_params": count_parameters(encoder),
        "n_train_records": int(len(rows)),
        "optimizer_steps": steps,
        "samples_seen": steps * optim.batch_size * optim.grad_accum * distributed.info().world_size,
        "epochs_run": int(len(history)),
        "stopped_at_last_epoch": bool(stopped_at_last_epoch(result)),
        "best_epoch": int(result.best_epoch),
        "best_val_loss": result.best_score,
        "final_train_loss": float(history["train_loss"].iloc[-1]),
    }
    best = history.loc[history["epoch"] == result.best_epoch]
    for key in ("val_top1", "val_cmsc_top1"):
        if key in history and len(best):
            metrics[f"best_{key}"] = float(best[key].iloc[0])
    return metrics


def _datasets(run: PretrainRun, cfg: PretrainConfig, options: Any, store: Store):
    """(rows, targets (N_store, L) or None, label names, train dataset, validation dataset or None) of a run.

    The validation split scores the objective for epoch selection unless it is pretrained on; with labels,
    only validation records that have one of the run's labels serve.
    """
    from ecgstudy.data.store import ECGDataset

    rows = np.asarray(store.indices(list(cfg.splits)))
    targets, label_names, rows = _labels_for(run.objective, options, store, rows)
    if len(rows) == 0:
        raise ValueError(f"{store.path}: no records in split(s) {cfg.splits} for run {run.name!r}")
    val_rows = np.asarray(store.indices("val")) if "val" not in cfg.splits else np.array([], dtype=np.int64)
    if targets is not None and len(val_rows):
        val_rows = val_rows[targets[val_rows].any(axis=1)]
    train_set = ECGDataset(store, rows, labels=targets)
    val_set = ECGDataset(store, val_rows, labels=targets) if len(val_rows) else None
    return rows, targets, label_names, train_set, val_set


@dataclass
class _Inputs:
    """What every run reads: the section, the pretraining store and where the outputs go (opened per process)."""

    cfg: PretrainConfig
    store_dir: Path
    models_dir: Path
    plots_dir: Path | None
    resume_dir: Path | None  # None: no per-epoch states
    seed: int
    store: Store | None = None  # opened from store_dir when not given

    def __post_init__(self) -> None:
        if self.store is None:
            from ecgstudy.data.store import Store

            self.store = Store(self.store_dir)


def _train_run(inputs: _Inputs, run: PretrainRun) -> RunResult:
    """One run (a job of :func:`run_pretrain`): trained, saved, its resume state deleted once it has finished."""
    state = inputs.resume_dir / f"{run.name}.state.pt" if inputs.resume_dir is not None else None
    csv = inputs.plots_dir / f"{run.name}.csv" if inputs.plots_dir is not None else None
    result = pretrain_run(run, inputs.cfg, inputs.store, inputs.models_dir, seed=inputs.seed, history_csv=csv,
                          state_path=state)
    if state is not None and distributed.info().is_main:
        state.unlink(missing_ok=True)
    return result


def forward_flops(run: PretrainRun, store: Store) -> int:
    """FLOPs of one forward pass of ``run``'s encoder on one stored record (12 x T): a cost estimate that
    orders the runs (the objectives' own heads are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's generator as it was
        encoder = build_encoder(run.arch, run.preset, n_leads=len(store.leads))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        encoder(torch.zeros(1, len(store.leads), int(store.n_samples)))
    return int(counter.get_total_flops())


def run_pretrain(
    cfg: PretrainConfig,
    store_dir: str | Path,
    models_dir: str | Path,
    *,
    seed: int,
    probe_store_dir: str | Path | None = None,
    plots_dir: str | Path | None = None,
    resume_dir: str | Path | None = None,
) -> PretrainResult:
    """Train every run of ``cfg``, keep ``cfg.keep`` as ``encoder.pt``, compare all with linear probes.

    Parameters
    ----------
    store_dir
        Curated store pretrained on (docs/architecture.md, "Curated store") with signals (N, 12, T) at fs Hz
        and train/val splits: the foundation corpus. A store whose meta.json names another role is refused.
    probe_store_dir
        Downstream store of the probe comparison (train -> val); default ``store_dir`` (stores without a
        role, as in tests). A foundation store is refused: probes never score pretraining records.
    models_dir
        Folder for ``<run>.pt`` and ``encoder.pt``.
    plots_dir
        Folder for the per-epoch curves ``<run>.csv`` (``dvc plots``).
    resume_dir
        Folder of per-epoch training states (default models/resume/pretrain under the repo root when
        ``cfg.resume``); a run's state is deleted once the run has finished.
    """
    from ecgstudy.paths import resolve
    from ecgstudy.stages.pretrain.compare import probe_comparison
    from ecgstudy.data.store import Store

    set_threads(cfg.num_threads)
    store = Store(store_dir)
    probe_store = Store(probe_store_dir) if probe_store_dir is not None else store
    if store.role not in (None, "foundation"):
        raise ValueError(f"pretrain.store: {store.path} has role {store.role!r}; pretraining reads only a foundation "
                         "corpus, never downstream or external records")
    if probe_store.role == "foundation":
        raise ValueError(f"pretrain.probe.store: {probe_store.path} is a foundation corpus; the probe comparison "
                         "trains and scores on a downstream store")
    models_dir = Path(models_dir)
    if cfg.resume and resume_dir is None:
        resume_dir = resolve(RESUME_DIR)
    opened = partial(_Inputs, cfg, Path(store_dir), models_dir, None if plots_dir is None else Path(plots_dir),
                     Path(resume_dir) if cfg.resume else None, seed)
    device = resolve_device(cfg.optim.device)
    # in workers, the runs with the largest encoders (forward FLOPs) start first: the pool balances best
    parallel = effective_workers(cfg.workers, device) > 1
    order = sorted(cfg.runs, key=lambda r: -forward_flops(r, store)) if parallel else list(cfg.runs)
    done = run_jobs(_train_run, order, state=opened(store), reopen=opened, workers=cfg.workers,
                    threads=cfg.num_threads, device=device, desc="pretrain")
    trained = {r.name: result for r, result in zip(order, done)}
    runs: dict[str, RunResult] = {r.name: trained[r.name] for r in cfg.runs}
    kept = models_dir / "encoder.pt"
    if not distributed.info().is_main:  # other torchrun processes only helped train
        return PretrainResult(runs=runs, comparison=pd.DataFrame(), checkpoint=kept, metrics={})
    shutil.copyfile(runs[cfg.keep].checkpoint, kept)
    comparison, scores = probe_comparison({name: r.checkpoint for name, r in runs.items()}, probe_store, cfg.probe, seed=seed,
                                          device=cfg.optim.device, bf16=cfg.optim.bf16)
    write_encoder_cards(runs, kept, cfg.keep, store, comparison)
    return PretrainResult(runs=runs, comparison=comparison, checkpoint=kept, metrics=_metrics(cfg, runs, comparison),
                          scores=scores)


def write_encoder_cards(runs: dict[str, RunResult], kept: Path, keep: str, store, comparison: pd.DataFrame) -> None:
    """A model card beside every run's checkpoint, its random-init twin and ``encoder.pt`` (:mod:`ecgstudy.apply.cards`)."""
    from ecgstudy.apply.cards import build_card, write_card

    probes = comparison.set_index("run") if len(comparison) else pd.DataFrame()
    for name, r in runs.items():
        pretraining = {"source": store.meta.get("source"), "run": name, "objective": r.metrics["objective"],
                       "records": r.metrics["n_train_records"], "epochs_run": r.metrics["epochs_run"],
                       "best_epoch": r.metrics["best_epoch"], "best_val_loss": r.metrics["best_val_loss"]}
        if name in probes.index:  # the study's baseline comparison (validation split, point values)
            row = probes.loc[name]
            pretraining.update(val_probe_auroc=float(row["auroc"]), val_probe_auroc_random_init=float(row["random_auroc"]))
        for path in [r.checkpoint] + ([kept] if name == keep else []):
            write_card(path, build_card(path, pretraining=pretraining, label_info=store.meta.get("label_info")))
        twin = artifacts.twin_path(Path(r.checkpoint).parent, name)
        if twin.is_file():  # the baseline: the same encoder at its starting weights, never trained
            baseline = {"source": store.meta.get("source"), "run": name, "objective": "none (random initialisation)",
                        "random_init_of": name, "records": 0, "epochs_run": 0,
                        "batchnorm_recalibrated_on_records": read_checkpoint(twin)["extra"]["batchnorm_recalibrated_on"]}
            if name in probes.index:
                baseline.update(val_probe_auroc=float(probes.loc[name]["random_auroc"]))
            write_card(twin, build_card(twin, pretraining=baseline, label_info=store.meta.get("label_info")))


def _metrics(cfg: PretrainConfig, runs: dict[str, RunResult], comparison: pd.DataFrame) -> dict[str, Any]:
    """{keep, n_runs, <run>: training facts + probe and random-init validation AUROC and their difference}."""
    metrics: dict[str, Any] = {"keep": cfg.keep, "n_runs": len(runs)}
    by_run = comparison.set_index("run")
    for name, r in runs.items():
        entry = dict(r.metrics)
        if name in by_run.index:
            row = by_run.loc[name]
            entry.update({"probe_val_auroc": float(row["auroc"]), "random_init_val_auroc": float(row["random_auroc"]),
                          "probe_gain": float(row["diff"])})
        metrics[name] = entry
    keys = list(dict.fromkeys(k for name in runs for k in metrics[name]))
    for name in runs:  # the same keys for every run: one table in the report
        metrics[name] = {k: metrics[name].get(k) for k in keys}
    return metrics


def write_outputs(result: PretrainResult, out) -> dict[str, Path]:
    """Write the comparison table, the probe scores, the loss figure and the metrics (main process only)."""
    result.comparison.to_csv(out.tables / "probe_comparison.csv", index=False)
    result.scores.save(out.root / artifacts.PROBE_SCORES)
    objectives = {name: r.metrics["objective"] for name, r in result.runs.items()}
    figures = {"loss": training_plots.objective_curves({n: r.history for n, r in result.runs.items()}, objectives,
                                                       out.figure("loss"))}
    out.write_metrics(result.metrics)
    out.write_timings({name: r.timings for name, r in result.runs.items()})
    return figures


def run(cfg, root: Path | None = None) -> PretrainResult:
    """The pretrain stage: every run, the kept encoder, the probe comparison, and every output written.

    ``cfg`` is ``ecgstudy.config.stage_config("pretrain", params)``. Writes ``models/pretrain/`` (``<run>.pt``,
    ``encoder.pt``, ``probe_scores.npz``), ``reports/plots/pretrain/<run>.csv``,
    ``reports/tables/pretrain/probe_comparison.csv``, ``reports/figures/pretrain/loss.png`` and
    ``reports/metrics/pretrain.json``. Under torchrun only the main process writes.
    """
    out = stage_outputs("pretrain", root, models=True, plots=True)
    store_dir = artifacts.pretraining_store(cfg.data.curated, cfg.pretrain.store, out.root)
    probe_dir = artifacts.store_path(cfg.data.curated, cfg.pretrain.probe.store, out.root)
    result = run_pretrain(cfg.pretrain, store_dir, out.models, seed=cfg.seed, probe_store_dir=probe_dir,
                          plots_dir=out.plots)
    if distributed.info().is_main:
        result.figures = write_outputs(result, out)
    return result
