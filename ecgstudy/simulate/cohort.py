"""The simulated cohort: configuration, and writing it as a PTB-XL-format directory.

``write_cohort(cfg, out_dir, seed)`` writes::

    out_dir/
      ptbxl_database.csv  scp_statements.csv  records500/  records100/
      ground_truth.parquet  signature_masks.parquet  simulation.json
      rare/   (the same layout for the rare case-control sets; database with ``case_control_set``)

into a temporary sibling folder that is renamed to ``out_dir`` only when everything is written, so an
interrupted run never leaves a complete-looking folder. Records are simulated in parallel worker
processes; every record has its own seed, so the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ecgstudy.simulate.annotate import CONVENTIONS, AnnotatorConfig, annotate, reader_measures
from ecgstudy.simulate.conditions import BORDERLINE_CODES, CATALOGUE, RARE_CODES
from ecgstudy.simulate.database import database_row, record_paths, truth_row, write_tables
from ecgstudy.simulate.devices import SiteConfig, default_sites
from ecgstudy.simulate.plan import RecordPlan, plan_main, plan_rare
from ecgstudy.simulate.record import SimulatedRecord, simulate_record
from ecgstudy.simulate.writer import downsample, write_wfdb


@dataclass(frozen=True)
class RareConfig:
    """The rare-disease case-control sets."""

    codes: tuple[str, ...] = (
        "CARCINOID", "CONSTRICT", "RHEUMMS", "BRUGADA", "HYPERK", "ARVC"
    )  # rare clinical diagnoses, one set each
    n_cases: int = 40  # patients with the condition per set
    n_controls: int = 160  # patients without it per set (same demographics)


@dataclass(frozen=True)
class SimulateConfig:
    """The ``simulate`` section of params.yaml: size, recording and annotation of the simulated cohort."""

    n_patients: int = 2400  # patients of the main cohort
    n_records: int = 3000  # records of the main cohort (>= n_patients; extras are follow-ups)
    max_records_per_patient: int = 5  # cap on follow-up records of one patient
    duration_s: float = 10.0  # record length, s (PTB-XL: 10 s)
    fs: int = 500  # stored high-rate sampling rate, Hz (records500)
    fs_low: int = 100  # stored low-rate copy, Hz (records100)
    sites: tuple[SiteConfig, ...] = field(default_factory=default_sites)  # sites/devices (>= 1)
    annotator: AnnotatorConfig = field(default_factory=AnnotatorConfig)  # reader error model
    rare: RareConfig = field(default_factory=RareConfig)  # rare-disease case-control sets
    workers: int = 2  # worker processes (0 = all cores); results do not depend on it
    writer: Literal["fast", "wfdb"] = "fast"  # WFDB writer: own byte-identical writer, or wfdb.wrsamp

    def validate(self) -> None:
        if self.n_patients < 1 or self.n_records < self.n_patients:
            raise ValueError(f"need 1 <= n_patients <= n_records, got {self.n_patients} and {self.n_records}")
        if self.n_records > self.n_patients * self.max_records_per_patient:
            raise ValueError(
                f"n_records {self.n_records} exceeds n_patients * max_records_per_patient "
                f"({self.n_patients} * {self.max_records_per_patient})"
            )
        if self.duration_s <= 0 or self.fs <= 0 or self.fs_low <= 0 or self.fs % self.fs_low:
            raise ValueError(f"need duration_s > 0 and fs a multiple of fs_low, got {self.fs} and {self.fs_low}")
        if not self.sites:
            raise ValueError("at least one site is needed")
        for site in self.sites:
            site.validate()
            unknown = sorted(set(site.prevalence) - set(CATALOGUE))
            if unknown:
                raise ValueError(f"site {site.name!r}: unknown prevalence code(s) {unknown}")
        unknown = sorted(set(self.rare.codes) - set(RARE_CODES))
        if unknown:
            raise ValueError(f"rare.codes: unknown rare code(s) {unknown}; known: {list(RARE_CODES)}")
        if self.rare.codes and (self.rare.n_cases < 1 or self.rare.n_controls < 1):
            raise ValueError("rare.n_cases and rare.n_controls must be >= 1")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        self.annotator.validate()


def plan_cohort(cfg: SimulateConfig, seed: int) -> tuple[list[RecordPlan], list[RecordPlan]]:
    """The plans of the main cohort and of the rare sets (deterministic in ``seed``)."""
    plan_seed, main_seeds, rare_plan_seed, rare_seeds = np.random.SeedSequence(seed).spawn(4)
    main = plan_main(
        np.random.default_rng(plan_seed), main_seeds, cfg.sites, cfg.n_patients, cfg.n_records,
        cfg.max_records_per_patient,
    )
    rare = plan_rare(
        np.random.default_rng(rare_plan_seed), rare_seeds, cfg.sites, cfg.rare.codes, cfg.rare.n_cases,
        cfg.rare.n_controls, first_patient_id=cfg.n_patients + 1,
    ) if cfg.rare.codes else []
    return main, rare


def simulate_planned(plan: RecordPlan, cfg: SimulateConfig) -> tuple[SimulatedRecord, dict[str, float]]:
    """Simulate and annotate one planned record: (record, reported {code: likelihood})."""
    sim_seed = np.random.SeedSequence(plan.seed.entropy, spawn_key=(*plan.seed.spawn_key, 0))
    ann_seed = np.random.SeedSequence(plan.seed.entropy, spawn_key=(*plan.seed.spawn_key, 1))
    rec = simulate_record(
        np.random.default_rng(sim_seed), plan.conditions, plan.patient, cfg.sites[plan.site], cfg.fs, cfg.duration_s
    )
    site = cfg.sites[plan.site]
    borderline = {c: v for c, v in plan.conditions.items() if c in BORDERLINE_CODES}
    reported = annotate(
        np.random.default_rng(ann_seed), rec.truth["codes"], rec.truth["sokolow_mv"], cfg.annotator,
        second_opinion=plan.strat_fold >= 9, convention=CONVENTIONS[site.convention],
        measures=reader_measures(rec, borderline),
    )
    return rec, reported


def _work(task: tuple[RecordPlan, SimulateConfig, str]) -> tuple[dict, dict, list[tuple]]:
    """Simulate, annotate and write one record; returns its database row, truth row and mask rows."""
    plan, cfg, root = task
    rec, reported = simulate_planned(plan, cfg)
    site = cfg.sites[plan.site]
    lr, hr = record_paths(plan.ecg_id)
    base = Path(root)
    use_wfdb = cfg.writer == "wfdb"
    write_wfdb(base / hr, rec.counts, cfg.fs, use_wfdb)
    write_wfdb(base / lr, downsample(rec.counts, cfg.fs, cfg.fs_low, site.lsb_uv), cfg.fs_low, use_wfdb)
    extra = {}
    n_pvc = int(np.sum(rec.schedule.qrs_kind[(rec.schedule.qrs_t >= 0) & (rec.schedule.qrs_t < cfg.duration_s)] == 1))
    n_pac = int(np.sum(rec.schedule.p_kind[(rec.schedule.p_t >= 0) & (rec.schedule.p_t < cfg.duration_s)] == 1))
    beats = ", ".join(s for s in (f"{n_pvc}VES" if n_pvc else "", f"{n_pac}SVES" if n_pac else "") if s)
    if beats:
        extra["extra_beats"] = beats
    row = database_row(plan, rec.truth, reported, site.device, rec.lead_off, extra)
    truth = truth_row(plan, rec.truth, rec.lead_off)
    masks = [(plan.ecg_id, code, lead, round(s, 4), round(e, 4)) for code, lead, s, e in rec.masks]
    return row, truth, masks


def _make_dirs(root: Path, plans: list[RecordPlan]) -> None:
    for plan in plans:
        for rel in record_paths(plan.ecg_id):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)


def _run(tasks: list, workers: int) -> list:
    if workers == 1 or len(tasks) < 8:
        return [_work(t) for t in tasks]
    ctx = multiprocessing.get_context("spawn")  # safe whatever threads the parent runs (torch, BLAS)
    with ctx.Pool(workers) as pool:
        return pool.map(_work, tasks, chunksize=max(1, min(32, len(tasks) // (4 * workers))))


def write_cohort(cfg: SimulateConfig, out_dir: str | Path, seed: int, overwrite: bool = False) -> Path:
    """Simulate the cohort and write it as a PTB-XL-format directory (plus ground truth and rare sets).

    Parameters
    ----------
    cfg : the simulation settings.
    out_dir : target folder; it must not exist or be empty, unless ``overwrite`` is True.
    seed : master seed; the same seed and config give the same bytes.

    Returns
    -------
    The path of the written folder.
    """
    cfg.validate()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    main, rare = plan_cohort(cfg, seed)
    rare_root = tmp / "rare"
    _make_dirs(tmp, main)
    _make_dirs(rare_root, rare)
    tasks = [(p, cfg, str(tmp)) for p in main] + [(p, cfg, str(rare_root)) for p in rare]
    workers = cfg.workers or os.cpu_count() or 1
    results = _run(tasks, workers)
    for root, part, is_rare in ((tmp, results[: len(main)], False), (rare_root, results[len(main):], True)):
        if is_rare and not rare:
            continue
        write_tables(root, [r[0] for r in part], [r[1] for r in part], [m for r in part for m in r[2]], is_rare)
    info = {
        "generator": "ecgstudy.simulate",
        "seed": int(seed),
        "n_records": len(main),
        "n_patients": len({p.patient.patient_id for p in main}),
        "n_rare_records": len(rare),
        "external_sites": [i for i, s in enumerate(cfg.sites) if s.external],
        "sites": [s.name for s in cfg.sites],
        # the settings that decide the content (workers and writer do not change a byte)
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("workers", "writer")},
    }
    (tmp / "simulation.json").write_text(json.dumps(info, indent=1, sort_keys=True, default=list) + "\n")
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    return out_dir
