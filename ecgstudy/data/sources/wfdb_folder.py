"""Reader of any folder of WFDB records: unlabelled pools for inference and pretraining.

Layout read (``root``)::

    **/<name>.hea            WFDB headers, at any depth (folders whose name starts with "." are skipped)
    **/<name>.dat | .mat     their signal files (format 16 .dat, the PhysioNet/CinC MATLAB v4 .mat, or
                             anything else the wfdb package reads)
    patients.csv             optional: record_id, patient_id (records it leaves out are their own patient)

- Record id: the header's path relative to ``root`` without ``.hea``, with ``/`` separators
  (``site_a/00/rec1``). Two headers giving one id (``rec.hea`` and ``rec.HEA``) are an error.
- Patient id: from ``patients.csv`` when present, else the record id (each record its own patient, so
  splits are by record: the best possible without patient ids).
- Site: the top-level subfolder (``site_a``), ``"unknown"`` for records directly in ``root``.
- Labels: none (``codes`` is empty); the vocabulary is the study's, so every ``y_`` column is 0.
- ``age`` / ``sex`` come from ``#Age: 74`` / ``#Sex: Male`` header comments when present (PhysioNet/CinC
  style), NaN otherwise; ``sex`` uses PTB-XL's coding, 0 male, 1 female.
- Multi-segment records: the master header (``name/n_segments ...``) is one record, read and joined by
  wfdb (gaps NaN); the segment and layout headers it lists are parts of it, not records of their own.

The catalog comes from the headers alone (parsed once, when the reader is built); signals are read
one record at a time by :func:`read_wfdb_record`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.labels import Vocabulary, load_vocabulary
from ecgstudy.data.sources.record import RawSignal, RecordReadError, Source
from ecgstudy.data.sources.wfdb_io import INVALID_16, Header, check_checksums, read_header, read_record

log = logging.getLogger(__name__)

#: Optional record -> patient table at the root.
PATIENTS = "patients.csv"
#: MATLAB v4 matrix type of the challenge files: little-endian, int16, full real matrix.
MAT4_INT16 = 30
#: Age values outside this range (years) are treated as missing.
AGE_RANGE = (0.0, 120.0)
_SEX = {"male": 0.0, "m": 0.0, "female": 1.0, "f": 1.0}
_COMMENT = re.compile(r"^#\s*([A-Za-z][\w ]*?)\s*:\s*(.*)$")
_FMT_TOKEN = re.compile(r"^(?P<fmt>\d+)(?:\+(?P<offset>\d+))?$")


# ----------------------------------------------------------------------------------------------
# Headers (catalog time: no signal file is opened)


@dataclass(frozen=True)
class HeaderInfo:
    """What the catalog needs from one header; numbers are None when the header cannot be parsed.

    ``segments`` lists the segment record names of a multi-segment master header (None otherwise);
    ``comments`` holds ``#Key: value`` comment lines, keys lower-case (first occurrence wins).
    """

    n_sig: int | None = None
    fs: float | None = None
    sig_len: int | None = None
    segments: tuple[str, ...] | None = None
    comments: dict[str, str] = field(default_factory=dict)


def read_header_text(path: Path) -> str | None:
    """Text of header ``path``; None when it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def parse_header_info(text: str | None) -> HeaderInfo:
    """Summarise the text of a WFDB header without raising (a bad header fails later, at reading)."""
    if text is None:
        return HeaderInfo()
    comments: dict[str, str] = {}
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            m = _COMMENT.match(line)
            if m:
                comments.setdefault(m[1].strip().lower(), m[2].strip())
        elif line:
            lines.append(line)
    if not lines:
        return HeaderInfo(comments=comments)
    head = lines[0].split()
    try:
        _, n_seg = (head[0].split("/") + [None])[:2]
        n_sig = int(head[1])
        fs = float(head[2].split("/")[0].split("(")[0]) if len(head) > 2 else 250.0
        sig_len = int(head[3]) if len(head) > 3 else None
    except (IndexError, ValueError):
        return HeaderInfo(comments=comments)
    segments = None
    if n_seg is not None:
        try:
            segments = tuple(ln.split()[0] for ln in lines[1 : 1 + int(n_seg)])
        except ValueError:
            return HeaderInfo(comments=comments)
    return HeaderInfo(n_sig=n_sig, fs=fs, sig_len=sig_len, segments=segments, comments=comments)


def find_headers(root: Path) -> list[tuple[str, Path]]:
    """``(record id, header path)`` of every ``*.hea`` under ``root``, sorted by id.

    Raises ValueError naming both files when two headers give one record id.
    """
    found: dict[str, Path] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if not name.lower().endswith(".hea"):
                continue
            path = Path(folder) / name
            record_id = path.relative_to(root).as_posix()[: -len(".hea")]
            if record_id in found:
                raise ValueError(f"duplicate record id {record_id!r}: {found[record_id]} and {path}")
            found[record_id] = path
    return sorted(found.items())


