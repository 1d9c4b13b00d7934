"""Rare-disease transfer stage: does a pretrained encoder help when only a handful of cases exist?

Mirrors the UCSF rare-disease experiment at small scale. For each rare condition of the rare store
(column ``case_control_set``), its patients are split once (seeded, stratified by case/control) into a
training pool and a held-out test part. From the pool, training sets of ``n`` cases (plus controls in the
set's case:control ratio, whole patients only) are drawn, ``repeats`` times with different seeds, and
each strategy is trained on them:

================  ==========================================================================
foundation        pretrained encoder + linear head, fine-tuned end to end
foundation_probe  pretrained encoder frozen, logistic head on its pooled features
scratch           the same architecture from random initialisation, trained end to end
================  ==========================================================================

Repeat k draws its training set and trains with the seed ``[seed, condition, k]``, the same for every
strategy (strategies pair by repeat). At ``n = all`` every repeat holds the whole pool: those repeats differ
by seed only (column ``draws_differ``). There is no validation split in sets this small, so the full
fine-tunes (foundation and scratch alike) train for a fixed number of steps with no search and no model
selection, and the probe's weight decay is chosen from ``weight_decay_grid`` by cross-validation over the
patients of repeat 0's training set (:func:`ecgstudy.engine.tuning.cv_probe_weight_decay`), then reused by
the other repeats: nothing can peek at the test part. ``scratch`` starts from the encoder's random-init
twin (its pretraining run's initial weights, batch norm re-estimated on the same records). The test part is
scored with AUROC; the stage reports the mean and spread over repeats and saves every run's test
probabilities (``models/transfer/scores.npz``, keys ``("n<cases>", strategy, "r<k>")``); the evaluate stage
adds the intervals and the paired difference foundation - scratch.

Saved models. Repeat 0's model of every condition and strategy at the largest training size
(``checkpoints: largest``; ``all``: every size; ``none``) is saved as a classifier checkpoint,
``models/transfer/<condition>_<strategy>_n<cases>.pt``, usable by ``ecgstudy predict`` and described by a
model card beside it (:mod:`ecgstudy.apply.cards`). With no validation split, its decision threshold is
chosen by ``threshold_rule`` on out-of-fold probabilities of its own training records: ``cv_folds``
patient folds (cases spread over the folds), each fold's records scored by a model trained exactly like
the saved one (same strategy, step budget and weight decay) on the other folds. Only saved models pay
for those fold models. The thresholds' sensitivity, specificity and calibration on the test part go to
``reports/tables/transfer/{decisions,calibration}.csv``.

With a real dataset the rare store is drawn from the main store by the curate stage
(:mod:`ecgstudy.data.rare_sets`), so the encoder may have been pretrained on some of the sets' signals (and,
with a supervised objective, labels: :func:`train_all` warns and records it). When no set was
configured there is no rare store; ``require_store=False`` then returns an explicit empty result
(:func:`empty_result`) instead of failing, so the stage still writes every output.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ecgstudy.apply.cards import build_card, evaluation_entry, write_card
from ecgstudy.data.store import ECGDataset, Store
from ecgstudy.engine import calibration, evaluate
from ecgstudy.engine import thresholds as th
from ecgstudy.engine.jobs import run_jobs
from ecgstudy.engine.probes import embed_dataset, fresh_encoder, pos_weights, train_full, train_probe
from ecgstudy.engine.scores import ScoreFile
from ecgstudy.engine.train import TrainConfig, predict, resolve_device
from ecgstudy.engine.tuning import cv_probe_weight_decay, patient_folds
from ecgstudy.models.checkpoint import save_checkpoint
from ecgstudy.paths import resolve
from ecgstudy.stages import artifacts
from ecgstudy.stages.common import label_overlap, open_store_and_model, pretraining_data, random_twin
from ecgstudy.stages.outputs import stage_outputs, timing_rows, without_timings

log = logging.getLogger(__name__)

STRATEGIES = ("foundation", "foundation_probe", "scratch")
SET_COLUMN = "case_control_set"
#: Columns of the result tables (also of the empty tables written when there is no set).
COLUMNS = {
    "results": ["condition", "n_cases", "strategy", "auroc", "auroc_sd_repeats", "repeats", "draws_differ", "weight_decay",
                "n_test"],
    "runs": ["condition", "n_cases", "n_train", "strategy", "repeat", "auroc", "weight_decay", "seconds"],
    "sets": ["condition", "pool_cases", "pool_controls", "test_cases", "test_controls"],
}
#: Leading columns of the saved models' decisions and calibration tables (then engine.thresholds /
#: engine.calibration columns).
MODEL_KEYS = ["model", "condition", "strategy", "n_cases", "split"]


@dataclass(frozen=True)
class TransferConfig:
    """params.yaml ``transfer`` section."""

    store: str = "rare"  # rare case-control store folder under data.curated
    encoder: str = "keep"  # pretraining run whose encoder is transferred: keep = pretrain.keep, or a pretrain.runs name
    conditions: list[str] = field(default_factory=list)  # rare conditions to run (empty = every set in the store)
    n_train_cases: list[int | Literal["all"]] = field(default_factory=lambda: [10, 20, "all"])  # cases per training set
    test_frac: float = 0.3  # share of each set's patients held out for testing (stratified case/control)
    repeats: int = 3  # training sets drawn (and models trained) per size, each with its own seed; at n = all the sets are the same and repeats differ by seed only
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # foundation (fine-tuned pretrained encoder), foundation_probe (frozen, logistic head), scratch (same net, random init)
    crop_s: float = 4.0  # random training crops (s), also an augmentation; testing uses whole 10 s records
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=1, min_steps=30, batch_size=32, lr=1e-3, warmup_frac=0.1, progress=False)
    )  # a fixed 30 steps per run (no validation data to stop on): ~1.3 s per run on 2 cores
    probe: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=1, min_steps=200, batch_size=64, lr=1e-2, warmup_frac=0.0, bf16=False, progress=False
        )
    )  # logistic head on cached features
    weight_decay_grid: list[float] = field(default_factory=lambda: [0.01, 1.0, 10.0])  # probe weight decays searched by inner patient cross-validation on repeat 0's training set (no validation split); 3 values x cv_folds fits per condition and size
    cv_folds: int = 3  # patient folds of that cross-validation, and of the out-of-fold probabilities that set the saved models' thresholds
    dropout: float = 0.1  # dropout before the head when fine-tuning
    num_threads: int = 0  # torch CPU threads (0 = torch default); with workers > 1, the threads of each worker (0 = 1)
    workers: int = 2  # conditions trained side by side in this many spawned one-thread processes on a CPU (1, or a GPU: one after another in this process); at the same threads per job the numbers do not depend on it
    checkpoints: Literal["largest", "all", "none"] = "largest"  # repeat 0's models saved under models/transfer (with model cards, for ecgstudy predict): largest = the largest training size per condition and strategy, all = every size, none; each saved model also trains cv_folds fold models for its threshold
    threshold_rule: str = "youden"  # decision threshold of each saved model, chosen on out-of-fold probabilities of its training records (cv_folds patient folds; no validation split): youden | f1 | sensitivity:X

    def validate(self) -> None:
        th.parse_rule(self.threshold_rule)
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"unknown strategies {bad}; valid: {list(STRATEGIES)}")
        if not self.n_train_cases or any(n != "all" and n < 1 for n in self.n_train_cases):
            raise ValueError(f"n_train_cases {self.n_train_cases}: positive integers or 'all'")
        if not 0 < self.test_frac < 1 or self.repeats < 1 or self.crop_s <= 0 or self.workers < 1:
            raise ValueError("test_frac must be in (0, 1), repeats >= 1, crop_s > 0, workers >= 1")
        if not self.weight_decay_grid or any(w < 0 for w in self.weight_decay_grid) or self.cv_folds < 2:
            raise ValueError(f"weight_decay_grid {self.weight_decay_grid} must list values >= 0 and cv_folds be >= 2")


@dataclass
class TransferResult:
    """Tables, scores and headline metrics of :func:`train_all` (intervals: the evaluate stage)."""

    results: pd.DataFrame  # condition x n_cases x strategy: mean test AUROC over repeats, their spread
    runs: pd.DataFrame  # one row per trained model: condition, n_cases, strategy, repeat, auroc, seconds
    sets: pd.DataFrame  # per condition: cases/controls in the training pool and test part
    metrics: dict[str, Any]  # for reports/metrics/transfer.json
    scores: ScoreFile = field(default_factory=ScoreFile)  # test-part probabilities of every run (models/transfer/scores.npz)
    decisions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MODEL_KEYS))  # per saved model: its stored threshold on the test part (sensitivity, specificity, AUROC, ECE)
    calibration: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MODEL_KEYS))  # per saved model: reliability-diagram bins on the test part
    checkpoints: dict[str, Path] = field(default_factory=dict)  # saved model name -> checkpoint path


def split_patients(is_case: np.ndarray, patients: np.ndarray, test_frac: float, rng: np.random.Generator) -> np.ndarray:
    """Bool (N,) test membership: ``test_frac`` of case patients and of control patients (whole patients).

    A patient counts as a case patient when any of their records is a case.
    """
    frame = pd.DataFrame({"patient": patients, "case": is_case})
    per_patient = frame.groupby("patient", sort=True)["case"].any()
    test: set[str] = set()
    for flag in (True, False):
        group = per_patient.index[per_patient.to_numpy() == flag].to_numpy()
        n_test = int(round(test_frac * len(group)))
        if len(group) >= 2:
            n_test = min(max(n_test, 1), len(group) - 1)  # both parts keep at least one patient
        test.update(rng.permutation(group)[:n_test].tolist())
    return np.isin(patients, list(test))


def draw_training_set(
    is_case: np.ndarray, patients: np.ndarray, pool: np.ndarray, n_cases: int, rng: np.random.Generator
) -> np.ndarray:
    """Store rows of ``n_cases`` case patients and their share of control patients from ``pool`` rows.

    Controls are drawn in the pool's control:case patient ratio (at least one). Returns sorted rows.
    """
    pool = np.asarray(pool)
    case_patients = np.unique(patients[pool][is_case[pool]])
    control_patients = np.setdiff1d(np.unique(patients[pool]), case_patients)
    n_cases = min(n_cases, len(case_patients))
    n_controls = min(len(control_patients), max(1, int(round(n_cases * len(control_patients) / max(len(case_patients), 1)))))
    chosen = np.r_[rng.permutation(case_patients)[:n_cases], rng.permutation(control_patients)[:n_controls]]
    return np.sort(pool[np.isin(patients[pool], chosen)])


def _sizes(requested: list[int | str], available: int) -> list[int]:
    """Case counts to run: requested sizes clamped to what the pool has, duplicates removed, ascending."""
    sizes = {available if n == "all" else min(int(n), available) for n in requested}
    return sorted(s for s in sizes if s > 0)


def empty_result(reason: str) -> TransferResult:
    """The stage's result when there is nothing to run: empty tables (with their columns) and metrics
    ``{"status": "no rare-disease sets", "reason": reason, "n_conditions": 0}``."""
    tables = {name: pd.DataFrame(columns=cols) for name, cols in COLUMNS.items()}
    return TransferResult(**tables, metrics={"status": "no rare-disease sets", "reason": reason, "n_conditions": 0})


def missing_sets_reason(store_dir: str | Path) -> str | None:
    """Why ``store_dir`` offers no rare-disease set to run (no store, no ``case_control_set`` column, no
    set in it), or None when it has sets."""
    store_dir = Path(store_dir)
    if not (store_dir / "meta.json").is_file():
        return (f"no rare-disease sets configured: no rare store at {artifacts.shown(store_dir)} (a real dataset gets one "
                "only from curate.rare_sets.codes with enough cases; see reports/tables/curate/rare_sets.csv)")
    import pyarrow.parquet as pq

    if SET_COLUMN not in pq.read_schema(store_dir / "records.parquet").names:
        return f"{artifacts.shown(store_dir)}: records.parquet has no {SET_COLUMN!r} column; not a rare case-control store"
    sets = pd.read_parquet(store_dir / "records.parquet", columns=[SET_COLUMN])[SET_COLUMN].dropna()
    return None if len(sets) else f"{artifacts.shown(store_dir)}: no record belongs to a case-control set"


def pretraining_overlap(conditions: list[str], encoder_info: dict[str, Any], label_info: dict[str, dict]) -> dict[str, list[str]]:
    """{condition: pretraining labels that are the condition or its diagnostic (sub)class}.

    A supervised pretraining objective stores its label names in the checkpoint's
    ``extra["pretraining_labels"]``; a self-supervised one stores none (empty result).
    """
    return label_overlap(conditions, pretraining_data(encoder_info)["labels"], label_info)


@dataclass
class _Condition:
    """One rare condition's set: its store rows, case flags, test part and training pool."""

    name: str
    index: int  # position among the conditions run (seeds the split and the draws)
    rows: np.ndarray  # store rows of the set
    is_case: np.ndarray  # (N_store,) bool
    pool: np.ndarray  # training-pool rows
    test: np.ndarray  # held-out test rows


