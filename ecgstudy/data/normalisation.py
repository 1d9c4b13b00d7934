"""Dataset-level normalisation statistics: fitted once on a training split, stored with the store.

The default normalisation (``dataset_per_lead_zscore``, :func:`ecgstudy.data.preprocess.normalise`)
subtracts each lead's mean and divides by its standard deviation, both fitted on the training split of
one corpus, so a record's absolute voltage survives (low voltage, voltage criteria of LVH). The PTB-XL
benchmark does the same with one mean and standard deviation over every lead and sample of its training
set (``dataset_zscore``; Strodthoff et al. 2021).

Which training split: the encoder's. The curate stage fits the statistics on the foundation corpus's
train split (the corpus every encoder is pretrained on) and writes them into every store it curates
(``meta.json`` ``preprocessing.stats``), so scratch, random-init and pretrained arms downstream all use the
same numbers ("random init with the same normalisation statistics"); each checkpoint carries them in its
preprocessing spec, and :func:`ecgstudy.models.checkpoint.check_preprocessing` refuses a store whose
statistics differ. A store curated on its own fits them on its own train split (:func:`fit_stats`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ecgstudy.data.preprocess import STD_FLOOR_MV

#: Records read per block while fitting (bounds memory: block x 12 x T float32).
BLOCK = 256


def fit_stats(signals: np.ndarray, lead_mask: np.ndarray, rows: np.ndarray, fitted_on: str) -> dict[str, Any]:
    """Per-lead and global mean and standard deviation (mV) of ``signals[rows]``, present leads only.

    Parameters
    ----------
    signals : (N, 12, T) float32 mV (a memory map is read block by block); NaN samples are ignored.
    lead_mask : (N, 12) bool, True where the lead is present.
    rows : the records to fit on (e.g. the train split's row indices).
    fitted_on : where the numbers come from, e.g. ``"foundation:train"`` (kept with them).

    Returns
    -------
    ``{"fitted_on", "n_records", "mean": [12], "std": [12], "global_mean", "global_std"}``; a lead
    never present gets mean 0 and std 1; standard deviations are floored at 1 uV.
    """
    n_leads = signals.shape[1]
    count = np.zeros(n_leads)
    total = np.zeros(n_leads)
    squares = np.zeros(n_leads)
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), BLOCK):
        idx = rows[start : start + BLOCK]
        x = np.asarray(signals[idx], dtype=np.float64)  # (b, 12, T)
        x[~np.asarray(lead_mask[idx], bool)] = np.nan
        valid = ~np.isnan(x)
        count += valid.sum(axis=(0, 2))
        total += np.where(valid, x, 0.0).sum(axis=(0, 2))
        squares += np.where(valid, x * x, 0.0).sum(axis=(0, 2))
    seen = count > 0
    mean = np.where(seen, total / np.maximum(count, 1), 0.0)
    var = np.where(seen, squares / np.maximum(count, 1) - mean**2, 1.0)
    std = np.maximum(np.sqrt(np.maximum(var, 0.0)), STD_FLOOR_MV)
    n = max(float(count.sum()), 1.0)
    g_mean = float(total.sum() / n)
    g_std = max(float(np.sqrt(max(squares.sum() / n - g_mean**2, 0.0))), STD_FLOOR_MV)
    return {
        "fitted_on": fitted_on,
        "n_records": int(len(rows)),
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "global_mean": round(g_mean, 6),
        "global_std": round(g_std, 6),
    }


def fit_store_stats(store_dir: str | Path, split: str = "train", name: str | None = None) -> dict[str, Any]:
    """:func:`fit_stats` on one split of a written store (all records when the split is empty)."""
    import pandas as pd

    store_dir = Path(store_dir)
    splits = pd.read_parquet(store_dir / "records.parquet", columns=["split"])["split"].to_numpy()
    rows = np.flatnonzero(splits == split)
    where = f"{name or store_dir.name}:{split}"
    if rows.size == 0:
        rows, where = np.arange(len(splits)), f"{name or store_dir.name}:all"
    signals = np.load(store_dir / "signals.npy", mmap_mode="r")
    return fit_stats(signals, np.load(store_dir / "lead_mask.npy"), rows, where)


def attach_stats(store_dir: str | Path, stats: dict[str, Any]) -> None:
    """Write ``stats`` into a store's ``meta.json`` (``preprocessing.stats``), atomically."""
    meta_file = Path(store_dir) / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta.setdefault("preprocessing", {})["stats"] = stats
    tmp = meta_file.with_name(f".{meta_file.name}.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, meta_file)
