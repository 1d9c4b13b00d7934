"""The simulated world: configuration, and writing its corpora as PTB-XL-format directories.

``write_world(cfg, out_dir, seed)`` writes::

    out_dir/
      world.json                  corpora, roles, sites (global ids), sizes, id ranges, seed, config
      <corpus>/                   one per simulate.corpora entry (foundation, downstream, external):
        ptbxl_database.csv  scp_statements.csv  records500/  records100/
        ground_truth.parquet  signature_masks.parquet  simulation.json (corpus, role, external_sites)
      rare/   the rare case-control sets (same layout; database with ``case_control_set``), drawn from
              the clinics of ``simulate.rare.corpus``

into a temporary sibling folder that is renamed to ``out_dir`` only when everything is written, so an
interrupted run never leaves a complete-looking folder. Patient ids, record ids (``ecg_id``) and site ids
run on from one corpus to the next, so no patient or record is in two corpora (checked on the written
tables before the rename, :func:`check_disjoint`). Records are simulated in parallel worker processes;
every record has its own seed, so the bytes do not depend on the number of workers.
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
import pandas as pd

from ecgstudy.simulate.annotate import CONVENTIONS, AnnotatorConfig, annotate, reader_measures
from ecgstudy.simulate.conditions import BORDERLINE_CODES, CATALOGUE, RARE_CODES
from ecgstudy.simulate.corpora import CorpusConfig, CorpusSize, check_world, default_corpora, default_sizes
from ecgstudy.simulate.database import database_row, record_paths, truth_row, write_tables
from ecgstudy.simulate.devices import SiteConfig
from ecgstudy.simulate.plan import RecordPlan, plan_main, plan_rare
from ecgstudy.simulate.record import SimulatedRecord, simulate_record
from ecgstudy.simulate.writer import downsample, write_wfdb

#: Folder of the rare case-control sets under the world's folder.
RARE_DIR = "rare"
#: The world's description, at the top of the written folder.
WORLD_FILE = "world.json"


@dataclass(frozen=True)
class RareConfig:
    """The rare-disease case-control sets."""

    codes: tuple[str, ...] = (
        "CARCINOID", "CONSTRICT", "RHEUMMS", "BRUGADA", "HYPERK", "ARVC"
    )  # rare clinical diagnoses, one set each
    n_cases: int = 40  # patients with the condition per set
    n_controls: int = 160  # patients without it per set (same demographics)
    corpus: str = "downstream"  # corpus whose clinics the sets are drawn from (a downstream corpus)


@dataclass(frozen=True)
class SimulateConfig:
    """The ``simulate`` section of params.yaml: the corpora of the simulated world, recording and annotation."""

    sizes: dict[str, CorpusSize] = field(default_factory=default_sizes)  # patients and records per corpus
    corpora: tuple[CorpusConfig, ...] = field(default_factory=default_corpora)  # corpora: name, role, sites
    duration_s: float = 10.0  # record length, s (PTB-XL: 10 s)
    fs: int = 500  # stored high-rate sampling rate, Hz (records500)
    fs_low: int = 100  # stored low-rate copy, Hz (records100)
    annotator: AnnotatorConfig = field(default_factory=AnnotatorConfig)  # reader error model
    rare: RareConfig = field(default_factory=RareConfig)  # rare-disease case-control sets
    workers: int = 2  # worker processes (0 = all cores); results do not depend on it
    writer: Literal["fast", "wfdb"] = "fast"  # WFDB writer: own byte-identical writer, or wfdb.wrsamp

    def validate(self) -> None:
        check_world(self.corpora, self.sizes)
        if self.duration_s <= 0 or self.fs <= 0 or self.fs_low <= 0 or self.fs % self.fs_low:
            raise ValueError(f"need duration_s > 0 and fs a multiple of fs_low, got {self.fs} and {self.fs_low}")
        for site in self.sites:
            unknown = sorted(set(site.prevalence) - set(CATALOGUE))
            if unknown:
                raise ValueError(f"site {site.name!r}: unknown prevalence code(s) {unknown}")
        unknown = sorted(set(self.rare.codes) - set(RARE_CODES))
        if unknown:
            raise ValueError(f"rare.codes: unknown rare code(s) {unknown}; known: {list(RARE_CODES)}")
        if self.rare.codes and (self.rare.n_cases < 1 or self.rare.n_controls < 1):
            raise ValueError("rare.n_cases and rare.n_controls must be >= 1")
        if self.rare.codes:
            roles = {c.name: c.role for c in self.corpora}
            if roles.get(self.rare.corpus) != "downstream":
                raise ValueError(f"rare.corpus = {self.rare.corpus!r} must name a downstream corpus "
                                 f"(corpora: {roles}); the sets come from downstream clinics")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        self.annotator.validate()

    @property
    def sites(self) -> tuple[SiteConfig, ...]:
        """Every site of the world, corpus after corpus: a record's ``site`` is an index into this."""
        return tuple(site for corpus in self.corpora for site in corpus.sites)

    def site_offset(self, corpus: str) -> int:
        """Global id of the first site of ``corpus``."""
        offset = 0
        for c in self.corpora:
            if c.name == corpus:
                return offset
            offset += len(c.sites)
        raise KeyError(f"no corpus {corpus!r}; corpora: {[c.name for c in self.corpora]}")

    def corpus(self, name: str) -> CorpusConfig:
        for c in self.corpora:
            if c.name == name:
                return c
        raise KeyError(f"no corpus {name!r}; corpora: {[c.name for c in self.corpora]}")