def _split_condition(store: Store, cond: str, k: int, patients: np.ndarray, cfg: TransferConfig, seed: int,
                     store_dir) -> _Condition:
    """Split a condition's set once (seeded by ``[seed, k]``) into a training pool and a test part."""
    rows = np.flatnonzero(store.records[SET_COLUMN].astype(str).to_numpy() == cond)
    is_case = store.records[f"y_{cond}"].to_numpy() == 1
    test_mask = split_patients(is_case[rows], patients[rows], cfg.test_frac, np.random.default_rng([seed, k]))
    part = _Condition(cond, k, rows, is_case, rows[~test_mask], rows[test_mask])
    y_test = is_case[part.test]
    if y_test.min() == y_test.max():
        raise ValueError(f"{store_dir}: the {cond} test part lacks cases or controls ({len(part.test)} records)")
    return part


def _fit_one(cfg: TransferConfig, store: Store, cond: _Condition, strategy: str, train_rows: np.ndarray, n_cases: int,
             run_seed: int, encoders: dict, info: dict, probe_features, crop: int, device,
             weight_decay: float | None = None, score_rows: np.ndarray | None = None) -> tuple[torch.nn.Module, np.ndarray]:
    """Train ``strategy`` on ``train_rows``; return the classifier and its probabilities (N_score, 1) on
    ``score_rows`` (default: the test part).

    ``encoders``: ``{"pretrained": ..., "twin": ...}``; ``weight_decay``: the probe's (None: the preset's)."""
    score_rows = cond.test if score_rows is None else score_rows
    y_train = cond.is_case[train_rows].astype(np.float32)[:, None]
    weight = pos_weights(y_train)
    if strategy == "foundation_probe":
        z, position = probe_features
        probe = cfg.probe if weight_decay is None else dataclasses.replace(cfg.probe, weight_decay=weight_decay)
        model, _ = train_probe(encoders["pretrained"], z[[position[r] for r in train_rows]], y_train, None, None, probe,
                               seed=run_seed, pos_weight=weight)
        with torch.no_grad():
            return model, torch.sigmoid(model.head(torch.as_tensor(z[[position[r] for r in score_rows]]))).numpy()
    encoder = fresh_encoder(info["spec"], run_seed)
    encoder.load_state_dict(encoders["pretrained" if strategy == "foundation" else "twin"].state_dict())
    train_set = ECGDataset(store, train_rows, labels=[cond.name], crop=crop, random_crop=True, seed=run_seed)
    model, _ = train_full(encoder, train_set, None, 1, cfg.optim, seed=run_seed, dropout=cfg.dropout,
                          pos_weight=weight, desc=f"{cond.name} {strategy} n={n_cases}")
    score_set = ECGDataset(store, score_rows, labels=[cond.name])
    logits, _ = predict(lambda b: model(b["x"], b["lead_mask"].bool()), score_set, device=device, bf16=cfg.optim.bf16, keys=())
    return model, 1.0 / (1.0 + np.exp(-logits))