def parse_age(value: str | None) -> float:
    """``#Age`` comment -> years (float); NaN when missing, not a number, or outside :data:`AGE_RANGE`."""
    try:
        age = float(str(value).strip())
    except ValueError:
        return math.nan
    return age if AGE_RANGE[0] <= age <= AGE_RANGE[1] else math.nan


def parse_sex(value: str | None) -> float:
    """``#Sex`` comment -> 0.0 male, 1.0 female (PTB-XL coding), NaN otherwise (``Unknown``, ``NaN``)."""
    return _SEX.get(str(value).strip().lower(), math.nan)


# ----------------------------------------------------------------------------------------------
# Signals


def read_wfdb_record(base: str | Path, verify_checksums: bool = True) -> RawSignal:
    """Read WFDB record ``base`` (path without ``.hea``) in physical units.

    Format-16 ``.dat`` records go through :func:`ecgstudy.data.sources.wfdb_io.read_record`; the
    PhysioNet/CinC ``.mat`` layout (one MATLAB v4 int16 matrix ``val`` of shape (n_sig, n_samples),
    header signal lines ``A0001.mat 16+24 ...``) is read directly; multi-segment records and other
    layouts by the wfdb package.

    Returns
    -------
    RawSignal
        ``data`` float64 of shape (n_signals, n_samples) in the header's units (NaN for WFDB's invalid
        sample value), at the header's ``fs`` Hz. Raises RecordReadError (reasons of
        :mod:`ecgstudy.data.sources.wfdb_io`) for a bad record.
    """
    base = Path(base)
    hea = base.with_name(base.name + ".hea")
    text = read_header_text(hea)
    if parse_header_info(text).segments is not None:
        return _read_multisegment(base)
    header = read_header(hea)  # raises missing_file / bad_header
    offset = _mat_offset(text or "", header)
    if offset is not None:
        digital = _read_mat_v4(base.parent / header.files[0], header, offset, verify_checksums)
        if digital is not None:
            data = (digital - np.asarray(header.baselines, float)[:, None]) / np.asarray(header.gains)[:, None]
            data[digital == INVALID_16] = np.nan
            return RawSignal(data=data, fs=header.fs, leads=header.names, units=header.units)
    return read_record(base, verify_checksums=verify_checksums)


def _mat_offset(text: str, header: Header) -> int | None:
    """Byte offset of a single ``.mat`` file holding every signal in format 16, else None."""
    if len(set(header.files)) != 1 or not header.files[0].lower().endswith(".mat") or set(header.fmts) != {"16"}:
        return None
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    offsets = set()
    for tokens in lines[1 : 1 + len(header.names)]:
        m = _FMT_TOKEN.match(tokens[1])
        if m is None:  # skew or several samples per frame: left to wfdb
            return None
        offsets.add(int(m["offset"] or 0))
    return offsets.pop() if len(offsets) == 1 else None


def _read_mat_v4(path: Path, header: Header, offset: int, verify_checksums: bool) -> np.ndarray | None:
    """Digital samples (float64, (n_sig, n_samples)) of a MATLAB v4 int16 matrix at ``offset``.

    Returns None when the file does not start with such a matrix header ending at ``offset`` (then
    the WFDB header alone describes the file and wfdb reads it).
    """
    n_sig = len(header.names)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(20)
    except FileNotFoundError:
        raise RecordReadError("missing_file", f"signal file not found: {path}") from None
    except OSError as exc:
        raise RecordReadError("unreadable", f"cannot read {path}: {exc}") from None
    if len(head) < 20:
        raise RecordReadError("truncated_data", f"{path}: {size} bytes, shorter than a MATLAB v4 header")
    mtype, rows, cols, imaginary, name_len = struct.unpack("<5i", head)
    if mtype != MAT4_INT16 or imaginary != 0 or 20 + name_len != offset or rows < 0 or cols < 0:
        return None
    expected = offset + 2 * rows * cols
    if size < expected:
        raise RecordReadError("truncated_data", f"{path}: {size} bytes, its {rows} x {cols} matrix needs {expected}")
    if size > expected or rows != n_sig or (header.sig_len is not None and cols != header.sig_len):
        raise RecordReadError(
            "header_data_mismatch",
            f"{path}: {rows} x {cols} matrix in {size} bytes; header declares {n_sig} signals x {header.sig_len}",
        )
    digital = np.fromfile(path, dtype="<i2", offset=offset).reshape(cols, rows).T  # column-major (n_sig, n)
    if verify_checksums:
        check_checksums(digital, header, path)
    return digital.astype(np.float64)


