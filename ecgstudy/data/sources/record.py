"""The record structure every dataset reader yields, and the reader interface.

A reader (one module per format under :mod:`ecgstudy.data.sources`) exposes a *catalog* (one row per
record: ids, labels and metadata, all known without touching signal files) and reads signals one
record at a time, so curation can stream, parallelise and exclude bad records without crashing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.labels import Vocabulary


class RecordReadError(Exception):
    """A bad record (missing, truncated or corrupt file, ...): becomes an ``excluded.parquet`` row.

    Parameters
    ----------
    reason : short machine-readable reason (``missing_file``, ``truncated_data``, ...)
    detail : human-readable detail naming the file
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RawSignal:
    """A record's signal as stored by its source.

    Attributes
    ----------
    data : float64 array of shape (n_leads, n_samples) in ``units`` at ``fs`` Hz (NaN = invalid sample)
    fs : sampling rate in Hz
    leads : lead names as the source spells them (``AVR``, ``aVR``, ``avr`` ...)
    units : physical unit per lead (``mV``, ``uV``, ...)
    """

    data: np.ndarray
    fs: float
    leads: tuple[str, ...]
    units: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.data.shape[1] / self.fs if self.fs > 0 else 0.0


@dataclass(frozen=True)
class Record:
    """One recording with its labels and metadata (what :meth:`Source.records` yields).

    Attributes
    ----------
    record_id : unique id within the source (str)
    patient_id : patient id (str); splits never separate a patient's records
    signal : the raw signal (:class:`RawSignal`)
    codes : ``{statement code: likelihood}`` in the source's vocabulary
    meta : other catalog columns (age, sex, site, device, strat_fold, ...)
    """

    record_id: str
    patient_id: str
    signal: RawSignal
    codes: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadFailure:
    """A record that could not be read: yielded by :meth:`Source.records` instead of a Record."""

    record_id: str
    reason: str
    detail: str


class Source(ABC):
    """A dataset reader.

    Subclasses set :attr:`name` and implement :meth:`catalog`, :meth:`read_signal` and
    :meth:`parse_codes`; they must be picklable (curation sends them to worker processes).
    """

    #: short name of the format (``ptbxl``)
    name: str = ""
    #: the dataset's folder
    root: Path
    #: statement vocabulary of the labels in :meth:`parse_codes`
    vocabulary: Vocabulary

    @abstractmethod
    def catalog(self) -> pd.DataFrame:
        """One row per record, in a deterministic order.

        Columns: ``record_id`` (str, unique), ``patient_id`` (str), ``codes`` (the raw label cell, parsed
        by :meth:`parse_codes`), and whatever metadata the source has (``age``, ``sex``, ``site``,
        ``device``, ``strat_fold``, ``case_control_set``, ...). The frame's positional index is the
        ``position`` argument of :meth:`read_signal`.
        """

    @abstractmethod
    def read_signal(self, position: int) -> RawSignal:
        """Read the signal of catalog row ``position``; raises :class:`RecordReadError` for bad records."""

    @abstractmethod
    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        """Labels of one catalog ``codes`` cell; raises :class:`ecgstudy.data.labels.LabelError` if malformed."""

    def ground_truth(self) -> pd.DataFrame | None:
        """Simulator ground truth: ``record_id`` + ``gt_*`` columns, or None when the source has none."""
        return None

    def declared_external_sites(self) -> list[str] | None:
        """Sites the dataset itself declares external (the simulator's), as strings; None if it declares none."""
        return None

    def signature_masks(self) -> pd.DataFrame | None:
        """Simulator signature masks (``record_id, code, lead, start_s, end_s``), or None."""
        return None

    def records(self) -> Iterator[Record | ReadFailure]:
        """Yield every record in catalog order (sequential; curation uses the parts directly)."""
        catalog = self.catalog()
        meta_columns = [c for c in catalog.columns if c not in ("record_id", "patient_id", "codes")]
        for position, row in enumerate(catalog.itertuples(index=False)):
            row = row._asdict()
            try:
                signal = self.read_signal(position)
            except RecordReadError as exc:
                yield ReadFailure(row["record_id"], exc.reason, exc.detail)
                continue
            yield Record(
                record_id=row["record_id"],
                patient_id=row["patient_id"],
                signal=signal,
                codes=self.parse_codes(row["codes"], row["record_id"]),
                meta={c: row[c] for c in meta_columns},
            )