def model_name(condition: str, strategy: str, n_cases: int) -> str:
    """File name of a saved rare-disease classifier: ``<condition>_<strategy>_n<cases>.pt`` (read by no other
    stage: ``ecgstudy predict`` and ``describe`` take it)."""
    return f"{condition}_{strategy}_n{int(n_cases)}.pt"


def saved_sizes(choice: str, sizes: list[int]) -> list[int]:
    """Training sizes whose repeat-0 models are saved: ``largest`` (the largest of ``sizes``), ``all``, ``none``."""
    if not sizes or choice == "none":
        return []
    return list(sizes) if choice == "all" else [max(sizes)]


def out_of_fold(cfg: TransferConfig, store: Store, cond: _Condition, strategy: str, train_rows: np.ndarray,
                n_cases: int, patients: np.ndarray, run_seed: int, encoders: dict, info: dict, probe_features, crop: int,
                device, weight_decay: float | None) -> tuple[np.ndarray, int]:
    """Probabilities (N_train, 1) of the training records, each scored by a model trained like the saved one
    (same strategy, budget and weight decay) on the other patient folds; and the number of folds.

    Folds: :func:`ecgstudy.engine.tuning.patient_folds` over the training records' patients (case patients
    spread over the folds), ``cv_folds`` of them or one per patient when there are fewer; fold i trains
    with seed ``run_seed + 1 + i``. Reads training records only: the test part stays unseen."""
    k = min(cfg.cv_folds, len(np.unique(patients[train_rows])))
    parts = patient_folds(patients[train_rows], cond.is_case[train_rows], k, run_seed)
    oof = np.full((len(train_rows), 1), np.nan)
    for i, held in enumerate(parts):
        fit_rows = np.delete(train_rows, held)
        _, oof[held] = _fit_one(cfg, store, cond, strategy, fit_rows, n_cases, run_seed + 1 + i, encoders, info,
                                probe_features, crop, device, weight_decay=weight_decay, score_rows=train_rows[held])
    return oof, k


