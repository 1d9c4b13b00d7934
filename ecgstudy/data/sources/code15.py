"""Reader of CODE-15% (Ribeiro et al., Zenodo record 4916206, v1.0.0): 345,779 exams of 233,770 patients.

Layout read (``root``)::

    exams.csv              one row per exam: exam_id, age, is_male, nn_predicted_age, 1dAVb, RBBB, LBBB,
                           SB, ST, AF, patient_id, death, timey, normal_ecg, trace_file
    exams_part0.hdf5 ...   datasets ``tracings`` float32 (N, 4096, 12) and ``exam_id`` int (N,);
    exams_part17.hdf5      rows are matched to exams.csv by ``exam_id``, never by position

``root`` may also be the folder that holds the unzipped release folder when that is its only subfolder
with an ``exams.csv``.

Signals
    400 Hz, 12 leads in the order DI, DII, DIII, AVR, AVL, AVF, V1-V6. DI-DIII are the Einthoven leads
    I-III (the Brazilian spelling); the reader names them ``I``, ``II``, ``III`` so that harmonisation,
    which maps lead names to the standard order, recognises them. Each exam (7 s or 10 s) was resampled
    to 400 Hz and centred in 4096 samples (10.24 s) with zeros on both sides. :meth:`Code15Source.read_signal` strips
    that padding: the columns at both ends whose every value is exactly 0 (in every lead that is not NaN
    throughout) are removed, so ``RawSignal.duration_s`` is the true length (2800 samples = 7 s, 4000 =
    10 s). An exam that is zero throughout raises ``empty_record``. The last row of every part is an
    all-zero padding row with ``exam_id`` 0; id 0 never becomes a record. According to the publishers'
    preprocessing notes (antonior92/ecg-preprocessing README), DIII, aVR, aVL and aVF were computed
    from DI and DII, and the baseline was not removed.

Amplitude unit (decision)
    The stored values are twice the amplitude in mV: :data:`MV_PER_UNIT` = 0.5 converts them, and
    ``RawSignal.units`` is ``mV``. Sources: the publishers' ecg-preprocessing README states that the
    CODE-15% HDF5 files were produced by its ``generate_h5.py`` with ``--scale 2`` from WFDB records
    read in physical units (mV); an independent amplitude comparison against other 12-lead datasets
    (github.com/antonior92/ecg-age-prediction issue 5) finds the same factor 0.5. The sentence in the
    model READMEs ("32 bits floating point numbers at the scale 1e-4V: so if the signal is in V it
    should be multiplied by 1000") contradicts itself (x1000 from V gives mV, not 1e-4 V) and is not
    used. Note that the PhysioNet Challenge 2025 conversion script treats the values as mV unscaled;
    pass ``mv_per_unit=1.0`` to reproduce that convention.

Labels (decision)
    The six CODE abnormalities become statements of the study vocabulary (the PTB-XL SCP table),
    likelihood 100 (present) when the column is true:

    ========== ======= ================================================================
    CODE       SCP     why
    ========== ======= ================================================================
    1dAVb      1AVB    first degree AV block
    RBBB       CRBBB   CODE's RBBB is complete right bundle branch block (QRS >= 120 ms);
                       incomplete RBBB is not one of the six CODE classes
    LBBB       CLBBB   complete left bundle branch block, likewise
    SB         SBRAD   sinus bradycardia
    ST         STACH   sinus tachycardia
    AF         AFIB    atrial fibrillation
    normal_ecg NORM    the dataset's own "normal ECG" flag, the exam-level counterpart of
                       PTB-XL's NORM ("normal ECG"); an exam with none of the six
                       abnormalities is *not* assumed normal
    ========== ======= ================================================================

    The catalog ``codes`` cell is the dict of these seven raw values; a value that is not a boolean
    (True/False, 1/0, "true"/"false") raises :class:`~ecgstudy.data.labels.LabelError` (curation excludes the
    record as ``bad_labels``). CODE-15% has no sinus-rhythm label, so SR is never set.

Catalog
    ``record_id`` = exam_id (str), ``patient_id`` = patient_id (str; ``record:<exam_id>`` when missing),
    ``site`` = ``code15``, ``device`` = ``unknown``, ``age``, ``sex`` (0 male, 1 female: PTB-XL's
    coding, from ``is_male``), ``nn_predicted_age``, ``death``, ``timey`` (mortality follow-up, filled
    only on a patient's first exam), ``trace_file``. No official folds: curation splits patients at random.

Errors
    exams.csv missing or without its key columns, duplicate exam ids (in the CSV or across parts), a
    part that is not HDF5 or lacks ``tracings``/``exam_id`` or has wrong shapes: ``ValueError`` (or
    ``FileNotFoundError``) at construction, naming the file and dataset. An exam of exams.csv found in
    no part: ``missing_tracing`` when read (``excluded.parquet``). Ids in a part but not in exams.csv are
    ignored (logged). HDF5 files are opened lazily, once per process, and never pickled.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.leads import WFDB_NAMES
from ecgstudy.data.labels import LabelError, Vocabulary, load_vocabulary
from ecgstudy.data.sources.record import RawSignal, RecordReadError, Source

log = logging.getLogger(__name__)

EXAMS = "exams.csv"
#: Part files, numbered from 0.
PART_GLOB = "exams_part*.hdf5"
_PART_NUMBER = re.compile(r"exams_part(\d+)\.hdf5$")
#: Sampling rate of every tracing (Hz).
FS = 400.0
#: Lead names in storage order (the last axis of ``tracings``); the dataset spells I-III as DI-DIII.
LEADS: tuple[str, ...] = WFDB_NAMES
#: mV per stored unit (see the module docstring: the tracings hold 2 x mV).
MV_PER_UNIT = 0.5
#: exam_id of the all-zero padding row at the end of each part.
PADDING_EXAM_ID = 0
#: CODE label column -> SCP statement of the study vocabulary (module docstring gives the reasons).
LABEL_MAP: dict[str, str] = {
    "1dAVb": "1AVB",
    "RBBB": "CRBBB",
    "LBBB": "CLBBB",
    "SB": "SBRAD",
    "ST": "STACH",
    "AF": "AFIB",
    "normal_ecg": "NORM",
}
#: Likelihood given to a present label (CODE labels are binary).
PRESENT = 100.0
#: exams.csv columns passed through to the catalog when present.
PASSTHROUGH = ("age", "nn_predicted_age", "death", "timey", "trace_file")
_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}


def find_root(root: str | Path) -> Path:
    """The folder holding ``exams.csv``: ``root`` itself or its single such subfolder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CODE-15% root folder not found: {root}")
    if (root / EXAMS).is_file():
        return root
    inner = sorted(p.parent for p in root.glob(f"*/{EXAMS}"))
    if len(inner) == 1:
        log.info("using CODE-15%% folder %s inside %s", inner[0].name, root)
        return inner[0]
    raise FileNotFoundError(
        f"{root / EXAMS} not found" + (f" (several candidates inside: {[str(p) for p in inner]})" if inner else "")
    )


