"""Label vocabularies (SCP-ECG statements) and the PTB-XL benchmark label tasks.

A :class:`Vocabulary` is a dataset's ``scp_statements.csv``: one row per statement code with its
``diagnostic`` / ``form`` / ``rhythm`` flags and, for diagnostic statements, the diagnostic class
(superclass, 5 in PTB-XL) and subclass (23). Rare-disease sets ship the PTB-XL table plus extra rows.

The curated store keeps one 0/1 column ``y_<CODE>`` per statement of the vocabulary; the benchmark
tasks of Strodthoff et al. (helme/ecg_ptbxl_benchmarking) are derived from those columns at use time
by :func:`task_labels`:

============== ========================================================== ===========
task           label set                                                  PTB-XL size
============== ========================================================== ===========
all            every statement                                            71
diagnostic     statements with diagnostic == 1                            44
subdiagnostic  diagnostic_subclass of the diagnostic statements present   23
superdiagnostic diagnostic_class of the diagnostic statements present     5
form           statements with form == 1                                  19
rhythm         statements with rhythm == 1                                12
lvef40         LVEF <= 40 % (simulator ground truth ``gt_lvef40``)         (simulated)
============== ========================================================== ===========

A statement counts as present whatever its likelihood (likelihood 0 included), and records with no
label of a task are dropped for that task, as in the published benchmark. The target task ``lvef40`` (one
binary label, ECG-FM's reduced-LVEF task) reads a record-level column instead and keeps its negatives.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.paths import resource

#: Tasks whose one binary label is a record-level target column, not a statement aggregate: task ->
#: (label name, column of ``records.parquet``). ``lvef40``: LVEF <= 40 % (ECG-FM's reduced-LVEF task), from
#: the simulator's ground truth (``gt_lvef40``); records without a value are dropped, negatives are kept.
TARGET_TASKS: dict[str, tuple[str, str]] = {"lvef40": ("LVEF40", "gt_lvef40")}
#: The label tasks of the PTB-XL benchmark, then the target tasks.
TASKS: tuple[str, ...] = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm", *TARGET_TASKS)
#: Prefix of the label columns of ``records.parquet``.
LABEL_PREFIX = "y_"
_FLAGS = ("diagnostic", "form", "rhythm")


class LabelError(ValueError):
    """A label problem in the data (malformed scp_codes, unknown code): names the record."""


class UnknownCodeError(LabelError):
    """A record's label code is not in the vocabulary: names the record and the code."""


@dataclass(frozen=True)
class Vocabulary:
    """A statement vocabulary (the rows of an ``scp_statements.csv``).

    Attributes
    ----------
    table : DataFrame
        Index: statement code (str), in file order. Columns: ``description`` (str), ``diagnostic``,
        ``form``, ``rhythm`` (bool), ``diagnostic_class``, ``diagnostic_subclass`` (str, "" when not
        diagnostic).
    """

    table: pd.DataFrame

    @property
    def codes(self) -> list[str]:
        """Statement codes in file order (the order of the store's ``y_`` columns)."""
        return list(self.table.index)

    def __contains__(self, code: object) -> bool:
        return code in self.table.index

    def __len__(self) -> int:
        return len(self.table)

    def codes_of(self, flag: str) -> list[str]:
        """Codes whose ``flag`` (diagnostic, form or rhythm) is set, in file order."""
        if flag not in _FLAGS:
            raise ValueError(f"unknown statement flag {flag!r}; valid: {list(_FLAGS)}")
        return list(self.table.index[self.table[flag].to_numpy()])

    def kind(self, code: str) -> str:
        """``diagnostic``, ``form``, ``rhythm``, a ``+``-joined combination, or ``other``."""
        row = self.table.loc[code]
        kinds = [flag for flag in _FLAGS if bool(row[flag])]
        return "+".join(kinds) if kinds else "other"

    def label_info(self) -> dict[str, dict[str, str]]:
        """``{code: {description, diagnostic_class, diagnostic_subclass, kind}}`` (the store's meta)."""
        return {
            code: {
                "description": str(row["description"]),
                "diagnostic_class": str(row["diagnostic_class"]),
                "diagnostic_subclass": str(row["diagnostic_subclass"]),
                "kind": self.kind(code),
            }
            for code, row in self.table.iterrows()
        }

    @classmethod
    def from_label_info(cls, info: Mapping[str, Mapping[str, str]]) -> Vocabulary:
        """Rebuild a vocabulary from a store's ``meta["label_info"]``."""
        rows = []
        for code, item in info.items():
            kinds = str(item.get("kind", "other")).split("+")
            rows.append(
                {
                    "code": code,
                    "description": item.get("description", ""),
                    **{flag: flag in kinds for flag in _FLAGS},
                    "diagnostic_class": item.get("diagnostic_class", ""),
                    "diagnostic_subclass": item.get("diagnostic_subclass", ""),
                }
            )
        return cls(_tidy(pd.DataFrame(rows).set_index("code"), "label_info"))