@dataclass
class _Saver:
    """Where and how the saved models go: folder, encoder provenance, store facts for the cards."""

    models_dir: Path
    encoder_path: Path
    info: dict[str, Any]  # the pretrained encoder's checkpoint info
    twin_how: str
    meta: dict[str, Any]  # the rare store's meta.json
    record_ids: np.ndarray  # (N_store,) str
    written: dict[str, Path] = field(default_factory=dict)
    operating: list[pd.DataFrame] = field(default_factory=list)
    reliability: list[pd.DataFrame] = field(default_factory=list)


def _save_model(cfg: TransferConfig, saver: _Saver, cond: _Condition, strategy: str, n_cases: int, model,
                train_rows: np.ndarray, p_test: np.ndarray, oof: tuple[np.ndarray, int], patients: np.ndarray,
                run_seed: int, weight_decay: float | None) -> None:
    """Save one repeat-0 model with its out-of-fold threshold, measure that threshold on the test part, write
    its model card, and keep its operating points and reliability bins for the stage's tables."""
    name = model_name(cond.name, strategy, n_cases)
    p_oof, folds = oof
    y_train = cond.is_case[train_rows].astype(np.int8)[:, None]
    chosen = th.choose_thresholds(y_train, p_oof, [cond.name], cfg.threshold_rule)
    n_pos = int(y_train.sum())
    basis = (f"{cfg.threshold_rule} on out-of-fold probabilities of the {len(train_rows)} training records "
             f"({n_pos} case, {len(train_rows) - n_pos} control; {folds} patient folds, fold models trained like this one)")
    thresholds = {"rule": cfg.threshold_rule, "chosen_on": f"train (out-of-fold, {folds} patient folds)",
                  "values": {cond.name: float(chosen["threshold"].iloc[0])},
                  "basis": {cond.name: basis}}  # out-of-fold covers every training record: both classes
    path = save_checkpoint(
        saver.models_dir / name, model,
        config={**dataclasses.asdict(cfg), "condition": cond.name, "strategy": strategy, "n_cases": n_cases,
                "seed": run_seed, "repeat": 0, "weight_decay": weight_decay},
        preprocessing=saver.info["preprocessing"], labels=[cond.name],
        extra={"n_train": len(train_rows), "train_patients": len(np.unique(patients[train_rows])), "thresholds": thresholds,
               "pretrained_from": artifacts.shown(saver.encoder_path),
               "training_records": saver.record_ids[train_rows].tolist(), "test_records": saver.record_ids[cond.test].tolist()},
    )
    y_test = cond.is_case[cond.test].astype(np.int8)[:, None]
    operating = th.operating_points(y_test, p_test, chosen["threshold"].to_numpy(float), [cond.name])
    reliability = calibration.reliability_table(y_test, p_test, [cond.name])
    budget = lambda t: f"{t.epochs} epoch(s) and at least {t.min_steps} optimiser steps, batch {t.batch_size}"  # noqa: E731
    steps = (f"logistic head on frozen features, {budget(cfg.probe)}, weight decay {weight_decay:g} (patient "
             "cross-validation)" if strategy == "foundation_probe" else
             f"end to end on random {cfg.crop_s:g} s crops, {budget(cfg.optim)}, lr {cfg.optim.lr:g}; no model selection")
    training = {"source": saver.meta.get("source"), "task": f"{cond.name} vs controls (rare case-control set)",
                "strategy": strategy, "train_cases": n_cases, "train_records": len(train_rows),
                "train_patients": len(np.unique(patients[train_rows])), "training": steps,
                "validation": "none (sets this small have no validation split)",
                "test_part": f"{len(cond.test)} records of held-out patients ({cfg.test_frac:g} of the set's patients)"}
    pretraining = ({"objective": saver.info["config"].get("objective"),
                    "encoder": artifacts.shown(saver.encoder_path), "records": saver.info["extra"].get("n_train"),
                    "splits": saver.info["config"].get("splits")} if strategy != "scratch"
                   else {"objective": f"none (random init: {saver.twin_how})"})
    evaluation = {"test": evaluation_entry(operating, evaluate.macro(y_test, p_test), len(y_test), "whole records")}
    card = build_card(path, training=training, pretraining=pretraining, evaluation=evaluation,
                      label_info=saver.meta.get("label_info"))
    card["limits"] = [THRESHOLD_LIMIT if limit.startswith("Thresholds were chosen") else limit for limit in card["limits"]]
    card["limits"].append(f"Trained on {n_cases} case patients: an arm of the study's rare-disease experiment, not a "
                          "validated detector; its test-part numbers rest on few cases (see the intervals).")
    write_card(path, card)
    key = {"model": path.name.removesuffix(".pt"), "condition": cond.name, "strategy": strategy, "n_cases": n_cases}
    saver.operating.append(operating.assign(**key, split="test")[[*key, "split", *operating.columns]])
    saver.reliability.append(reliability.assign(**key, split="test")[[*key, "split", *reliability.columns]])
    saver.written[key["model"]] = path