def _as_bool(value: Any) -> bool | None:
    """True/False from a CSV cell (bool, 0/1, "True"/"false"), None when it is neither."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if value == 1:
            return True
        if value == 0:
            return False
        return None
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _sex(is_male: Any) -> float:
    """PTB-XL's sex coding (0 male, 1 female) from ``is_male``; NaN when unknown."""
    flag = _as_bool(is_male)
    return np.nan if flag is None else (0.0 if flag else 1.0)


def _patient_name(value: Any, record_id: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return f"record:{record_id}"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def strip_padding(data: np.ndarray) -> tuple[np.ndarray, int]:
    """Remove the all-zero columns at both ends of ``data`` (n_leads, n_samples).

    A column is padding when every value of the leads that are not NaN throughout is exactly 0.
    Returns the trimmed array and the index of its first column in ``data``; an all-padding input gives
    an array with 0 columns.
    """
    present = ~np.isnan(data).all(axis=1)
    if not present.any():
        return data[:, :0], 0
    signal_columns = np.flatnonzero(np.any(data[present] != 0, axis=0))  # NaN != 0: a NaN sample is signal
    if signal_columns.size == 0:
        return data[:, :0], 0
    first, last = int(signal_columns[0]), int(signal_columns[-1])
    return data[:, first : last + 1], first


class Code15Source(Source):
    """CODE-15% dataset (see the module docstring for layout, units and label decisions).

    Parameters
    ----------
    root : folder with exams.csv and exams_part*.hdf5
    target_fs, resolution : accepted for the common reader interface and ignored (one rate: 400 Hz)
    mv_per_unit : mV per stored unit (default :data:`MV_PER_UNIT` = 0.5)
    """

    name = "code15"

    def __init__(
        self,
        root: str | Path,
        target_fs: float | None = None,
        resolution: str = "auto",
        mv_per_unit: float = MV_PER_UNIT,
        **ignored: Any,
    ):
        if ignored:
            log.debug("CODE-15%% reader ignores options %s", sorted(ignored))
        if not mv_per_unit > 0:
            raise ValueError(f"mv_per_unit must be positive, got {mv_per_unit}")
        self.root = find_root(root)
        self.mv_per_unit = float(mv_per_unit)
        self.vocabulary: Vocabulary = load_vocabulary()
        self.exams = self._read_exams(self.root / EXAMS)
        self.parts = self._find_parts()
        self._part_of, self._row_of = self._index_parts()
        self._handles: dict[int, Any] = {}
        self._handles_pid = os.getpid()

    # -- construction ------------------------------------------------------------------------------

    @staticmethod
    def _read_exams(path: Path) -> pd.DataFrame:
        try:
            exams = pd.read_csv(path)
        except Exception as exc:  # pandas raises several parser error types
            raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
        required = ["exam_id", "patient_id", *LABEL_MAP]
        missing = [c for c in required if c not in exams.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; columns: {list(exams.columns)}")
        ids = pd.to_numeric(exams["exam_id"], errors="coerce")
        bad = ids.isna() | (ids != ids.round())
        if bad.any():
            raise ValueError(f"{path}: non-integer exam_id at row(s) {list(exams.index[bad][:10])}")
        ids = ids.astype(np.int64)
        dups = sorted(set(ids[ids.duplicated()]))
        if dups:
            raise ValueError(f"{path}: duplicate exam_id(s) {dups[:20]}" + (" ..." if len(dups) > 20 else ""))
        if (ids == PADDING_EXAM_ID).any():
            raise ValueError(f"{path}: exam_id {PADDING_EXAM_ID} is reserved for the HDF5 padding rows")
        exams["exam_id"] = ids
        return exams.sort_values("exam_id", kind="stable").reset_index(drop=True)

    def _find_parts(self) -> list[Path]:
        parts = [p for p in self.root.glob(PART_GLOB) if _PART_NUMBER.search(p.name)]
        if not parts:
            raise FileNotFoundError(f"no {PART_GLOB} files in {self.root}")
        return sorted(parts, key=lambda p: int(_PART_NUMBER.search(p.name).group(1)))

    def _index_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """(part index, row) of every exams.csv row (-1, -1 when in no part); validates every part."""
        import h5py  # imported here: only this reader needs it

        where: dict[int, tuple[int, int]] = {}
        for k, path in enumerate(self.parts):
            try:
                handle = h5py.File(path, "r")
            except OSError as exc:
                raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
            with handle:
                ids = self._check_part(path, handle)
            for row in np.flatnonzero(ids != PADDING_EXAM_ID):
                exam = int(ids[row])
                if exam in where:
                    other = self.parts[where[exam][0]].name
                    raise ValueError(f"exam_id {exam} occurs twice: in {other} and in {path.name} (row {row})")
                where[exam] = (k, int(row))
        known = set(self.exams["exam_id"].tolist())
        unlisted = len(set(where) - known)
        if unlisted:
            log.info("%d exam(s) in the HDF5 parts are not in %s; ignored", unlisted, EXAMS)
        part_of = np.full(len(self.exams), -1, dtype=np.int32)
        row_of = np.full(len(self.exams), -1, dtype=np.int64)
        for position, exam in enumerate(self.exams["exam_id"].tolist()):
            if exam in where:
                part_of[position], row_of[position] = where[exam]
        n_missing = int((part_of < 0).sum())
        if n_missing:
            log.warning("%d of %d exam(s) of %s are in no %s file (excluded as missing_tracing)",
                        n_missing, len(part_of), EXAMS, PART_GLOB)
        return part_of, row_of

    @staticmethod
    def _check_part(path: Path, handle: Any) -> np.ndarray:
        """Validate one open part; returns its exam ids (int64, (N,))."""
        for name in ("tracings", "exam_id"):
            if name not in handle:
                raise ValueError(f"{path}: no dataset {name!r} (found: {sorted(handle.keys())})")
            if not hasattr(handle[name], "shape"):
                raise ValueError(f"{path}: {name!r} is a group, expected a dataset")
        tracings, exam_id = handle["tracings"], handle["exam_id"]
        if len(tracings.shape) != 3 or tracings.shape[2] != len(LEADS) or tracings.shape[1] < 1:
            raise ValueError(f"{path}: dataset 'tracings' has shape {tracings.shape}, expected (N, n_samples, 12)")
        if len(exam_id.shape) != 1 or exam_id.shape[0] != tracings.shape[0]:
            raise ValueError(
                f"{path}: dataset 'exam_id' has shape {exam_id.shape}, expected ({tracings.shape[0]},) "
                "to match 'tracings'"
            )
        ids = np.asarray(exam_id[()])
        if not np.issubdtype(ids.dtype, np.number) or (ids.size and np.any(ids != np.round(ids))):
            raise ValueError(f"{path}: dataset 'exam_id' is not integer ({ids.dtype})")
        ids = ids.astype(np.int64)
        real = ids[ids != PADDING_EXAM_ID]
        dups = sorted(set(real[pd.Series(real).duplicated().to_numpy()].tolist()))
        if dups:
            raise ValueError(f"{path}: duplicate exam_id(s) {dups[:20]} in dataset 'exam_id'")
        return ids

    # -- pickling: never carry open HDF5 handles into worker processes ------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._handles_pid = os.getpid()

    def _part_handle(self, k: int) -> Any:
        """The open ``h5py.File`` of part ``k`` in this process (opened on first use)."""
        import h5py

        if self._handles_pid != os.getpid():  # inherited through fork: the parent's handles are not ours
            self._handles, self._handles_pid = {}, os.getpid()
        if k not in self._handles:
            path = self.parts[k]
            try:
                self._handles[k] = h5py.File(path, "r")
            except FileNotFoundError:
                raise RecordReadError("missing_file", f"{path.name} disappeared since the catalog was built") from None
            except OSError as exc:
                raise RecordReadError("unreadable", f"cannot open {path.name}: {exc}") from None
        return self._handles[k]

    def close(self) -> None:
        """Close the HDF5 files this process opened."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    # -- Source interface ---------------------------------------------------------------------------

    def catalog(self) -> pd.DataFrame:
        ex = self.exams
        record_ids = ex["exam_id"].astype(str)
        out = pd.DataFrame(
            {
                "record_id": record_ids,
                "patient_id": [_patient_name(p, r) for p, r in zip(ex["patient_id"], record_ids)],
                "codes": [dict(zip(LABEL_MAP, values)) for values in ex[list(LABEL_MAP)].itertuples(index=False)],
                "site": "code15",
                "device": "unknown",
            }
        )
        if "is_male" in ex.columns:
            out["sex"] = [_sex(v) for v in ex["is_male"]]
        for col in PASSTHROUGH:
            if col in ex.columns:
                out[col] = ex[col].to_numpy()
        return out

    def read_signal(self, position: int) -> RawSignal:
        """Read catalog row ``position``: ``data`` (12, n) float64 in mV at 400 Hz, padding removed."""
        exam = int(self.exams["exam_id"].iat[position])
        k, row = int(self._part_of[position]), int(self._row_of[position])
        if k < 0:
            hint = self.exams["trace_file"].iat[position] if "trace_file" in self.exams.columns else None
            detail = f"exam {exam}: not in any {PART_GLOB} file" + (f" (exams.csv trace_file: {hint})" if hint else "")
            raise RecordReadError("missing_tracing", detail)
        name = self.parts[k].name
        try:
            tracing = np.asarray(self._part_handle(k)["tracings"][row], dtype=np.float64)  # (n_samples, 12)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:  # what h5py raises for damaged chunks
            raise RecordReadError("unreadable", f"{name}: exam {exam} (row {row}): {exc}") from None
        data, _ = strip_padding(tracing.T)
        if data.shape[1] == 0:
            raise RecordReadError("empty_record", f"{name}: exam {exam} (row {row}) is zero throughout")
        return RawSignal(data=data * self.mv_per_unit, fs=FS, leads=LEADS, units=("mV",) * len(LEADS))

    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        """SCP statements of one exam from its dict of CODE label values (see :data:`LABEL_MAP`)."""
        if not isinstance(cell, dict):
            raise LabelError(f"record {record_id}: expected a dict of CODE labels, got {cell!r}")
        codes: dict[str, float] = {}
        for column, code in LABEL_MAP.items():
            if column not in cell:
                raise LabelError(f"record {record_id}: CODE label {column!r} missing")
            flag = _as_bool(cell[column])
            if flag is None:
                raise LabelError(f"record {record_id}: CODE label {column}={cell[column]!r} is not true/false")
            if flag:
                codes[code] = PRESENT
        return codes
