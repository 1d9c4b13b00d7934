"""SNOMED CT diagnoses of the PhysioNet/CinC 2020-2021 challenge <-> SCP-ECG statements of the study.

The study's label vocabulary is PTB-XL's SCP-ECG statement table (71 codes, :mod:`ecgstudy.data.labels`).
The challenge datasets (CPSC 2018, CPSC-extra, Georgia, Chapman-Shaoxing, Ningbo, PTB, INCART) label
records with SNOMED CT concept ids instead. ``resources/scp_snomed.csv`` holds the bundled mapping,
one row per (SCP code, SNOMED concept) pair, written for this study from the meaning of each concept
and statement; columns:

=========== ===================================================================================
scp_code    SCP-ECG statement code of the study vocabulary; empty for a concept left unmapped
snomed_ct   SNOMED CT concept id (digits, as in the challenge headers' ``#Dx`` lines)
snomed_term short name of the concept
relation    ``exact``: same meaning
            ``scp_broader``: the statement is broader (every record with the concept has the statement,
            e.g. atrial tachycardia -> SVTAC supraventricular tachycardia)
            ``scp_narrower``: the statement is narrower; kept only where the datasets use the concept
            for the statement's finding (an unqualified RBBB read as complete RBBB, as the challenge
            scores it)
            ``none``: deliberately unmapped (no statement of the vocabulary means the same)
note        why, where the choice is not obvious
=========== ===================================================================================

Policy:

- Labels go one way, SNOMED -> SCP: a record's statements are the ``scp_code`` of the rows of its
  concepts (likelihood 1.0; the challenge gives none). A concept never implies a statement's parents
  or siblings (a PVC is not also PRC(S)), as in PTB-XL's own labelling.
- A concept is mapped only where it names the same finding as an SCP statement. Not mapped: QRS axis
  deviations (PTB-XL keeps the axis in its ``heart_axis`` column, not as statements), findings without
  the location or degree the statements need (MI without location, AV block of unstated degree),
  either-or concepts (non-specific ST-T abnormality), clinical diagnoses that an ECG need not show
  (chronic ischaemia, heart failure) and findings the vocabulary lacks (VT, early repolarisation, ...).
- No challenge concept means PTB-XL's NORM ("normal ECG"): sinus rhythm is a rhythm statement (SR) and
  many records with it have other findings, so challenge-derived stores have no NORM positives.
- Every concept of the challenge's scored and unscored diagnosis tables has exactly one status
  (mapped, or one ``none`` row), so any other code in a header is reported as unknown.

The table is validated when loaded: SCP codes in the study vocabulary, relations from the list above,
concept ids well formed (digits, concept partition, Verhoeff check digit), no duplicate pairs.
Sources are cited in ``resources/README.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ecgstudy.data.labels import LabelError, UnknownCodeError, Vocabulary, load_vocabulary
from ecgstudy.paths import resource

#: Bundled mapping table (``ecgstudy/data/resources``).
TABLE = "scp_snomed.csv"
#: Relations of mapping rows; all of them label records by default.
RELATIONS: tuple[str, ...] = ("exact", "scp_broader", "scp_narrower")
#: Relation of a concept deliberately left unmapped.
UNMAPPED = "none"
COLUMNS: tuple[str, ...] = ("scp_code", "snomed_ct", "snomed_term", "relation", "note")

# Verhoeff check digit tables (dihedral group D5): multiplication and position permutation.
_D5 = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_PERM = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def is_concept_id(text: str) -> bool:
    """Whether ``text`` is a well-formed SNOMED CT concept id.

    6-18 digits, no leading zero, partition digits ``00`` (core) or ``10`` (extension) before the
    last digit, and a valid Verhoeff check digit.
    """
    if not (text.isascii() and text.isdigit() and 6 <= len(text) <= 18 and text[0] != "0"):
        return False
    if text[-3:-1] not in ("00", "10"):
        return False
    check = 0
    for i, digit in enumerate(reversed(text)):
        check = _D5[check][_PERM[i % 8][int(digit)]]
    return check == 0


def load_scp_snomed(path: str | Path | None = None, vocabulary: Vocabulary | None = None) -> pd.DataFrame:
    """Read and validate a mapping table (default: the bundled ``scp_snomed.csv``).

    Parameters
    ----------
    path : a CSV with the columns of :data:`COLUMNS`
    vocabulary : statement vocabulary every ``scp_code`` must belong to (default: the study's,
        :func:`ecgstudy.data.labels.load_vocabulary`)

    Returns
    -------
    DataFrame with the :data:`COLUMNS`, all str (``""`` where empty), in file order. Raises
    ValueError naming the file and the offending rows.
    """
    path = Path(path) if path is not None else resource(TABLE)
    if not path.is_file():
        raise FileNotFoundError(f"SNOMED CT mapping table not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser error types
        raise ValueError(f"{path}: cannot read as CSV: {exc}") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; columns: {list(table.columns)}")
    table = table[list(COLUMNS)].apply(lambda col: col.str.strip())
    vocabulary = vocabulary if vocabulary is not None else load_vocabulary()
    line = table.index + 2  # file line of each row (header is line 1)

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            rows = [f"line {n}: {c!r} / {s}" for n, c, s in zip(line[mask], table["scp_code"][mask],
                                                                 table["snomed_ct"][mask])]
            raise ValueError(f"{path}: {what}: {rows[:10]}")

    fail(~table["relation"].isin([*RELATIONS, UNMAPPED]), f"relation must be one of {[*RELATIONS, UNMAPPED]}")
    mapped = table["relation"] != UNMAPPED
    fail(mapped & (table["scp_code"] == ""), "a mapping row without scp_code")
    fail(~mapped & (table["scp_code"] != ""), f"a '{UNMAPPED}' row with an scp_code")
    fail(mapped & ~table["scp_code"].map(lambda c: c in vocabulary), "scp_code not in the study vocabulary")
    fail(~table["snomed_ct"].map(is_concept_id), "not a valid SNOMED CT concept id")
    fail(table.duplicated(["scp_code", "snomed_ct"], keep=False), "duplicate (scp_code, snomed_ct) pair")
    both = set(table.loc[mapped, "snomed_ct"]) & set(table.loc[~mapped, "snomed_ct"])
    fail(table["snomed_ct"].isin(both) & ~mapped, f"concept both mapped and marked '{UNMAPPED}'")
    return table.reset_index(drop=True)


@functools.lru_cache(maxsize=1)
def _study_codes() -> frozenset[str]:
    return frozenset(load_vocabulary().codes)


@functools.lru_cache(maxsize=8)
def _lookup(relations: tuple[str, ...]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(concept -> SCP codes, SCP code -> concepts) of the bundled table's rows with ``relations``."""
    unknown = [r for r in relations if r not in RELATIONS]
    if unknown:
        raise ValueError(f"unknown relation(s) {unknown}; valid: {list(RELATIONS)}")
    table = load_scp_snomed()
    rows = table[table["relation"].isin(relations)]
    to_scp: dict[str, list[str]] = {}
    to_snomed: dict[str, list[str]] = {}
    for code, concept in zip(rows["scp_code"], rows["snomed_ct"]):
        to_scp.setdefault(concept, []).append(code)
        to_snomed.setdefault(code, []).append(concept)
    return ({k: tuple(v) for k, v in to_scp.items()}, {k: tuple(v) for k, v in to_snomed.items()})


