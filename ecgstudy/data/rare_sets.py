"""Rare-disease case-control sets built from a real dataset's curated main store.

The simulated cohort ships its own rare-disease sets (conditions outside PTB-XL's vocabulary). With a
real dataset the transfer stage needs the same kind of store, so :func:`build_rare_store` derives one
from the curated main store: for each configured statement code with few positives (e.g. PTB-XL's WPW),

- cases are the records that carry the code (any likelihood, as everywhere in the study), grouped into
  case patients;
- controls are the records of a seeded sample of ``controls_per_case`` x (case patients) patients none of
  whose records carries the code. Patients enter whole, so a patient is never both a case and a control
  of one set; the other records of a case patient (those without the code) are left out of that set and
  listed in the new store's ``excluded.parquet``.

The result is a store in the usual format (``signals.npy``, ``lead_mask.npy``, ``records.parquet`` with
the main store's columns plus ``case_control_set``, ``excluded.parquet``, ``meta.json``), written through
a temporary folder renamed into place (:func:`ecgstudy.data.store_writer.atomic_folder`), so the transfer
stage runs on it unchanged. A record may belong to several sets (one row per set). Every choice is
recorded: ``meta.json["rare_sets"]`` holds the settings, the seed and per code the counts drawn or the
reason it was skipped (fewer than ``min_cases`` case patients); the controls drawn for one code do not
depend on the other codes configured.

Caveat (the same as in the UCSF study, whose pretraining and rare-disease ECGs came from one
institution): the sets come from the dataset the encoder was pretrained on. A self-supervised encoder
pretrained on the main store's train split has seen the signals of the sets' train-split records, though
never their labels; a supervised pretraining objective whose label task includes a set's code has seen
the labels too (the transfer stage warns when it finds the code among the encoder's pretraining
labels). Restricting ``splits`` to splits the encoder never saw removes the overlap at the cost of cases.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.labels import LABEL_PREFIX
from ecgstudy.data.store_writer import SignalWriter, atomic_folder, check_replaceable

log = logging.getLogger(__name__)

#: Column of the rare store naming each record's case-control set (what the transfer stage reads).
SET_COLUMN = "case_control_set"
SPLITS = ("train", "val", "test", "external")
#: excluded.parquet reason for the records of a case patient that lack the set's code.
CASE_PATIENT_OTHER_RECORD = "case_patient_record_without_code"
_CHUNK = 256  # records copied per block (bounds memory)


@dataclass(frozen=True)
class RareSetsConfig:
    """params.yaml ``curate.rare_sets``: case-control sets of rare statements (real datasets only)."""

    codes: tuple[str, ...] = ()  # statement codes, one case-control set each (e.g. PTB-XL WPW); empty = no rare store
    controls_per_case: int = 4  # control patients drawn per case patient (whole patients, seeded)
    min_cases: int = 20  # codes with fewer case patients are skipped (reason logged and kept in meta.json)
    splits: tuple[str, ...] = SPLITS  # main-store splits whose records may enter a set (drop train: no pretraining overlap)

    def validate(self) -> None:
        repeated = sorted({c for c in self.codes if self.codes.count(c) > 1})
        if repeated:
            raise ValueError(f"codes lists {repeated} more than once")
        if self.controls_per_case < 1:
            raise ValueError(f"controls_per_case must be >= 1, got {self.controls_per_case}")
        if self.min_cases < 2:
            raise ValueError(f"min_cases must be >= 2 (the transfer stage holds case patients out), got {self.min_cases}")
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ValueError(f"splits {list(self.splits)} must be a non-empty subset of {list(SPLITS)}")


def _code_rng(seed: int, code: str) -> np.random.Generator:
    """Generator of one code's control draw: depends on the seed and the code only."""
    return np.random.default_rng([seed, zlib.crc32(code.encode())])


