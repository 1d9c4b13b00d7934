"""Reader of MIMIC-IV-ECG (Diagnostic Electrocardiogram Matched Subset, v1.0, PhysioNet): ~800,000 ECGs.

Layout read (``root``)::

    record_list.csv            one row per ECG: subject_id, study_id, file_name, ecg_time, path
                               (path: files/p1000/p10000032/s40689238/40689238, without extension)
    machine_measurements.csv   optional: subject_id, study_id, cart_id, ecg_time, report_0 ... report_17,
                               bandwidth, filtering, rr_interval, p_onset, p_end, qrs_onset, qrs_end,
                               t_end, p_axis, qrs_axis, t_axis
    files/pNNNN/pSUBJECT/sSTUDY/STUDY.hea, .dat
                               WFDB records: 500 Hz, 10 s (5000 samples), 12 leads, mV

``root`` may also be the folder that holds the unzipped release folder when that is its only subfolder
with a ``record_list.csv``.

Signals
    Read with :func:`ecgstudy.data.sources.wfdb_io.read_record` in the header's units (mV) at the header's
    rate. The headers list the leads as I, II, III, aVR, aVF, aVL, V1-V6: aVF and aVL are swapped
    relative to the standard order (the PhysioNet page lists the leads in that order, and every
    MIMIC-IV-ECG loader reorders them). The reader keeps the header's names and order; harmonisation
    reorders by name, never by position.

Catalog
    ``record_id`` = study_id (str), ``patient_id`` = subject_id (str), ``site`` = the machine's
    ``cart_id`` (str; ``mimic`` when unknown), ``device`` = ``unknown``, ``ecg_time``, ``report`` (the
    machine report: the non-empty report_0..report_17 joined with "; "), and the machine measurements
    (``rr_interval``, ``p_onset``, ..., ``qrs_axis``, ``t_axis``, ``bandwidth``, ``filtering``). The
    ``codes`` cell is the tuple of report statements. No age or sex (they live in the MIMIC-IV
    clinical database). No official folds: curation splits patients at random.

Labels (decision: rules as data)
    Labels are derived from the machine report with the ordered rule table
    ``ecgstudy/data/resources/mimic_report_rules.csv`` (columns ``pattern``: case-insensitive regular
    expression, ``scp_code``: a statement of the study vocabulary, or empty for a phrase that is
    recognised but has no statement, ``note``). Each statement (one report_i cell) is matched on its
    own: rules run in file order, and every match is consumed (blanked) before the next rule runs, so
    "incomplete right bundle branch block" gives IRBBB and not also CRBBB, and "abnormal ECG" never
    gives NORM. Each match is then qualified by cues within its clause (the text between separators
    ``, ; : . ( )`` and the words with/and/or/but, except the "with" of "consistent/compatible with"):

    - negation (the statement is dropped): "no", "not", "without", "absence of", "negative for",
      "no longer", "has replaced" before the match ("atrial fibrillation has replaced sinus rhythm"
      keeps AFIB only); "no longer present", "not present/seen", "absent", "resolved", "replaced by"
      right after it
    - hedging (kept with a lower likelihood, as PTB-XL's likelihoods): "probable", "probably",
      "likely", "consistent with" -> 80; "possible", "possibly", "consider", "suggests", "suggestive
      of", "may be", "compatible with", "borderline", "questionable" -> 50; "cannot rule out",
      "cannot exclude", "rule out", "r/o" before, or "cannot be excluded/ruled out" after -> 15;
      otherwise 100. Hedges are checked before negations ("cannot rule out" is not a negation).

    As for PTB-XL, the store counts a statement as present whatever its likelihood. A statement the
    rules do not recognise gives no label (the ``report`` column keeps the text); a record whose
    report maps to nothing has no labels and is dropped by the label tasks.

Errors
    Wrong root or no record_list.csv: ``FileNotFoundError`` naming the path. record_list.csv without
    subject_id/study_id/path, non-integer or duplicate study_id, duplicate study_id in
    machine_measurements.csv, a subject_id that differs between the two files: ``ValueError``.
    Missing machine_measurements.csv: a warning, and records without labels. A record whose
    .hea/.dat is missing or damaged: the :mod:`ecgstudy.data.sources.wfdb_io` reasons (``missing_file``,
    ``truncated_data``, ``checksum_mismatch``, ...) in ``excluded.parquet``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.labels import LabelError, Vocabulary, load_vocabulary
from ecgstudy.paths import resource
from ecgstudy.data.sources.record import RawSignal, RecordReadError, Source
from ecgstudy.data.sources.wfdb_io import read_record

log = logging.getLogger(__name__)

RECORD_LIST = "record_list.csv"
MEASUREMENTS = "machine_measurements.csv"
RULES = "mimic_report_rules.csv"
#: The report statement columns of machine_measurements.csv.
REPORT_COLUMNS: tuple[str, ...] = tuple(f"report_{i}" for i in range(18))
#: machine_measurements.csv columns passed through to the catalog when present.
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end",
    "p_axis", "qrs_axis", "t_axis",
)
#: Separator of the statements in the ``report`` column.
REPORT_SEPARATOR = "; "

#: Likelihoods of certain, probable, possible and not-excluded statements (PTB-XL's scale).
CERTAIN, PROBABLE, POSSIBLE, NOT_EXCLUDED = 100.0, 80.0, 50.0, 15.0
_CLAUSE_BREAK = re.compile(r"[,;:.()]|\b(?:(?<!consistent )(?<!compatible )with|and|or|but)\b", re.IGNORECASE)
_HEDGE_BEFORE = (
    (re.compile(r"\bcan ?not (?:rule out|exclude)\b|\brule out\b|\br/o\b", re.IGNORECASE), NOT_EXCLUDED),
    (re.compile(r"\bprobabl[ey]\b|\blikely\b|\bconsistent with\b", re.IGNORECASE), PROBABLE),
    (re.compile(r"\bpossibl[ey]\b|\bconsider\b|\bsuggest(?:s|ive of)?\b|\bmay be\b|\bcompatible with\b"
                r"|\bborderline\b|\bquestionable\b", re.IGNORECASE), POSSIBLE),
)
_HEDGE_AFTER = re.compile(r"^\s*(?:is |are )?(?:can ?not be (?:excluded|ruled out)|not excluded)\b", re.IGNORECASE)
_NEGATION_BEFORE = re.compile(
    r"\bno\b|\bnot\b|\bwithout\b|\babsence of\b|\bnegative for\b|\bno longer\b|\bha(?:s|ve) replaced\b", re.IGNORECASE
)
_NEGATION_AFTER = re.compile(
    r"^\s*(?:is |are |has |have )?(?:no longer (?:present|seen)|not (?:present|seen)|now absent|absent|resolved"
    r"|replaced by)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReportRule:
    """One row of the rule table: a case-insensitive pattern and the statement it gives ("" = none)."""

    pattern: re.Pattern
    code: str
    note: str = ""


@dataclass
class ReportRules:
    """The ordered rule table and its application to report statements (results cached per statement)."""

    rules: tuple[ReportRule, ...]
    _cache: dict[str, tuple[dict[str, float], bool]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path | None = None, vocabulary: Vocabulary | None = None) -> ReportRules:
        """Read a rule table (default: the bundled one); every code must be in ``vocabulary``."""
        path = Path(path) if path is not None else resource(RULES)
        if not path.is_file():
            raise FileNotFoundError(f"report rule table not found: {path}")
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:  # pandas raises several parser error types
            raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
        missing = [c for c in ("pattern", "scp_code") if c not in table.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; columns: {list(table.columns)}")
        vocabulary = vocabulary or load_vocabulary()
        rules = []
        for i, row in enumerate(table.itertuples(index=False), start=2):  # line 1 is the header
            pattern, code = row.pattern.strip(), row.scp_code.strip()
            if not pattern:
                raise ValueError(f"{path}: line {i}: empty pattern")
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"{path}: line {i}: bad pattern {pattern!r}: {exc}") from None
            if code and code not in vocabulary:
                raise ValueError(f"{path}: line {i}: code {code!r} is not in the statement vocabulary")
            rules.append(ReportRule(compiled, code, getattr(row, "note", "")))
        return cls(tuple(rules))

    def statement_codes(self, statement: str) -> tuple[dict[str, float], bool]:
        """Codes of one report statement and whether any rule recognised it.

        Returns ``({code: likelihood}, recognised)``; negated mentions give no code but count as
        recognised.
        """
        text = " ".join(str(statement).split()).lower()
        if text in self._cache:
            return self._cache[text]
        remaining = text
        codes: dict[str, float] = {}
        recognised = False
        for rule in self.rules:
            matches = [m for m in rule.pattern.finditer(remaining) if m.end() > m.start()]
            for m in matches:
                recognised = True
                likelihood = _qualify(text, m.start(), m.end())
                if rule.code and likelihood > 0:
                    codes[rule.code] = max(codes.get(rule.code, 0.0), likelihood)
                remaining = remaining[: m.start()] + " " * (m.end() - m.start()) + remaining[m.end() :]
        self._cache[text] = (codes, recognised)
        return codes, recognised

    def codes(self, statements: Iterable[str]) -> dict[str, float]:
        """Codes of a whole report: the highest likelihood of each code over its statements."""
        out: dict[str, float] = {}
        for statement in statements:
            for code, likelihood in self.statement_codes(statement)[0].items():
                out[code] = max(out.get(code, 0.0), likelihood)
        return out


def _qualify(text: str, start: int, end: int) -> float:
    """Likelihood of the mention ``text[start:end]`` from the cues of its clause (0 = negated)."""
    breaks_before = [m.end() for m in _CLAUSE_BREAK.finditer(text, 0, start)]
    before = text[breaks_before[-1] if breaks_before else 0 : start]
    next_break = _CLAUSE_BREAK.search(text, end)
    after = text[end : next_break.start() if next_break else len(text)]
    for cue, likelihood in _HEDGE_BEFORE:
        if cue.search(before):
            return likelihood
    if _HEDGE_AFTER.search(after):
        return NOT_EXCLUDED
    if _NEGATION_BEFORE.search(before) or _NEGATION_AFTER.search(after):
        return 0.0
    return CERTAIN


def find_root(root: str | Path) -> Path:
    """The folder holding ``record_list.csv``: ``root`` itself or its single such subfolder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MIMIC-IV-ECG root folder not found: {root}")
    if (root / RECORD_LIST).is_file():
        return root
    inner = sorted(p.parent for p in root.glob(f"*/{RECORD_LIST}"))
    if len(inner) == 1:
        log.info("using MIMIC-IV-ECG folder %s inside %s", inner[0].name, root)
        return inner[0]
    raise FileNotFoundError(
        f"{root / RECORD_LIST} not found" + (f" (several candidates inside: {[str(p) for p in inner]})" if inner else "")
    )