def _relabel(plans: list[RecordPlan], patient_offset: int, ecg_offset: int, site_offset: int) -> list[RecordPlan]:
    """Plans with ids moved past the previous corpora's (patient, ecg_id) and sites made global."""
    out = []
    for p in plans:
        patient = dataclasses.replace(p.patient, patient_id=p.patient.patient_id + patient_offset,
                                      site=p.patient.site + site_offset)
        out.append(dataclasses.replace(p, ecg_id=p.ecg_id + ecg_offset, site=p.site + site_offset, patient=patient))
    return out


def plan_world(cfg: SimulateConfig, seed: int) -> dict[str, list[RecordPlan]]:
    """The plans of every corpus and of the rare sets (key ``rare``), deterministic in ``seed``.

    Each corpus draws from its own two child seeds (plan, records), so resizing one corpus does not
    change another's records.
    """
    seeds = np.random.SeedSequence(seed).spawn(2 * len(cfg.corpora) + 2)
    plans: dict[str, list[RecordPlan]] = {}
    patients = records = 0
    for k, corpus in enumerate(cfg.corpora):
        size = cfg.sizes[corpus.name]
        drafted = plan_main(
            np.random.default_rng(seeds[2 * k]), seeds[2 * k + 1], corpus.sites, size.patients, size.records,
            corpus.max_records_per_patient,
        )
        plans[corpus.name] = _relabel(drafted, patients, records, cfg.site_offset(corpus.name))
        patients += size.patients
        records += size.records
    if cfg.rare.codes:
        clinics = cfg.corpus(cfg.rare.corpus)
        drafted = plan_rare(
            np.random.default_rng(seeds[-2]), seeds[-1], clinics.sites, cfg.rare.codes, cfg.rare.n_cases,
            cfg.rare.n_controls, first_patient_id=1,
        )
        plans[RARE_DIR] = _relabel(drafted, patients, records, cfg.site_offset(cfg.rare.corpus))
    return plans


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


def check_disjoint(root: Path, folders: list[str]) -> None:
    """Fail naming the corpora and ids when a patient or a record id occurs in two of ``folders``."""
    seen_p: dict[float, str] = {}
    seen_r: dict[int, str] = {}
    for name in folders:
        db = pd.read_csv(root / name / "ptbxl_database.csv", usecols=["ecg_id", "patient_id"])
        for ids, seen, what in ((db["patient_id"].unique(), seen_p, "patient"), (db["ecg_id"], seen_r, "record")):
            clash = sorted({int(i) for i in ids if i in seen})
            if clash:
                other = seen[clash[0]]  # 3 and 3.0 are the same key
                raise ValueError(f"{what} id(s) {clash[:10]} occur in corpora {other!r} and {name!r}: "
                                 "corpora must not share patients or records")
            seen.update({i: name for i in ids})


def _describe(cfg: SimulateConfig, plans: dict[str, list[RecordPlan]], seed: int) -> dict:
    """world.json: corpora with roles, sites (global id -> name, device), sizes and id ranges."""
    corpora = []
    for corpus in cfg.corpora:
        part = plans[corpus.name]
        first = cfg.site_offset(corpus.name)
        corpora.append({
            "name": corpus.name, "role": corpus.role, "n_records": len(part),
            "n_patients": len({p.patient.patient_id for p in part}),
            "patient_ids": [min(p.patient.patient_id for p in part), max(p.patient.patient_id for p in part)],
            "sites": {str(first + i): {"name": s.name, "device": s.device} for i, s in enumerate(corpus.sites)},
        })
    rare = plans.get(RARE_DIR, [])
    return {
        "generator": "ecgstudy.simulate",
        "seed": int(seed),
        "corpora": corpora,
        "rare": {"corpus": cfg.rare.corpus, "n_records": len(rare), "codes": list(cfg.rare.codes)},
        # the settings that decide the content (workers and writer do not change a byte)
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("workers", "writer")},
    }


def write_world(cfg: SimulateConfig, out_dir: str | Path, seed: int, overwrite: bool = False) -> Path:
    """Simulate the world and write each corpus (and the rare sets) as a PTB-XL-format directory.

    Parameters
    ----------
    cfg : the simulation settings (corpora, sizes, recording, annotation).
    out_dir : target folder; it must not exist or be empty, unless ``overwrite`` is True.
    seed : master seed; the same seed and config give the same bytes.

    Returns
    -------
    The path of the written folder (layout in the module docstring).
    """
    cfg.validate()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    plans = plan_world(cfg, seed)
    tasks = []
    for folder, part in plans.items():
        _make_dirs(tmp / folder, part)
        tasks += [(p, cfg, str(tmp / folder)) for p in part]
    workers = cfg.workers or os.cpu_count() or 1
    results = iter(_run(tasks, workers))
    roles = {c.name: c.role for c in cfg.corpora}
    for folder, part in plans.items():
        done = [next(results) for _ in part]
        is_rare = folder == RARE_DIR
        write_tables(tmp / folder, [r[0] for r in done], [r[1] for r in done], [m for r in done for m in r[2]], is_rare)
        external = sorted({p.site for p in part}) if roles.get(folder) == "external" else []
        info = {"corpus": folder, "role": roles.get(folder, "downstream"), "external_sites": external,
                "n_records": len(part), "n_patients": len({p.patient.patient_id for p in part})}
        (tmp / folder / "simulation.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    check_disjoint(tmp, list(plans))
    world = _describe(cfg, plans, seed)
    (tmp / WORLD_FILE).write_text(json.dumps(world, indent=1, sort_keys=True, default=list) + "\n")
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


#: The world was once a single cohort; the name stays for callers that still use it.
write_cohort = write_world