def snomed_to_scp(
    codes: Iterable[str | int], record_id: str, relations: Iterable[str] = RELATIONS
) -> tuple[dict[str, float], list[str]]:
    """Study labels of one record's SNOMED CT concepts (bundled table).

    Parameters
    ----------
    codes : concept ids (``"164889003"`` or ``164889003``), e.g. a header's ``#Dx`` items
    record_id : named in errors
    relations : mapping rows used (default all of :data:`RELATIONS`; ``("exact",)`` for the strictest)

    Returns
    -------
    labels : ``{scp_code: 1.0}``
    unmapped : the record's concepts that gave no label (marked unmapped, or absent from the table),
        in input order without repeats

    Raises :class:`ecgstudy.data.labels.LabelError` naming the record for an item that is not a concept id
    (not all digits).
    """
    to_scp, _ = _lookup(tuple(relations))
    labels: dict[str, float] = {}
    unmapped: list[str] = []
    for code in codes:
        text = str(code).strip()
        if not (text.isascii() and text.isdigit()):
            raise LabelError(f"record {record_id}: {text!r} is not a SNOMED CT concept id")
        scp = to_scp.get(text, ())
        labels.update((c, 1.0) for c in scp)
        if not scp and text not in unmapped:
            unmapped.append(text)
    return labels, unmapped


def scp_to_snomed(code: str, relations: Iterable[str] = RELATIONS) -> list[str]:
    """SNOMED CT concepts whose records get statement ``code`` (table order; empty when none do).

    Raises :class:`ecgstudy.data.labels.UnknownCodeError` when ``code`` is not in the study vocabulary.
    """
    if code not in _study_codes():
        raise UnknownCodeError(f"{code!r} is not a statement code of the study vocabulary")
    _, to_snomed = _lookup(tuple(relations))
    return list(to_snomed.get(code, ()))