def _read_multisegment(base: Path) -> RawSignal:
    """A multi-segment record joined by wfdb: float64 (n_sig, n_samples), NaN in gaps."""
    import wfdb  # imported here: slow to import, only needed for multi-segment records

    try:
        record = wfdb.rdrecord(str(base), physical=True, m2s=True, return_res=64)
    except FileNotFoundError as exc:
        raise RecordReadError("missing_file", f"{base}: segment file not found: {exc.filename}") from None
    except Exception as exc:  # wfdb raises assorted exception types for damaged records
        raise RecordReadError("unreadable", f"{base}: wfdb could not read the multi-segment record: {exc}") from None
    data = np.asarray(record.p_signal, dtype=np.float64).T
    return RawSignal(data=data, fs=float(record.fs), leads=tuple(record.sig_name), units=tuple(record.units))


# ----------------------------------------------------------------------------------------------
# The reader


class WFDBFolderSource(Source):
    """A folder of WFDB records without labels (see module docstring).

    Parameters
    ----------
    root : the folder (searched recursively)
    target_fs, resolution : harmonisation hints that curation passes to every reader; unused here
        (records are read at their own rate and the folder has one resolution)
    verify_checksums : check WFDB signal checksums where the header gives them (catches corrupt files)
    """

    name = "wfdb"

    def __init__(
        self,
        root: str | Path,
        target_fs: float | None = None,
        resolution: str = "auto",
        verify_checksums: bool = True,
    ):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name} root folder not found: {root}")
        self.root = root
        self.verify_checksums = verify_checksums
        if resolution != "auto":
            log.warning("resolution=%r ignored: a WFDB folder is read at its records' own rate", resolution)
        self.vocabulary: Vocabulary = load_vocabulary()
        headers = find_headers(root)
        if not headers:
            raise ValueError(f"no WFDB header (*.hea) under {root}")
        infos = {record_id: parse_header_info(read_header_text(path)) for record_id, path in headers}
        parts = self._segment_ids(infos)
        #: record id and header summary of each catalog row, in catalog order
        self._ids = [record_id for record_id, _ in headers if record_id not in parts]
        self._infos = [infos[record_id] for record_id in self._ids]
        self._patients = self._read_patients(root / PATIENTS, set(self._ids))
        self._catalog: pd.DataFrame | None = None

    @staticmethod
    def _segment_ids(infos: dict[str, HeaderInfo]) -> set[str]:
        """Record ids of segment and layout headers listed by a multi-segment master header."""
        parts = set()
        for record_id, info in infos.items():
            folder = record_id.rpartition("/")[0]
            for segment in info.segments or ():
                if segment != "~":
                    parts.add(f"{folder}/{segment}" if folder else segment)
        return parts

    @staticmethod
    def _read_patients(path: Path, record_ids: set[str]) -> dict[str, str]:
        if not path.is_file():
            return {}
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas raises several parser error types
            raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
        missing = [c for c in ("record_id", "patient_id") if c not in table.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; columns: {list(table.columns)}")
        table = table.apply(lambda col: col.str.strip())
        dups = sorted(set(table.loc[table["record_id"].duplicated(), "record_id"]))
        if dups:
            raise ValueError(f"{path}: duplicate record_id(s) {dups[:20]}")
        empty = table.loc[table["patient_id"] == "", "record_id"].tolist()
        if empty:
            raise ValueError(f"{path}: empty patient_id for record(s) {empty[:20]}")
        unknown = sorted(set(table["record_id"]) - record_ids)
        if unknown:
            log.warning("%s: %d record id(s) not in the folder, ignored (e.g. %s)", path, len(unknown), unknown[:5])
        absent = len(record_ids - set(table["record_id"]))
        if absent:
            log.info("%s: %d record(s) not listed; each is its own patient", path, absent)
        return dict(zip(table["record_id"], table["patient_id"]))

    def _site(self, record_id: str) -> str:
        """Top-level subfolder of the record, "unknown" for records directly in the root."""
        folder, sep, _ = record_id.partition("/")
        return folder if sep else "unknown"

    def catalog(self) -> pd.DataFrame:
        if self._catalog is None:  # built once: header comments are parsed at construction
            self._catalog = self._build_catalog()
        return self._catalog.copy()

    def _build_catalog(self) -> pd.DataFrame:
        infos = self._infos
        return pd.DataFrame(
            {
                "record_id": self._ids,
                "patient_id": [self._patients.get(r, r) for r in self._ids],
                "codes": "",
                "site": [self._site(r) for r in self._ids],
                "age": [parse_age(i.comments.get("age")) for i in infos],
                "sex": [parse_sex(i.comments.get("sex")) for i in infos],
                "n_leads": pd.array([i.n_sig for i in infos], dtype="Int64"),
                "header_fs": [np.nan if i.fs is None else i.fs for i in infos],
                "header_samples": pd.array([i.sig_len for i in infos], dtype="Int64"),
            }
        )

    def record_path(self, position: int) -> Path:
        """Path (without ``.hea``) of catalog row ``position``."""
        return self.root / self._ids[position]

    def read_signal(self, position: int) -> RawSignal:
        return read_wfdb_record(self.record_path(position), verify_checksums=self.verify_checksums)

    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        return {}
