"""Several datasets of one format read as one: how a store is curated from more than one folder.

The study's ``main`` store holds the downstream dataset and the external hospital's dataset (split
``external``); each is its own folder. :class:`CombinedSource` chains their readers: the catalog is the
catalogs one after another (with a ``corpus`` column naming the folder), record and patient ids must be
unique across them (an id in two folders fails, naming it and the folders), and the vocabularies must
agree.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ecgstudy.data.sources.record import RawSignal, Source


class CombinedSource(Source):
    """The records of ``sources`` (readers of one format) in order, as one dataset.

    Parameters
    ----------
    sources : opened readers; their roots' names become the ``corpus`` column.
    """

    name = "combined"

    def __init__(self, sources: Sequence[Source]):
        if not sources:
            raise ValueError("CombinedSource needs at least one source")
        self.sources = list(sources)
        roots = [s.root for s in self.sources]
        self.root = Path(roots[0]).parent if len(roots) > 1 else Path(roots[0])
        self.vocabulary = self.sources[0].vocabulary
        for s in self.sources[1:]:
            if s.vocabulary.codes != self.vocabulary.codes:
                raise ValueError(f"{s.root}: its label vocabulary differs from {roots[0]}'s; a store has one vocabulary")
        parts = []
        for s in self.sources:
            part = s.catalog().copy()
            part["corpus"] = Path(s.root).name
            parts.append(part)
        catalog = pd.concat(parts, ignore_index=True)
        dups = catalog.loc[catalog["record_id"].duplicated(keep=False)]
        if len(dups):
            raise ValueError(f"record id(s) {sorted(set(dups['record_id']))[:10]} occur more than once across "
                             f"{sorted(set(dups['corpus']))}")
        owners = catalog.groupby("patient_id")["corpus"].nunique()
        if (owners > 1).any():
            raise ValueError(f"patient(s) {list(owners.index[owners > 1][:10])} occur in more than one of "
                             f"{[Path(r).name for r in roots]}: datasets combined into one store must not share patients")
        self._catalog = catalog
        self._starts = [0]
        for part in parts[:-1]:
            self._starts.append(self._starts[-1] + len(part))

    def catalog(self) -> pd.DataFrame:
        return self._catalog

    def _locate(self, position: int) -> tuple[Source, int]:
        k = bisect.bisect_right(self._starts, position) - 1
        return self.sources[k], position - self._starts[k]

    def read_signal(self, position: int) -> RawSignal:
        source, local = self._locate(position)
        return source.read_signal(local)

    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        return self.sources[0].parse_codes(cell, record_id)

    def ground_truth(self) -> pd.DataFrame | None:
        parts = [t for t in (s.ground_truth() for s in self.sources) if t is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    def declared_external_sites(self) -> list[str] | None:
        parts = [d for d in (s.declared_external_sites() for s in self.sources) if d is not None]
        return sorted({site for d in parts for site in d}) if parts else None

    def signature_masks(self) -> pd.DataFrame | None:
        parts = [m for m in (s.signature_masks() for s in self.sources) if m is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    @property
    def resolution(self) -> str | None:
        return getattr(self.sources[0], "resolution", None)
