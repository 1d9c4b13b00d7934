"""Dataset readers, one module per format, all yielding :class:`~ecgstudy.data.sources.record.Record`.

:func:`open_source` picks a reader by format name (``params.yaml``: ``data.source``; the CLI's
``--source``). Readers are imported lazily, so importing this package is cheap and side-effect free.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ecgstudy.data.sources.record import RawSignal, ReadFailure, Record, RecordReadError, Source

#: format name -> "module:Class" of its reader. ``simulated`` is the built-in cohort, written by the
#: simulator in PTB-XL format and therefore read by the PTB-XL reader.
READERS: dict[str, str] = {
    "ptbxl": "ecgstudy.data.sources.ptbxl:PTBXLSource",
    "simulated": "ecgstudy.data.sources.ptbxl:PTBXLSource",
    "cinc": "ecgstudy.data.sources.cinc:CinCSource",
    "wfdb": "ecgstudy.data.sources.wfdb_folder:WFDBFolderSource",
    "code15": "ecgstudy.data.sources.code15:Code15Source",
    "mimic": "ecgstudy.data.sources.mimic:MimicSource",
}

__all__ = ["READERS", "RawSignal", "ReadFailure", "Record", "RecordReadError", "Source", "open_source"]


def open_source(name: str, root: str | Path, **options: Any) -> Source:
    """Open dataset ``root`` with the reader of format ``name``.

    Parameters
    ----------
    name : a key of :data:`READERS`
    root : the dataset's folder
    options : reader options (e.g. ``target_fs``, ``resolution`` for PTB-XL)
    """
    if name not in READERS:
        raise ValueError(f"unknown data source {name!r}; valid sources: {sorted(READERS)}")
    module, cls = READERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(root, **options)
