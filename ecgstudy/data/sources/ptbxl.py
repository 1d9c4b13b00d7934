"""Reader of PTB-XL-format folders: real PTB-XL (v1.0.1, v1.0.3) and the simulated cohort.

Layout read (``root``)::

    ptbxl_database.csv       index ecg_id; patient_id, age, sex, site, device, scp_codes, strat_fold,
                             filename_lr, filename_hr, ... (+ case_control_set in rare sets)
    scp_statements.csv       the statement vocabulary (bundled PTB-XL table if absent)
    records100/, records500/ WFDB records (leads I, II, III, AVR, AVL, AVF, V1-V6; mV)
    ground_truth.parquet     optional (simulator): ecg_id, true_scp_codes, hr_bpm, pr_ms, ...
    signature_masks.parquet  optional (simulator): ecg_id, code, lead, start_s, end_s
    simulation.json          optional (simulator): "external_sites", the site ids meant for external validation

``root`` may also be the folder that holds the unzipped PTB-XL folder (e.g.
``ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3/``) when that is its only
subfolder with a ``ptbxl_database.csv``.

Record ids are the ``ecg_id`` as a string (``"123"``), so store rows map straight back to
``ptbxl_database.csv``; the store's ``source`` column names the dataset. Patient ids are the integer
``patient_id`` as a string; a record without one is its own patient (``"record:<ecg_id>"``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ecgstudy.data.labels import Vocabulary, load_vocabulary, parse_scp_codes
from ecgstudy.data.preprocess import standard_lead_name
from ecgstudy.data.sources.record import RawSignal, RecordReadError, Source
from ecgstudy.data.sources.wfdb_io import read_record

log = logging.getLogger(__name__)

DATABASE = "ptbxl_database.csv"
STATEMENTS = "scp_statements.csv"
GROUND_TRUTH = "ground_truth.parquet"
MASKS = "signature_masks.parquet"
SIMULATION = "simulation.json"
#: Resolution -> filename column.
RESOLUTIONS = {"records100": "filename_lr", "records500": "filename_hr"}
#: Catalog metadata columns passed through when present (the store keeps them).
PASSTHROUGH = ("age", "sex", "height", "weight", "site", "device", "strat_fold", "heart_axis", "case_control_set")
#: ground_truth.parquet columns renamed in the store; every other column ``c`` becomes ``gt_<c>``
#: (gt_hr_bpm, gt_pr_ms, gt_qrs_ms, gt_qt_ms, gt_axis_deg, gt_rhythm, ...), except GT_SKIP.
GT_RENAME = {"true_scp_codes": "gt_codes"}
GT_SKIP = ("ecg_id", "patient_id", "site")


def find_root(root: str | Path) -> Path:
    """The folder holding ``ptbxl_database.csv``: ``root`` itself or its single such subfolder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"PTB-XL root folder not found: {root}")
    if (root / DATABASE).is_file():
        return root
    inner = sorted(p.parent for p in root.glob(f"*/{DATABASE}"))
    if len(inner) == 1:
        log.info("using PTB-XL folder %s inside %s", inner[0].name, root)
        return inner[0]
    raise FileNotFoundError(
        f"{root / DATABASE} not found" + (f" (several candidates inside: {[str(p) for p in inner]})" if inner else "")
    )