#: The card's limit on thresholds, for models without a validation split.
THRESHOLD_LIMIT = ("The threshold was chosen on out-of-fold probabilities of the few training records (no validation "
                   "split exists at this size); at another site, device or prevalence, choose and check it again on "
                   "local labelled records.")


def _run_condition(cfg: TransferConfig, store: Store, cond: _Condition, patients: np.ndarray, encoders: dict, info: dict,
                   scores: ScoreFile, seed: int, crop: int, device, saver: _Saver | None = None) -> tuple[list[dict], list[dict]]:
    """Every size x repeat x strategy of one condition: (run rows, result rows); scores join ``scores``, the
    probe's weight-decay search of each size joins ``scores.meta["tuning"]``, and with a ``saver`` the
    repeat-0 models of :func:`saved_sizes` are saved (:func:`_save_model`)."""
    y_test = cond.is_case[cond.test].astype(np.int8)[:, None]
    scores.add_group(cond.name, y_test, patients[cond.test], [cond.name])
    probe_features = None
    if "foundation_probe" in cfg.strategies:
        z = embed_dataset(encoders["pretrained"], ECGDataset(store, cond.rows, labels=[cond.name]), bf16=cfg.optim.bf16,
                          device=device)
        probe_features = (z, {r: i for i, r in enumerate(cond.rows)})
    n_pool_cases = len(np.unique(patients[cond.pool][cond.is_case[cond.pool]]))
    runs, by_model, draws, decays = [], {}, {}, {}
    sizes = _sizes(cfg.n_train_cases, n_pool_cases)
    saved = saved_sizes(cfg.checkpoints, sizes) if saver is not None else []
    for n_cases in sizes:
        for repeat in range(cfg.repeats):
            run_seed = int(np.random.default_rng([seed, cond.index, repeat]).integers(2**31))
            train_rows = draw_training_set(cond.is_case, patients, cond.pool, n_cases,
                                           np.random.default_rng([seed, cond.index, repeat]))
            draws.setdefault(n_cases, set()).add(tuple(train_rows.tolist()))
            if repeat == 0 and probe_features is not None:
                z, position = probe_features
                y_train = cond.is_case[train_rows].astype(np.float32)[:, None]
                search = cv_probe_weight_decay(z[[position[r] for r in train_rows]], y_train, patients[train_rows], cfg.probe,
                                               list(cfg.weight_decay_grid), seed=run_seed, folds=cfg.cv_folds,
                                               pos_weight=pos_weights(y_train))
                decays[n_cases] = search.chosen
                scores.meta["tuning"][f"{cond.name}/n{n_cases}/foundation_probe"] = search.record()
            for strategy in cfg.strategies:
                start = time.perf_counter()
                wd = decays.get(n_cases) if strategy == "foundation_probe" else None
                model, p = _fit_one(cfg, store, cond, strategy, train_rows, n_cases, run_seed, encoders, info,
                                    probe_features, crop, device, weight_decay=wd)
                if repeat == 0 and n_cases in saved:
                    start = time.perf_counter()
                    oof = out_of_fold(cfg, store, cond, strategy, train_rows, n_cases, patients, run_seed, encoders, info,
                                      probe_features, crop, device, wd)
                    _save_model(cfg, saver, cond, strategy, n_cases, model, train_rows, p, oof, patients, run_seed, wd)
                    saver.operating[-1]["seconds"] = time.perf_counter() - start  # fold models + saving (timings only)
                scores.add((f"n{n_cases}", strategy, f"r{repeat}"), cond.name, p)
                by_model.setdefault((n_cases, strategy), []).append(evaluate.macro(y_test, p))
                runs.append({"condition": cond.name, "n_cases": n_cases, "n_train": len(train_rows), "strategy": strategy,
                             "repeat": repeat, "auroc": by_model[(n_cases, strategy)][-1],
                             "weight_decay": wd if wd is not None else np.nan, "seconds": time.perf_counter() - start})
    results = [{"condition": cond.name, "n_cases": n, "strategy": s, "auroc": float(np.mean(a)),
                "auroc_sd_repeats": float(np.std(a)), "repeats": len(a), "draws_differ": len(draws[n]) > 1,
                "weight_decay": decays.get(n, np.nan) if s == "foundation_probe" else np.nan, "n_test": len(cond.test)}
               for (n, s), a in by_model.items()]
    return runs, results


