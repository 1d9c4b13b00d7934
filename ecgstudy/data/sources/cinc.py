"""Reader of PhysioNet/CinC Challenge 2020-2021 WFDB folders (SNOMED CT labels -> study SCP statements).

Layout read (``root``): one or more dataset folders, records at any depth below them, e.g. the 2021
training set::

    cpsc_2018/g1/A0001.hea     header: 12 signal lines (``A0001.mat 16+24 1000/mV 16 0 28 -1716 0 I``)
    cpsc_2018/g1/A0001.mat     signals: a MATLAB v4 int16 matrix ``val`` (12, n_samples)
    cpsc_2018_extra/ georgia/ chapman_shaoxing/ ningbo/ ptb/ st_petersburg_incart/ ...

Plain format-16 ``.dat`` records are read too. Rates differ by dataset (257 Hz INCART, 500 Hz most,
1000 Hz PTB) and so do lengths (6 s to 30 min); curation resamples and crops or pads to the store's.
Header comments give the metadata::

    #Age: 74            (``NaN`` / ``Unknown`` -> NaN)
    #Sex: Male          (Male / Female / M / F -> 0 / 1 as in PTB-XL; anything else NaN)
    #Dx: 164889003,59118001
    #Rx: Unknown  #Hx: Unknown  #Sx: Unknown   (ignored)

- Record id: the relative path without extension (``cpsc_2018/g1/A0001``), so equal record names in
  two datasets stay apart; a true duplicate id is an error (:mod:`ecgstudy.data.sources.wfdb_folder`).
- Patient id: the challenge publishes none, so each record is its own patient (unless an optional
  ``patients.csv`` says otherwise). Some datasets (CPSC-extra, Ningbo) may hold several records of one
  patient; a split by record is the best the data allow.
- Site: the top-level folder under ``root`` (the dataset of origin; the root's own name for records
  directly in it), usable as ``curate.external_sites``.
- Labels: the ``#Dx`` concepts mapped to the study's SCP-ECG vocabulary by :mod:`ecgstudy.data.vocab_map`
  (likelihood 1.0). Concepts without a mapping give no label and are listed in the ``unmapped_dx``
  column; ``dx_snomed`` keeps every concept. A missing or malformed ``#Dx`` (an item that is not a
  concept id) raises :class:`~ecgstudy.data.labels.LabelError`, so curation excludes the record (``bad_labels``).

PTB-XL is part of the 2021 challenge data as well; a PTB-XL folder found here is read like the
others but logged, since its records are the study's own PTB-XL records.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ecgstudy.data.labels import LabelError
from ecgstudy.data.sources.wfdb_folder import WFDBFolderSource
from ecgstudy.data.vocab_map import load_scp_snomed, snomed_to_scp

log = logging.getLogger(__name__)

_PTBXL_NAME = re.compile(r"ptb.?xl", re.IGNORECASE)


def split_dx(cell: Any, record_id: str) -> list[str]:
    """Items of a ``#Dx`` value (``"164889003,59118001"``); raises LabelError naming the record.

    An absent line (None / NaN) or one without any item is an error; empty items (a trailing comma)
    are dropped. Items are not checked here (see :func:`ecgstudy.data.vocab_map.snomed_to_scp`).
    """
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        raise LabelError(f"record {record_id}: its header has no #Dx line")
    items = [item.strip() for item in str(cell).split(",") if item.strip()]
    if not items:
        raise LabelError(f"record {record_id}: empty #Dx line")
    return items


class CinCSource(WFDBFolderSource):
    """PhysioNet/CinC 2020-2021 challenge data (see module docstring).

    Parameters
    ----------
    root : folder holding the dataset folders (or a single dataset folder)
    target_fs, resolution : harmonisation hints that curation passes to every reader; unused here
    verify_checksums : check the WFDB signal checksums the headers give (catches corrupt files)
    """

    name = "cinc"

    def __init__(
        self,
        root: str | Path,
        target_fs: float | None = None,
        resolution: str = "auto",
        verify_checksums: bool = True,
    ):
        super().__init__(root, target_fs=target_fs, resolution=resolution, verify_checksums=verify_checksums)
        ptbxl = sorted({s for s in map(self._site, self._ids) if _PTBXL_NAME.search(s)})
        if ptbxl:
            log.warning("%s holds PTB-XL (%s): these are the study's own PTB-XL records", self.root, ptbxl)

    def _site(self, record_id: str) -> str:
        """Top-level folder of the record (its dataset); the root's name for records directly in it."""
        folder, sep, _ = record_id.partition("/")
        return folder if sep else self.root.resolve().name

    def _build_catalog(self) -> pd.DataFrame:
        out = super()._build_catalog()
        cells = [info.comments.get("dx") for info in self._infos]
        items, unmapped = [], []
        for record_id, cell in zip(self._ids, cells):
            try:
                dx = split_dx(cell, record_id)
                missing = snomed_to_scp(dx, record_id)[1]
            except LabelError:  # reported when the labels are parsed; the catalog lists every record
                dx, missing = ([] if cell is None else [str(cell).strip()]), []
            items.append(",".join(dx))
            unmapped.append(",".join(missing))
        out["codes"] = cells
        out["dx_snomed"] = items
        out["unmapped_dx"] = unmapped
        known = set(load_scp_snomed()["snomed_ct"])
        unknown = sorted({c for u in unmapped for c in u.split(",") if c and c not in known})
        if unknown:
            log.warning("%s: %d SNOMED CT concept(s) absent from the mapping table give no label: %s",
                        self.root, len(unknown), unknown[:20])
        return out

    def parse_codes(self, cell: Any, record_id: str) -> dict[str, float]:
        return snomed_to_scp(split_dx(cell, record_id), record_id)[0]