def _site_name(value: Any) -> str:
    """Site as a string: PTB-XL's float site ids become integers ("2"), missing -> "unknown"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _patient_name(value: Any, record_id: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return f"record:{record_id}"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


class PTBXLSource(Source):
    """PTB-XL-format dataset.

    Parameters
    ----------
    root : dataset folder (see module docstring)
    target_fs : the store's rate (Hz); with ``resolution="auto"`` picks records100 when <= 100 Hz,
        else records500
    resolution : ``auto``, ``records100`` or ``records500``
    verify_checksums : check WFDB signal checksums (catches corrupt ``.dat`` files)
    """

    name = "ptbxl"

    def __init__(
        self,
        root: str | Path,
        target_fs: float | None = None,
        resolution: Literal["auto", "records100", "records500"] = "auto",
        verify_checksums: bool = True,
    ):
        self.root = find_root(root)
        self.verify_checksums = verify_checksums
        self.database = self._read_database(self.root / DATABASE)
        self.resolution = self._choose_resolution(resolution, target_fs)
        statements = self.root / STATEMENTS
        if statements.is_file():
            self.vocabulary: Vocabulary = load_vocabulary(statements)
        else:
            log.warning("%s not found; using the bundled PTB-XL statement table", statements)
            self.vocabulary = load_vocabulary()

    @staticmethod
    def _read_database(path: Path) -> pd.DataFrame:
        try:
            db = pd.read_csv(path)
        except Exception as exc:  # pandas raises several parser error types
            raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
        required = ["ecg_id", "patient_id", "scp_codes"]
        missing = [c for c in required if c not in db.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; columns: {list(db.columns)}")
        if not any(c in db.columns for c in RESOLUTIONS.values()):
            raise ValueError(f"{path}: neither filename_lr nor filename_hr column present")
        ids = pd.to_numeric(db["ecg_id"], errors="coerce")
        if ids.isna().any():
            raise ValueError(f"{path}: non-numeric ecg_id at row(s) {list(db.index[ids.isna()][:10])}")
        dups = sorted(set(ids[ids.duplicated()].astype(int)))
        if dups:
            raise ValueError(f"{path}: duplicate ecg_id(s) {dups[:20]}" + (" ..." if len(dups) > 20 else ""))
        db["ecg_id"] = ids.astype(int)
        return db.sort_values("ecg_id", kind="stable").reset_index(drop=True)

    def _choose_resolution(self, resolution: str, target_fs: float | None) -> str:
        if resolution == "auto":
            resolution = "records100" if target_fs is not None and target_fs <= 100 else "records500"
        if resolution not in RESOLUTIONS:
            raise ValueError(f"unknown PTB-XL resolution {resolution!r}; valid: auto, {', '.join(RESOLUTIONS)}")
        if RESOLUTIONS[resolution] not in self.database.columns:
            other = next(r for r in RESOLUTIONS if r != resolution)
            log.warning("%s has no %s column; reading %s", DATABASE, RESOLUTIONS[resolution], other)
            resolution = other
        return resolution

    def catalog(self) -> pd.DataFrame:
        db = self.database
        record_ids = db["ecg_id"].astype(str)
        out = pd.DataFrame(
            {
                "record_id": record_ids,
                "patient_id": [_patient_name(p, r) for p, r in zip(db["patient_id"], record_ids)],
                "codes": db["scp_codes"],
            }
        )
        for col in PASSTHROUGH:
            if col in db.columns:
                out[col] = db[col]
        out["site"] = [_site_name(v) for v in db["site"]] if "site" in db.columns else "unknown"
        out["device"] = db["device"].fillna("unknown").astype(str) if "device" in db.columns else "unknown"
        if "strat_fold" in out.columns and out["strat_fold"].isna().all():
            out = out.drop(columns="strat_fold")
        return out

    def record_path(self, position: int) -> Path:
        """Path (without ``.hea``) of catalog row ``position`` at the chosen resolution."""
        name = self.database[RESOLUTIONS[self.resolution]].iat[position]
        if not isinstance(name, str) or not name.strip():
            raise RecordReadError("missing_file", f"ecg_id {self.database['ecg_id'].iat[position]}: no file name")
        return self.root / name.strip()

    def read_signal(self, position: int) -> RawSignal:
        signal = read_record(self.record_path(position), verify_checksums=self.verify_checksums)
        return signal

    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        return parse_scp_codes(cell, record_id)

    def ground_truth(self) -> pd.DataFrame | None:
        path = self.root / GROUND_TRUTH
        if not path.is_file():
            return None
        gt = pd.read_parquet(path)
        if "ecg_id" not in gt.columns:
            raise ValueError(f"{path}: missing column 'ecg_id'")
        out = pd.DataFrame({"record_id": gt["ecg_id"].astype(int).astype(str)})
        for col in gt.columns:
            if col not in GT_SKIP:
                out[GT_RENAME.get(col, f"gt_{col}")] = gt[col].to_numpy()
        if out["record_id"].duplicated().any():
            raise ValueError(f"{path}: duplicate ecg_id(s)")
        return out

    def declared_external_sites(self) -> list[str] | None:
        path = self.root / SIMULATION
        if not path.is_file():
            return None
        try:
            sites = json.loads(path.read_text()).get("external_sites")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        return None if sites is None else [_site_name(s) for s in sites]

    def signature_masks(self) -> pd.DataFrame | None:
        path = self.root / MASKS
        if not path.is_file():
            return None
        masks = pd.read_parquet(path)
        missing = [c for c in ("ecg_id", "code", "lead", "start_s", "end_s") if c not in masks.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        masks.insert(0, "record_id", masks.pop("ecg_id").astype(int).astype(str))
        masks["lead"] = [standard_lead_name(name) or str(name) for name in masks["lead"]]
        return masks
