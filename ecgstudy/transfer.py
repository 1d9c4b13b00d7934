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

There is no validation split in sets this small, so every run trains for a fixed number of steps (no
model selection at all, so nothing can peek at the test part). The test part is scored with AUROC; the
table reports the mean over repeats with a 95% bootstrap interval over test records (each resample
scores every repeat), and the paired bootstrap difference foundation - scratch on the same resamples.

With a real dataset the rare store is drawn from the main store by the curate stage
(:mod:`ecgstudy.rare_sets`), so the encoder may have been pretrained on some of the sets' signals (and,
with a supervised objective, labels: :func:`run_transfer` warns and records it). When no set was
configured there is no rare store; ``require_store=False`` then returns an explicit empty result
(:func:`empty_result`) instead of failing, so the stage still writes every output.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ecgstudy import evaluate
from ecgstudy.finetune import _fresh_encoder, embed_dataset, pos_weights, train_full, train_probe
from ecgstudy.models.checkpoint import check_preprocessing, load_encoder
from ecgstudy.train import TrainConfig, predict, resolve_device, set_threads

log = logging.getLogger(__name__)

STRATEGIES = ("foundation", "foundation_probe", "scratch")
SET_COLUMN = "case_control_set"
#: Columns of the result tables (also of the empty tables written when there is no set).
COLUMNS = {
    "results": ["condition", "n_cases", "strategy", "auroc", "auroc_low", "auroc_high", "auroc_sd_repeats",
                "repeats", "n_test"],
    "runs": ["condition", "n_cases", "n_train", "strategy", "repeat", "auroc", "seconds"],
    "comparisons": ["condition", "n_cases", "a", "b", "diff", "low", "high", "p_value", "n_boot"],
    "sets": ["condition", "pool_cases", "pool_controls", "test_cases", "test_controls"],
}


@dataclass(frozen=True)
class TransferConfig:
    """params.yaml ``transfer`` section."""

    store: str = "rare"  # rare case-control store folder under data.curated
    encoder: str = "models/pretrain/encoder.pt"  # pretrained encoder checkpoint (pretrain stage output)
    conditions: list[str] = field(default_factory=list)  # rare conditions to run (empty = every set in the store)
    n_train_cases: list[int | Literal["all"]] = field(default_factory=lambda: [10, 20, "all"])  # cases per training set
    test_frac: float = 0.3  # share of each set's patients held out for testing (stratified case/control)
    repeats: int = 3  # training sets drawn (and models trained) per size, each with its own seed
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))  # see the module docstring
    crop_s: float = 4.0  # random training crops (s), also an augmentation; testing uses whole 10 s records
    optim: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=1, min_steps=30, batch_size=32, lr=1e-3, warmup_frac=0.1, progress=False)
    )  # a fixed 30 steps per run (no validation data to stop on): ~1.3 s per run on 2 cores
    probe: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=1, min_steps=200, batch_size=64, lr=1e-2, warmup_frac=0.0, bf16=False, progress=False
        )
    )  # logistic head on cached features
    dropout: float = 0.1  # dropout before the head when fine-tuning
    n_boot: int = 500  # bootstrap resamples of the test part
    ci: float = 0.95  # confidence level (UCSF reports 95% intervals)
    num_threads: int = 0  # torch CPU threads (0 = torch default)

    def validate(self) -> None:
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"unknown strategies {bad}; valid: {list(STRATEGIES)}")
        if not self.n_train_cases or any(n != "all" and n < 1 for n in self.n_train_cases):
            raise ValueError(f"n_train_cases {self.n_train_cases}: positive integers or 'all'")
        if not 0 < self.test_frac < 1 or self.repeats < 1 or self.crop_s <= 0:
            raise ValueError("test_frac must be in (0, 1), repeats >= 1, crop_s > 0")
        if self.n_boot < 1 or not 0 < self.ci < 1:
            raise ValueError("n_boot must be >= 1 and ci in (0, 1)")


@dataclass
class TransferResult:
    """Tables and headline metrics of :func:`run_transfer`."""

    results: pd.DataFrame  # condition x n_cases x strategy: mean AUROC over repeats with bootstrap CI
    runs: pd.DataFrame  # one row per trained model: condition, n_cases, strategy, repeat, auroc, seconds
    comparisons: pd.DataFrame  # paired bootstrap foundation(-probe) - scratch per condition and size
    sets: pd.DataFrame  # per condition: cases/controls in the training pool and test part
    metrics: dict[str, Any]  # for reports/metrics/transfer.json


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
        return (f"no rare-disease sets configured: no rare store at {_shown(store_dir)} (a real dataset gets one "
                "only from curate.rare_sets.codes with enough cases; see reports/tables/curate/rare_sets.csv)")
    import pyarrow.parquet as pq

    if SET_COLUMN not in pq.read_schema(store_dir / "records.parquet").names:
        return f"{_shown(store_dir)}: records.parquet has no {SET_COLUMN!r} column; not a rare case-control store"
    sets = pd.read_parquet(store_dir / "records.parquet", columns=[SET_COLUMN])[SET_COLUMN].dropna()
    return None if len(sets) else f"{_shown(store_dir)}: no record belongs to a case-control set"