def _integer_ids(values: pd.Series, path: Path, column: str) -> pd.Series:
    ids = pd.to_numeric(values, errors="coerce")
    bad = ids.isna() | (ids != ids.round())
    if bad.any():
        raise ValueError(f"{path}: non-integer {column} at row(s) {list(values.index[bad][:10])}")
    return ids.astype(np.int64)


def _site_name(value: Any) -> str:
    """cart_id as a string ("6848"), ``mimic`` when missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == "":
        return "mimic"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _statements(row: Sequence[Any]) -> tuple[str, ...]:
    """The non-empty report cells of one machine_measurements row, stripped."""
    out = []
    for cell in row:
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            continue
        text = " ".join(str(cell).split())
        if text:
            out.append(text)
    return tuple(out)


class MimicSource(Source):
    """MIMIC-IV-ECG dataset (see the module docstring for layout and label rules).

    Parameters
    ----------
    root : the MIMIC-IV-ECG folder (record_list.csv, machine_measurements.csv, files/)
    target_fs, resolution : accepted for the common reader interface and ignored (one rate: 500 Hz)
    verify_checksums : check WFDB signal checksums (catches corrupt ``.dat`` files)
    rules : rule table (default: the bundled ``mimic_report_rules.csv``)
    """

    name = "mimic"

    def __init__(
        self,
        root: str | Path,
        target_fs: float | None = None,
        resolution: str = "auto",
        verify_checksums: bool = True,
        rules: str | Path | None = None,
        **ignored: Any,
    ):
        if ignored:
            log.debug("MIMIC-IV-ECG reader ignores options %s", sorted(ignored))
        self.root = find_root(root)
        self.verify_checksums = verify_checksums
        self.vocabulary: Vocabulary = load_vocabulary()
        self.rules = ReportRules.load(rules, self.vocabulary)
        self.records = self._read_record_list(self.root / RECORD_LIST)
        self.measurements = self._read_measurements(self.root / MEASUREMENTS)

    @staticmethod
    def _read_record_list(path: Path) -> pd.DataFrame:
        try:
            table = pd.read_csv(path, dtype={"path": str, "file_name": str})
        except Exception as exc:  # pandas raises several parser error types
            raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
        missing = [c for c in ("subject_id", "study_id", "path") if c not in table.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; columns: {list(table.columns)}")
        table["study_id"] = _integer_ids(table["study_id"], path, "study_id")
        table["subject_id"] = _integer_ids(table["subject_id"], path, "subject_id")
        dups = sorted(set(table["study_id"][table["study_id"].duplicated()]))
        if dups:
            raise ValueError(f"{path}: duplicate study_id(s) {dups[:20]}" + (" ..." if len(dups) > 20 else ""))
        return table.reset_index(drop=True)

    def _read_measurements(self, path: Path) -> pd.DataFrame | None:
        if not path.is_file():
            log.warning("%s not found: MIMIC-IV-ECG records get no labels (machine reports missing)", path)
            return None
        try:
            table = pd.read_csv(path, dtype={c: str for c in REPORT_COLUMNS}, low_memory=False)
        except Exception as exc:  # pandas raises several parser error types
            raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
        if "study_id" not in table.columns:
            raise ValueError(f"{path}: missing column 'study_id'; columns: {list(table.columns)}")
        table["study_id"] = _integer_ids(table["study_id"], path, "study_id")
        dups = sorted(set(table["study_id"][table["study_id"].duplicated()]))
        if dups:
            raise ValueError(f"{path}: duplicate study_id(s) {dups[:20]}" + (" ..." if len(dups) > 20 else ""))
        if "subject_id" in table.columns:
            subjects = dict(zip(self.records["study_id"], self.records["subject_id"]))
            theirs = pd.to_numeric(table["subject_id"], errors="coerce")
            ours = table["study_id"].map(subjects)
            differ = ours.notna() & (theirs != ours)
            if differ.any():
                bad = table["study_id"][differ].tolist()[:10]
                raise ValueError(f"{path}: subject_id differs from {RECORD_LIST} for study_id(s) {bad}")
        reports = [c for c in REPORT_COLUMNS if c in table.columns]
        if not reports:
            log.warning("%s has no report_0..report_17 columns: records get no labels", path)
        table["statements"] = [_statements(row) for row in table[reports].itertuples(index=False)] if reports else [
            ()
        ] * len(table)
        unlisted = int((~table["study_id"].isin(self.records["study_id"])).sum())
        if unlisted:
            log.info("%d study_id(s) of %s are not in %s; ignored", unlisted, MEASUREMENTS, RECORD_LIST)
        keep = ["study_id", "statements", *(c for c in ("cart_id", *MEASUREMENT_COLUMNS) if c in table.columns)]
        return table[keep].set_index("study_id")

    def catalog(self) -> pd.DataFrame:
        rec = self.records
        out = pd.DataFrame(
            {
                "record_id": rec["study_id"].astype(str),
                "patient_id": rec["subject_id"].astype(str),
            }
        )
        meas = self.measurements
        if meas is not None:
            joined = meas.reindex(rec["study_id"])
            statements = [s if isinstance(s, tuple) else () for s in joined["statements"]]
            sites = [_site_name(v) for v in joined["cart_id"]] if "cart_id" in joined.columns else "mimic"
        else:
            joined, statements, sites = None, [()] * len(rec), "mimic"
        out["codes"] = statements
        out["site"] = sites
        out["device"] = "unknown"
        if "ecg_time" in rec.columns:
            out["ecg_time"] = rec["ecg_time"].fillna("").astype(str).to_numpy()
        out["report"] = [REPORT_SEPARATOR.join(s) for s in statements]
        if joined is not None:
            for col in MEASUREMENT_COLUMNS:
                if col in joined.columns:
                    out[col] = joined[col].to_numpy()
        n_unmapped = sum(1 for s in statements if s and not self.rules.codes(s))
        if n_unmapped:
            log.info("%d of %d MIMIC-IV-ECG reports map to no statement (see the report column)", n_unmapped, len(out))
        return out

    def record_path(self, position: int) -> Path:
        """Path (without ``.hea``) of catalog row ``position``."""
        name = self.records["path"].iat[position]
        if not isinstance(name, str) or not name.strip():
            raise RecordReadError("missing_file", f"study {self.records['study_id'].iat[position]}: no path")
        return self.root / name.strip()

    def read_signal(self, position: int) -> RawSignal:
        """Read catalog row ``position``: ``data`` (12, 5000) float64 in the header's units (mV) at 500 Hz."""
        return read_record(self.record_path(position), verify_checksums=self.verify_checksums)

    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        """SCP statements of one machine report (a tuple of statements) by the rule table."""
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            return {}
        if isinstance(cell, str):
            cell = (cell,)
        if not isinstance(cell, (tuple, list)) or not all(isinstance(s, str) for s in cell):
            raise LabelError(f"record {record_id}: expected the report statements, got {cell!r}")
        return self.rules.codes(cell)