@dataclass
class _Context:
    """What every condition's job reads: the store, both encoders and the run's settings."""

    cfg: TransferConfig
    store: Store
    encoders: dict[str, torch.nn.Module]  # pretrained, twin (its random-init twin)
    twin_how: str
    info: dict[str, Any]  # the pretrained encoder's checkpoint info
    patients: np.ndarray  # (N_store,) str
    crop: int  # training crop, samples
    device: torch.device
    seed: int
    store_dir: Path
    encoder_path: Path
    models_dir: Path | None  # None: save no model


def _context(cfg: TransferConfig, store_dir: Path, encoder_path: Path, models_dir: Path | None, seed: int) -> _Context:
    """Open the rare store and the encoders (here, or once in each worker process)."""
    store, pretrained, info = open_store_and_model(store_dir, encoder_path, num_threads=cfg.num_threads)
    twin, twin_how = random_twin(encoder_path, info)
    return _Context(cfg, store, {"pretrained": pretrained, "twin": twin}, twin_how, info,
                    store.records["patient_id"].astype(str).to_numpy(), min(int(round(cfg.crop_s * store.fs)), store.n_samples),
                    resolve_device(cfg.optim.device), seed, Path(store_dir), Path(encoder_path),
                    None if models_dir is None else Path(models_dir))