def _tidy(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """Normalise a statements table: bool flags, "" for missing classes, unique string codes.

    A diagnostic statement without a class or subclass (e.g. a rare-set row) simply contributes
    nothing to the (sub)class tasks.
    """
    table = table.copy()
    table.index = table.index.map(lambda c: str(c).strip())
    table.index.name = "code"
    if table.index.has_duplicates:
        dups = sorted(set(table.index[table.index.duplicated()]))
        raise ValueError(f"{where}: duplicate statement code(s) {dups}")
    for flag in _FLAGS:
        if flag not in table.columns:
            raise ValueError(f"{where}: missing column {flag!r} (columns: {list(table.columns)})")
        table[flag] = table[flag].fillna(0).astype(float) == 1.0
    for col in ("diagnostic_class", "diagnostic_subclass", "description"):
        if col not in table.columns:
            table[col] = ""
        table[col] = table[col].fillna("").astype(str).str.strip()
    return table[["description", *_FLAGS, "diagnostic_class", "diagnostic_subclass"]]


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """Read an ``scp_statements.csv`` (default: the bundled PTB-XL table, 71 statements).

    Parameters
    ----------
    path : path, optional
        A dataset's own ``scp_statements.csv`` (first column, whose header may be empty, holds the code).
    """
    path = Path(path) if path is not None else resource("ptbxl_scp_statements.csv")
    if not path.is_file():
        raise FileNotFoundError(f"statement table not found: {path}")
    try:
        table = pd.read_csv(path, index_col=0)
    except Exception as exc:  # pandas raises several parser error types
        raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
    return Vocabulary(_tidy(table, str(path)))


def parse_scp_codes(text: Any, record_id: str) -> dict[str, float]:
    """Parse a PTB-XL ``scp_codes`` cell, e.g. ``"{'NORM': 100.0, 'SR': 0.0}"``.

    Uses :func:`ast.literal_eval` (no code execution). Returns ``{code: likelihood}``; an empty or
    missing cell gives ``{}``. Raises :class:`LabelError` naming ``record_id`` on anything else.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return {}
    if isinstance(text, Mapping):
        value: Any = dict(text)
    else:
        try:
            value = ast.literal_eval(str(text).strip() or "{}")
        except (ValueError, SyntaxError) as exc:
            raise LabelError(f"record {record_id}: scp_codes is not a dict literal: {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise LabelError(f"record {record_id}: scp_codes is not a dict: {text!r}")
    out = {}
    for code, likelihood in value.items():
        if not isinstance(code, str) or isinstance(likelihood, bool) or not isinstance(likelihood, (int, float)):
            raise LabelError(f"record {record_id}: bad scp_codes entry {code!r}: {likelihood!r}")
        out[code.strip()] = float(likelihood)
    return out


def check_codes(codes: Iterable[str], vocabulary: Vocabulary, record_id: str) -> None:
    """Raise :class:`UnknownCodeError` naming the record and the codes not in ``vocabulary``."""
    unknown = sorted(c for c in codes if c not in vocabulary)
    if unknown:
        raise UnknownCodeError(f"record {record_id}: unknown statement code(s) {unknown} (not in the vocabulary)")


def encode(codes: Iterable[str], vocabulary: Vocabulary) -> np.ndarray:
    """0/1 vector over ``vocabulary.codes``: int8 of shape (n_codes,). Unknown codes are ignored."""
    position = {code: i for i, code in enumerate(vocabulary.codes)}
    row = np.zeros(len(position), dtype=np.int8)
    for code in codes:
        if code in position:
            row[position[code]] = 1
    return row


def aggregate(codes: Iterable[str], vocabulary: Vocabulary, task: str) -> set[str]:
    """The labels of ``task`` implied by a record's statement codes (any likelihood counts)."""
    table = vocabulary.table
    codes = [c for c in codes if c in vocabulary]
    if task == "all":
        return set(codes)
    if task in _FLAGS:
        return {c for c in codes if table.at[c, task]}
    if task in ("subdiagnostic", "superdiagnostic"):
        column = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
        return {table.at[c, column] for c in codes if table.at[c, "diagnostic"]} - {""}
    raise ValueError(f"unknown label task {task!r}; valid tasks: {list(TASKS)}")


def task_names(vocabulary: Vocabulary, task: str) -> list[str]:
    """Every label ``task`` can produce: codes in file order, or sorted (sub)class names."""
    table = vocabulary.table
    if task == "all":
        return vocabulary.codes
    if task in _FLAGS:
        return vocabulary.codes_of(task)
    if task == "subdiagnostic":
        return sorted(set(table.loc[table["diagnostic"], "diagnostic_subclass"]) - {""})
    if task == "superdiagnostic":
        return sorted(set(table.loc[table["diagnostic"], "diagnostic_class"]) - {""})
    raise ValueError(f"unknown label task {task!r}; valid tasks: {list(TASKS)}")


def task_matrix(codes_matrix: np.ndarray, codes: Sequence[str], vocabulary: Vocabulary, task: str):
    """Aggregate a 0/1 statement matrix to the labels of ``task``.

    Parameters
    ----------
    codes_matrix : array of shape (N, C)
        0/1 per record and statement (the store's ``y_`` columns).
    codes : list of C statement codes (column order of ``codes_matrix``).

    Returns
    -------
    names : list of L label names (:func:`task_names` order)
    matrix : int8 array of shape (N, L)
    """
    names = task_names(vocabulary, task)
    codes_matrix = np.asarray(codes_matrix) > 0
    col = {code: j for j, code in enumerate(codes)}
    matrix = np.zeros((codes_matrix.shape[0], len(names)), dtype=np.int8)
    table = vocabulary.table
    for i, name in enumerate(names):
        if task in ("all", *_FLAGS):
            members = [name]
        else:
            column = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
            members = list(table.index[table["diagnostic"] & (table[column] == name)])
        js = [col[m] for m in members if m in col]
        if js:
            matrix[:, i] = codes_matrix[:, js].any(axis=1)
    return names, matrix


@dataclass(frozen=True)
class TaskLabels:
    """The label set of one task on one store.

    Unpacks as ``names, keep = task_labels(...)``.

    Attributes
    ----------
    task : str
    names : list of L label names (statement codes for all/diagnostic/form/rhythm, for which they are
        also the store's ``y_`` columns; (sub)class names such as ``MI`` for the aggregated tasks)
    keep : bool array of shape (N,): records with at least one of the chosen labels
    y : float32 array of shape (N, L): the task's 0/1 targets for every store row (zeros where not kept)
    counts : int array of shape (L,): positives of each label among the counted rows
    """

    task: str
    names: list[str]
    keep: np.ndarray
    y: np.ndarray
    counts: np.ndarray

    def __iter__(self):
        yield self.names
        yield self.keep


def task_labels(
    store_or_records: Any,
    task: str,
    min_positives: int = 1,
    vocabulary: Vocabulary | None = None,
    within: np.ndarray | None = None,
) -> TaskLabels:
    """Choose the labels of ``task`` and the records that keep at least one of them.

    Follows the PTB-XL benchmark: aggregate the statement columns to the task's labels, keep the labels
    with at least ``min_positives`` positive records, then drop records left without any label.

    Parameters
    ----------
    store_or_records : Store or DataFrame
        A :class:`ecgstudy.data.store.Store`, or a ``records.parquet`` table with ``y_<CODE>`` columns.
    task : one of :data:`TASKS`
    min_positives : int
        Smallest number of positive records (among ``within``) for a label to be kept.
    vocabulary : Vocabulary, optional
        Statement flags and classes; default: the store's ``meta["label_info"]``, else the bundled
        PTB-XL table.
    within : bool mask of shape (N,) or integer indices, optional
        Rows whose positives are counted (e.g. the training split); default all rows.
    """
    if task not in TASKS:
        raise ValueError(f"unknown label task {task!r}; valid tasks: {list(TASKS)}")
    records = getattr(store_or_records, "records", store_or_records)
    if not isinstance(records, pd.DataFrame):
        raise TypeError(f"task_labels expects a Store or a records DataFrame, got {type(store_or_records).__name__}")
    if task in TARGET_TASKS:
        return _target_labels(records, task, min_positives, within)
    if vocabulary is None:
        meta = getattr(store_or_records, "meta", None)
        vocabulary = Vocabulary.from_label_info(meta["label_info"]) if meta else load_vocabulary()
    columns = [c for c in records.columns if c.startswith(LABEL_PREFIX)]
    codes = [c[len(LABEL_PREFIX):] for c in columns]
    missing = [c for c in codes if c not in vocabulary]
    if missing:
        raise LabelError(f"label column(s) {[LABEL_PREFIX + c for c in missing]} not in the vocabulary")
    names, matrix = task_matrix(records[columns].to_numpy(), codes, vocabulary, task)
    counted = np.ones(len(records), bool)
    if within is not None:
        within = np.asarray(within)
        counted = within if within.dtype == bool else np.isin(np.arange(len(records)), within)
        if counted.shape != (len(records),):
            raise ValueError(f"within: expected a mask of shape ({len(records)},), got {counted.shape}")
    counts = matrix[counted].sum(axis=0)
    chosen = counts >= min_positives
    names = [n for n, c in zip(names, chosen) if c]
    y = matrix[:, chosen].astype(np.float32)
    keep = y.any(axis=1)
    return TaskLabels(task=task, names=names, keep=keep, y=y, counts=counts[chosen])


def _target_labels(records: pd.DataFrame, task: str, min_positives: int, within) -> TaskLabels:
    """The one binary label of a target task (:data:`TARGET_TASKS`): every record with a value is kept."""
    name, column = TARGET_TASKS[task]
    if column not in records.columns:
        raise LabelError(
            f"task {task!r} needs the column {column!r} in records.parquet (the simulator's ground truth; "
            "a real dataset without left-ventricular function cannot serve it)"
        )
    values = pd.to_numeric(records[column], errors="coerce").to_numpy(dtype=float)
    if not np.isin(values[np.isfinite(values)], (0.0, 1.0)).all():
        raise LabelError(f"column {column!r} must hold 0/1 (or missing) values for task {task!r}")
    counted = np.ones(len(records), bool)
    if within is not None:
        within = np.asarray(within)
        counted = within if within.dtype == bool else np.isin(np.arange(len(records)), within)
    y = np.nan_to_num(values, nan=0.0).astype(np.float32)[:, None]
    counts = y[counted & np.isfinite(values)].sum(axis=0).astype(np.int64)
    if counts[0] < min_positives:
        return TaskLabels(task=task, names=[], keep=np.zeros(len(records), bool), y=y[:, :0], counts=counts[:0])
    return TaskLabels(task=task, names=[name], keep=np.isfinite(values), y=y, counts=counts)