def draw_set(
    has_code: np.ndarray, patients: np.ndarray, eligible: np.ndarray, controls_per_case: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of one case-control set.

    Parameters
    ----------
    has_code : bool (N,), the record carries the code
    patients : (N,) patient ids
    eligible : bool (N,), the record may enter the set (split filter)
    controls_per_case : control patients drawn per case patient
    rng : generator of the control draw (the candidates are sorted first, so the draw is reproducible)

    Returns
    -------
    (case rows, control rows, left-out rows): sorted int64 store rows. Left out are the eligible records
    of case patients that lack the code.
    """
    patients = np.asarray(patients).astype(str)
    case_patients = np.unique(patients[eligible & has_code])
    is_case_patient = np.isin(patients, case_patients)
    candidates = np.unique(patients[eligible & ~is_case_patient])
    n_controls = min(len(candidates), controls_per_case * len(case_patients))
    chosen = rng.permutation(candidates)[:n_controls]
    cases = np.flatnonzero(eligible & has_code)
    controls = np.flatnonzero(eligible & np.isin(patients, chosen))
    left_out = np.flatnonzero(eligible & is_case_patient & ~has_code)
    return cases.astype(np.int64), controls.astype(np.int64), left_out.astype(np.int64)


def build_rare_store(
    main_dir: str | Path, out_dir: str | Path, cfg: RareSetsConfig | None = None, *, seed: int
) -> dict[str, Any]:
    """Build the case-control store ``out_dir`` from the curated main store ``main_dir``.

    Parameters
    ----------
    main_dir : curated main store (signals (N, 12, T) at fs Hz in mV, ``y_<CODE>`` columns, patient ids)
    out_dir : rare store folder, replaced atomically; when no set is built, a store left there by an
        earlier run is removed (a stale store must not feed the transfer stage)
    cfg : the ``curate.rare_sets`` settings
    seed : study seed (control draws)

    Returns
    -------
    dict summary, shaped like :func:`ecgstudy.data.curation.curate`'s: ``written``, ``n_kept`` (rows of the
    rare store), ``n_excluded`` and ``excluded_by_reason`` (records of case patients left out), ``splits``,
    ``sets`` (one dict per configured code: ``code``, ``status`` built | skipped, ``reason``, case and
    control patients and records), ``out_dir``, ``seconds``.
    """
    from ecgstudy.data.store import Store  # torch comes with it: not imported with the config

    t0 = time.perf_counter()
    cfg = cfg or RareSetsConfig()
    cfg.validate()
    main = Store(main_dir)
    out_dir = Path(out_dir)
    records = main.records
    unknown = [c for c in cfg.codes if LABEL_PREFIX + c not in records.columns]
    if unknown:
        raise ValueError(
            f"curate.rare_sets.codes: {unknown} not among the label columns of {main.path} "
            f"(its vocabulary has {len(main.labels)} codes, e.g. {main.labels[:8]})"
        )
    patients = records["patient_id"].astype(str).to_numpy()
    eligible = records["split"].isin(cfg.splits).to_numpy()
    sets, parts, excluded = [], [], []
    for code in cfg.codes:
        has_code = records[LABEL_PREFIX + code].to_numpy() == 1
        cases, controls, left_out = draw_set(has_code, patients, eligible, cfg.controls_per_case, _code_rng(seed, code))
        n_case_patients = len(np.unique(patients[cases]))
        info = {
            "code": code, "status": "built", "reason": "",
            "case_patients": n_case_patients, "case_records": len(cases),
            "control_patients": len(np.unique(patients[controls])), "control_records": len(controls),
            "requested_control_patients": cfg.controls_per_case * n_case_patients,
            "left_out_records": len(left_out),
        }
        if n_case_patients < cfg.min_cases:
            info.update(status="skipped", control_patients=0, control_records=0, left_out_records=0,
                        reason=f"{n_case_patients} case patient(s) in splits {list(cfg.splits)} < min_cases {cfg.min_cases}")
            log.warning("rare set %s skipped: %s", code, info["reason"])
        elif info["control_patients"] < info["requested_control_patients"]:
            info["reason"] = (f"only {info['control_patients']} control patients available "
                              f"(asked for {info['requested_control_patients']})")
            log.warning("rare set %s: %s", code, info["reason"])
        sets.append(info)
        if info["status"] == "built":
            parts.append((code, np.sort(np.r_[cases, controls])))
            excluded += [
                {"record_id": str(records.at[r, "record_id"]), "reason": CASE_PATIENT_OTHER_RECORD,
                 "detail": f"{code}: patient {patients[r]} is a case of this set; this record lacks {code}",
                 "action": "excluded"}
                for r in left_out
            ]
    summary: dict[str, Any] = {
        "source": main.meta.get("source"), "root": str(main.path), "written": bool(parts), "sets": sets,
        "n_kept": 0, "n_excluded": 0, "n_flagged": 0, "excluded_by_reason": {}, "splits": {},
    }
    if not parts:
        why = "curate.rare_sets.codes is empty" if not cfg.codes else "no code had min_cases case patients"
        log.warning("no rare-disease store written (%s)", why)
        summary["reason"] = why
        remove_store(out_dir)
    else:
        summary.update(_write(main, parts, excluded, out_dir, cfg, seed, sets))
    summary.update(out_dir=str(out_dir), seconds=round(time.perf_counter() - t0, 2))
    return summary


def _write(main, parts: list[tuple[str, np.ndarray]], excluded: list[dict], out_dir: Path,
           cfg: RareSetsConfig, seed: int, sets: list[dict]) -> dict[str, Any]:
    """Write the store: one block of rows per set, in the configured code order."""
    rows = np.concatenate([r for _, r in parts])
    table = main.records.iloc[rows].reset_index(drop=True).drop(columns=[SET_COLUMN], errors="ignore")
    table.insert(int(table.columns.get_loc("split")) + 1, SET_COLUMN, np.repeat([c for c, _ in parts], [len(r) for _, r in parts]))
    excl = pd.DataFrame(excluded, columns=["record_id", "reason", "detail", "action"])
    with atomic_folder(out_dir) as tmp:
        writer = SignalWriter(tmp, len(rows), len(main.leads), main.n_samples)
        for lo in range(0, len(rows), _CHUNK):
            block = rows[lo : lo + _CHUNK]
            writer.append(np.asarray(main.signals[block], dtype=np.float32), main.lead_mask[block])
        writer.close()
        table.to_parquet(tmp / "records.parquet", index=False)
        excl.to_parquet(tmp / "excluded.parquet", index=False)
        masks = main.signature_masks()
        if masks is not None:
            masks = masks[masks["record_id"].astype(str).isin(set(table["record_id"].astype(str)))]
            masks.reset_index(drop=True).to_parquet(tmp / "signature_masks.parquet", index=False)
        meta = dict(main.meta)
        meta.update(
            n_records=len(table), n_excluded=len(excl), signature_masks=masks is not None,
            derived_from=main.path.name,  # the sibling store the sets were drawn from
            rare_sets={"settings": {**asdict(cfg), "codes": list(cfg.codes), "splits": list(cfg.splits)},
                       "seed": seed, "sets": sets},
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")  # last: marks the store complete
    log.info("rare store %s: %d records in %d set(s)", out_dir, len(table), len(parts))
    return {
        "n_kept": len(table), "n_excluded": len(excl),
        "excluded_by_reason": {k: int(v) for k, v in excl["reason"].value_counts().sort_index().items()},
        "splits": {k: int(v) for k, v in table["split"].value_counts().sort_index().items()},
    }


def remove_store(path: str | Path) -> bool:
    """Delete the curated store at ``path`` if there is one (a non-store folder is refused); returns whether."""
    path = Path(path)
    if not path.exists():
        return False
    check_replaceable(path)
    shutil.rmtree(path)
    log.info("removed the stale store %s", path)
    return True


def set_table(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per configured code of a :func:`build_rare_store` summary (a note row when none is configured)."""
    columns = ["code", "status", "case_patients", "case_records", "control_patients", "control_records",
               "requested_control_patients", "left_out_records", "reason"]
    if not summary["sets"]:
        return pd.DataFrame([{"code": "-", "status": "none configured",
                              "reason": "no rare-disease sets configured (curate.rare_sets.codes is empty)"}],
                            columns=columns)
    return pd.DataFrame(summary["sets"], columns=columns)