@dataclass
class _ConditionResult:
    """One condition's job: its set sizes, run and result rows, test scores, probe searches and saved models."""

    sets: dict[str, Any]
    runs: list[dict]
    results: list[dict]
    scores: ScoreFile
    saver: _Saver | None


def _condition_job(ctx: _Context, job: tuple[int, str]) -> _ConditionResult:
    """Split the ``job``'s condition (its index and name), train every size, repeat and strategy, save its models."""
    k, name = job
    cond = _split_condition(ctx.store, name, k, ctx.patients, ctx.cfg, ctx.seed, ctx.store_dir)
    y_pool, y_test = cond.is_case[cond.pool], cond.is_case[cond.test]
    sets = {"condition": name, "pool_cases": int(y_pool.sum()), "pool_controls": int((~y_pool).sum()),
            "test_cases": int(y_test.sum()), "test_controls": int((~y_test).sum())}
    scores = ScoreFile(meta={"tuning": {}})
    saver = None if ctx.models_dir is None else _Saver(
        ctx.models_dir, ctx.encoder_path, ctx.info, ctx.twin_how, ctx.store.meta,
        ctx.store.records["record_id"].astype(str).to_numpy())
    runs, results = _run_condition(ctx.cfg, ctx.store, cond, ctx.patients, ctx.encoders, ctx.info, scores, ctx.seed,
                                   ctx.crop, ctx.device, saver)
    return _ConditionResult(sets, runs, results, scores, saver)


def train_all(cfg: TransferConfig, store_dir: str | Path, encoder_path: str | Path, *, seed: int,
              require_store: bool = True, models_dir: str | Path | None = None) -> TransferResult:
    """Train and test every strategy on every rare condition, size and repeat.

    Each condition is one job, ``cfg.workers`` at a time in worker processes
    (:func:`ecgstudy.engine.jobs.run_jobs`); outputs are assembled in condition order.

    Parameters
    ----------
    cfg
        The transfer section.
    store_dir
        Rare case-control store: signals (N, 12, T) at fs Hz, ``case_control_set`` and ``y_<COND>`` columns.
    encoder_path
        Pretrained encoder checkpoint; its preprocessing spec must match the store's.
    seed
        Seeds the test split, the training-set draws, initialisation and training.
    require_store
        True (the simulated cohort, which always has sets): a missing or set-less store is an error.
        False (a real dataset, whose sets are optional): it gives :func:`empty_result` with the reason.
    models_dir
        Folder for the saved repeat-0 classifiers (``cfg.checkpoints``) and their model cards; None: save none.
    """
    reason = missing_sets_reason(store_dir)
    if reason is not None:
        if require_store:
            raise ValueError(reason)
        log.warning("transfer: %s", reason)
        return empty_result(reason)
    opened = partial(_context, cfg, Path(store_dir), Path(encoder_path), None if models_dir is None else Path(models_dir),
                     seed)
    ctx = opened()
    store = ctx.store
    present = sorted(store.records[SET_COLUMN].dropna().astype(str).unique())
    conditions = list(cfg.conditions) or present
    unknown = [c for c in conditions if c not in present or f"y_{c}" not in store.records.columns]
    if unknown:
        raise ValueError(f"{store_dir}: condition(s) {unknown} lack a {SET_COLUMN} set or y_ column; sets: {present}")
    overlap = pretraining_overlap(conditions, ctx.info, store.meta.get("label_info", {}))
    for cond, names in overlap.items():
        log.warning("transfer: the encoder %s was pretrained with label(s) %s covering %s: its 'foundation' "
                    "results are not a clean rare-disease transfer", encoder_path, names, cond)
    scores = ScoreFile(meta={"overlap": {c: ", ".join(n) for c, n in overlap.items()}, "repeats": cfg.repeats,
                             "repeat_design": _REPEAT_DESIGN, "baseline_init": ctx.twin_how, "tuning": {},
                             "full_finetune_search": "none: a fixed step budget for foundation and scratch alike"})
    done = run_jobs(_condition_job, list(enumerate(conditions)), state=ctx, reopen=opened, workers=cfg.workers,
                    threads=cfg.num_threads, device=ctx.device, desc="transfer")
    savers = [d.saver for d in done if d.saver is not None]
    for d in done:
        scores.merge(d.scores)
        scores.meta["tuning"].update(d.scores.meta["tuning"])
    results = pd.DataFrame([row for d in done for row in d.results], columns=COLUMNS["results"])
    metrics = {**_headline(results), "repeats": cfg.repeats, "repeat_design": _REPEAT_DESIGN, "baseline_init": ctx.twin_how}
    if overlap:
        metrics["pretraining_labels_overlap"] = dict(scores.meta["overlap"])
    decided = {} if not any(s.written for s in savers) else {
        "decisions": pd.concat([o for s in savers for o in s.operating], ignore_index=True),
        "calibration": pd.concat([r for s in savers for r in s.reliability], ignore_index=True),
        "checkpoints": {name: path for s in savers for name, path in s.written.items()}}
    return TransferResult(results=results, runs=pd.DataFrame([row for d in done for row in d.runs], columns=COLUMNS["runs"]),
                          sets=pd.DataFrame([d.sets for d in done], columns=COLUMNS["sets"]), metrics=metrics, scores=scores,
                          **decided)