def _shown(path: Path) -> str:
    """``path`` relative to the repository root when inside it (metrics must not hold machine paths)."""
    from ecgstudy.paths import repo_root

    try:
        return str(path.resolve().relative_to(repo_root()))
    except (ValueError, FileNotFoundError):
        return str(path)


def pretraining_overlap(conditions: list[str], encoder_info: dict[str, Any], label_info: dict[str, dict]) -> dict[str, list[str]]:
    """{condition: pretraining labels that are the condition or its diagnostic (sub)class}.

    A supervised pretraining objective stores its label names in the checkpoint's
    ``extra["pretraining_labels"]``; a self-supervised one stores none (empty result).
    """
    seen = set(encoder_info.get("extra", {}).get("pretraining_labels") or [])
    out = {}
    for cond in conditions:
        info = label_info.get(cond, {})
        related = {cond, info.get("diagnostic_subclass") or "", info.get("diagnostic_class") or ""} - {""}
        if related & seen:
            out[cond] = sorted(related & seen)
    return out


def draw_comparison(result: TransferResult, path: str | Path) -> Path | None:
    """The foundation-vs-scratch figure at ``path``; None (and no file) when nothing was run."""
    from ecgstudy.plots import training as training_plots

    path = Path(path)
    if result.results.empty:
        path.unlink(missing_ok=True)  # a figure of an earlier run must not outlive it
        return None
    return training_plots.transfer_comparison(result.results, path)