_REPEAT_DESIGN = ("repeat k: training set draw and seed from [seed, condition, k], shared by every strategy (arms pair by "
                  "repeat); at n = all every repeat holds the whole pool and differs by seed only")


def _headline(results: pd.DataFrame) -> dict[str, Any]:
    """{condition: {"<strategy>_n<cases>": {auroc: mean test AUROC over repeats, its sd, repeats, draws_differ}}}."""
    metrics: dict[str, Any] = {}
    for row in results.itertuples():
        metrics.setdefault(row.condition, {})[f"{row.strategy}_n{row.n_cases}"] = {
            "auroc": row.auroc, "auroc_sd_repeats": row.auroc_sd_repeats, "repeats": row.repeats,
            "draws_differ": bool(row.draws_differ)}
    return metrics


def run(cfg, root: Path | None = None) -> TransferResult:
    """The transfer stage: train every run, save the test-part scores, write tables and metrics.

    ``cfg`` is ``ecgstudy.config.stage_config("transfer", params)``. With the simulated cohort a rare store
    is required; a real dataset's sets are optional (``curate.rare_sets``): without them the stage writes
    empty tables and metrics that say why. Outputs: ``models/transfer/scores.npz``, the saved classifiers
    ``models/transfer/<condition>_<strategy>_n<cases>.pt`` with their model cards (``transfer.checkpoints``),
    ``reports/tables/transfer/{results,runs,sets,decisions,calibration}.csv``, ``reports/metrics/transfer.json``.
    """
    out = stage_outputs("transfer", root, models=True, figures=False)
    store_dir = resolve(cfg.data.curated, out.root) / cfg.transfer.store
    for stale in [*out.models.glob("*.pt"), *out.models.glob("*.card.json"), *out.models.glob("*.card.md")]:
        stale.unlink()  # a model of an earlier run (another size, condition or setting) must not outlive it
    result = train_all(cfg.transfer, store_dir, artifacts.encoder_path(cfg.transfer.encoder, out.root), seed=cfg.seed,
                       require_store=cfg.data.source == "simulated", models_dir=out.models)
    result.scores.save(out.root / artifacts.TRANSFER_SCORES)
    write_tables(result, out.tables)
    out.write_metrics(result.metrics)
    out.write_timings({"runs": timing_rows(result.runs, ["condition", "n_cases", "strategy", "repeat"]),
                       "saved_models": timing_rows(result.decisions, ["model"])})  # their fold models and saving
    return result


def write_tables(result: TransferResult, tables_dir: Path) -> dict[str, Path]:
    """Write the results, per-run, set-size, decisions and calibration tables as CSV (with their columns even
    when empty; without wall-clock columns, which :func:`run` writes to ``reports/timings/transfer.json``)."""
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    paths = {name: Path(tables_dir) / f"{name}.csv" for name in (*COLUMNS, "decisions", "calibration")}
    for name, path in paths.items():
        without_timings(getattr(result, name)).to_csv(path, index=False)
    return paths