def run_transfer(cfg: TransferConfig, store_dir: str | Path, encoder_path: str | Path, *, seed: int,
                 require_store: bool = True) -> TransferResult:
    """Train and test every strategy on every rare condition, size and repeat.

    Parameters
    ----------
    cfg
        The transfer section.
    store_dir
        Rare case-control store: signals (N, 12, T) at fs Hz, ``case_control_set`` and ``y_<COND>`` columns.
    encoder_path
        Pretrained encoder checkpoint; its preprocessing spec must match the store's.
    seed
        Seeds the test split, the training-set draws, initialisation, training and the bootstrap.
    require_store
        True (the simulated cohort, which always has sets): a missing or set-less store is an error.
        False (a real dataset, whose sets are optional): it gives :func:`empty_result` with the reason.
    """
    from ecgstudy.store import ECGDataset, Store

    reason = missing_sets_reason(store_dir)
    if reason is not None:
        if require_store:
            raise ValueError(reason)
        log.warning("transfer: %s", reason)
        return empty_result(reason)
    set_threads(cfg.num_threads)
    store = Store(store_dir)
    pretrained, info = load_encoder(encoder_path)
    check_preprocessing(info["preprocessing"], store.meta, str(encoder_path))
    present = sorted(store.records[SET_COLUMN].dropna().astype(str).unique())
    conditions = list(cfg.conditions) or present
    unknown = [c for c in conditions if c not in present or f"y_{c}" not in store.records.columns]
    if unknown:
        raise ValueError(f"{store_dir}: condition(s) {unknown} lack a {SET_COLUMN} set or y_ column; sets: {present}")
    overlap = pretraining_overlap(conditions, info, store.meta.get("label_info", {}))
    for cond, names in overlap.items():
        log.warning("transfer: the encoder %s was pretrained with label(s) %s covering %s: its 'foundation' "
                    "results are not a clean rare-disease transfer", encoder_path, names, cond)
    patients = store.records["patient_id"].astype(str).to_numpy()
    crop = min(int(round(cfg.crop_s * store.fs)), store.n_samples)
    device = resolve_device(cfg.optim.device)
    bf16 = cfg.optim.bf16

    run_rows, set_rows, result_rows, comp_rows = [], [], [], []
    for k, cond in enumerate(conditions):
        rows = np.flatnonzero(store.records[SET_COLUMN].astype(str).to_numpy() == cond)
        is_case = store.records[f"y_{cond}"].to_numpy() == 1
        test_mask = split_patients(is_case[rows], patients[rows], cfg.test_frac, np.random.default_rng([seed, k]))
        pool, test = rows[~test_mask], rows[test_mask]
        y_test = is_case[test].astype(np.int8)[:, None]
        if y_test.min() == y_test.max():
            raise ValueError(f"{store_dir}: the {cond} test part lacks cases or controls ({len(test)} records)")
        n_pool_cases = len(np.unique(patients[pool][is_case[pool]]))
        set_rows.append({
            "condition": cond, "pool_cases": int(is_case[pool].sum()), "pool_controls": int((~is_case[pool]).sum()),
            "test_cases": int(y_test.sum()), "test_controls": int(len(test) - y_test.sum()),
        })
        test_set = ECGDataset(store, test, labels=[cond])
        frozen_features = None
        if "foundation_probe" in cfg.strategies:
            frozen_features = embed_dataset(pretrained, ECGDataset(store, rows, labels=[cond]), bf16=bf16, device=device)
            position = {r: i for i, r in enumerate(rows)}
        scores: dict[tuple[int, str], list[np.ndarray]] = {}
        for n_cases in _sizes(cfg.n_train_cases, n_pool_cases):
            for repeat in range(cfg.repeats):
                run_seed = int(np.random.default_rng([seed, k, repeat]).integers(2**31))
                train_rows = draw_training_set(is_case, patients, pool, n_cases, np.random.default_rng([seed, k, repeat]))
                y_train = is_case[train_rows].astype(np.float32)[:, None]
                weight = pos_weights(y_train)
                for strategy in cfg.strategies:
                    start = time.perf_counter()
                    if strategy == "foundation_probe":
                        z_train = frozen_features[[position[r] for r in train_rows]]
                        model, _ = train_probe(pretrained, z_train, y_train, None, None, cfg.probe, seed=run_seed, pos_weight=weight)
                        z_test = frozen_features[[position[r] for r in test]]
                        with torch.no_grad():
                            p = torch.sigmoid(model.head(torch.as_tensor(z_test))).numpy()
                    else:
                        encoder = _fresh_encoder(info["spec"], run_seed)
                        if strategy == "foundation":
                            encoder.load_state_dict(pretrained.state_dict())
                        train_set = ECGDataset(store, train_rows, labels=[cond], crop=crop, random_crop=True, seed=run_seed)
                        model, _ = train_full(
                            encoder, train_set, None, 1, cfg.optim, seed=run_seed, dropout=cfg.dropout,
                            pos_weight=weight, desc=f"{cond} {strategy} n={n_cases}",
                        )
                        logits, _ = predict(lambda b: model(b["x"], b["lead_mask"].bool()), test_set, device=device, bf16=bf16, keys=())
                        p = 1.0 / (1.0 + np.exp(-logits))
                    scores.setdefault((n_cases, strategy), []).append(p)
                    run_rows.append({
                        "condition": cond, "n_cases": n_cases, "n_train": len(train_rows), "strategy": strategy,
                        "repeat": repeat, "auroc": evaluate.macro(y_test, p), "seconds": time.perf_counter() - start,
                    })
        for (n_cases, strategy), sets in scores.items():
            res = evaluate.bootstrap_ci(y_test, sets, "auroc", n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
            aurocs = [evaluate.macro(y_test, s) for s in sets]
            result_rows.append({
                "condition": cond, "n_cases": n_cases, "strategy": strategy, "auroc": res["point"],
                "auroc_low": res["low"], "auroc_high": res["high"], "auroc_sd_repeats": float(np.std(aurocs)),
                "repeats": len(sets), "n_test": len(test),
            })
            for other in ("foundation", "foundation_probe"):
                if strategy == "scratch" and (n_cases, other) in scores:
                    comp = evaluate.paired_bootstrap(y_test, scores[(n_cases, other)], sets, "auroc", n_boot=cfg.n_boot, ci=cfg.ci, seed=seed)
                    comp_rows.append({"condition": cond, "n_cases": n_cases, "a": other, "b": "scratch", **comp})
    results = pd.DataFrame(result_rows)
    comparisons = pd.DataFrame(comp_rows, columns=COLUMNS["comparisons"])
    metrics = _headline(results, comparisons)
    if overlap:
        metrics["pretraining_labels_overlap"] = {cond: ", ".join(names) for cond, names in overlap.items()}
    return TransferResult(
        results=results, runs=pd.DataFrame(run_rows), comparisons=comparisons, sets=pd.DataFrame(set_rows),
        metrics=metrics,
    )


def _headline(results: pd.DataFrame, comparisons: pd.DataFrame) -> dict[str, Any]:
    """{condition: {"<strategy>_n<cases>": {auroc, low, high}}, "foundation_minus_scratch": {...}}."""
    metrics: dict[str, Any] = {}
    for row in results.itertuples():
        metrics.setdefault(row.condition, {})[f"{row.strategy}_n{row.n_cases}"] = {
            "auroc": row.auroc, "low": row.auroc_low, "high": row.auroc_high,
        }
    for row in comparisons.itertuples():
        metrics.setdefault(f"{row.a}_minus_scratch", {})[f"{row.condition}_n{row.n_cases}"] = {
            "diff": row.diff, "low": row.low, "high": row.high,
        }
    return metrics


def write_tables(result: TransferResult, tables_dir: str | Path) -> dict[str, Path]:
    """Write the results, per-run, comparison and set-size tables as CSV."""
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: tables_dir / f"{name}.csv" for name in ("results", "runs", "comparisons", "sets")}
    for name, path in paths.items():
        getattr(result, name).to_csv(path, index=False)
    return paths
