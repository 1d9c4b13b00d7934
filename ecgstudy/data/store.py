"""Reading a curated store (the curated-store contract of docs/architecture.md) and serving it to torch.

:class:`Store` opens the store's tables and memory-maps ``signals.npy`` (N, 12, T) float32 in mV;
:class:`ECGDataset` yields normalised, optionally cropped items for training and evaluation, and
:class:`WindowedDataset` every sliding window of them (sliding-window evaluation). The
store itself is plain numpy + pandas files; this module is a convenience, not a requirement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ecgstudy.data.labels import LABEL_PREFIX, TaskLabels
from ecgstudy.data.preprocess import DATASET_NORMALISATIONS, NORMALISATIONS, normalise as normalise_signal


class StoreError(ValueError):
    """A missing, incomplete or inconsistent store: names the folder and the problem."""


class Store:
    """A curated store.

    Attributes
    ----------
    path : the store folder
    records : DataFrame, one row per record (row i <-> ``signals[i]``)
    meta : dict from meta.json (fs, n_samples, leads, labels, label_info, preprocessing, ...)
    lead_mask : bool array (N, 12), True where the lead is present
    signals : read-only np.memmap (N, 12, T) float32, mV, at ``fs`` Hz, missing leads NaN (opened lazily)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise StoreError(f"curated store not found: {self.path}")
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise StoreError(f"{self.path}: no meta.json; not a complete curated store (rerun curation)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        for name in ("signals.npy", "lead_mask.npy", "records.parquet"):
            if not (self.path / name).is_file():
                raise StoreError(f"{self.path}: missing {name}")
        self.records: pd.DataFrame = pd.read_parquet(self.path / "records.parquet")
        self.lead_mask: np.ndarray = np.load(self.path / "lead_mask.npy")
        self._signals: np.memmap | None = None
        n, t = len(self.records), int(self.meta["n_samples"])
        shape = self.signals.shape
        if shape != (n, len(self.meta["leads"]), t) or self.lead_mask.shape != (n, len(self.meta["leads"])):
            raise StoreError(
                f"{self.path}: inconsistent store: signals {shape}, lead_mask {self.lead_mask.shape}, "
                f"{n} records, meta n_samples {t}"
            )
        missing = [c for c in self.labels if LABEL_PREFIX + c not in self.records.columns]
        if missing:
            raise StoreError(f"{self.path}: records.parquet lacks label column(s) {missing[:10]}")

    @property
    def signals(self) -> np.memmap:
        if self._signals is None:
            self._signals = np.load(self.path / "signals.npy", mmap_mode="r")
        return self._signals

    def __getstate__(self) -> dict[str, Any]:
        # worker processes reopen the memory map instead of receiving a copy of the signals
        state = dict(self.__dict__)
        state["_signals"] = None
        return state

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, n={len(self)}, fs={self.fs}, T={self.n_samples}, labels={len(self.labels)})"

    @property
    def fs(self) -> float:
        """Sampling rate of the stored signals (Hz)."""
        return self.meta["fs"]

    @property
    def n_samples(self) -> int:
        return int(self.meta["n_samples"])

    @property
    def role(self) -> str | None:
        """What the study may do with the store (meta.json ``role``): ``foundation`` (pretraining reads only
        such a store) or ``downstream``; None for a store written before roles existed."""
        return self.meta.get("role")

    @property
    def normalisation_stats(self) -> dict[str, Any] | None:
        """The training-split statistics of the ``dataset_*`` normalisations (meta.json ``preprocessing.stats``)."""
        return (self.meta.get("preprocessing") or {}).get("stats")

    @property
    def leads(self) -> list[str]:
        return list(self.meta["leads"])

    @property
    def labels(self) -> list[str]:
        """Statement codes of the ``y_`` columns, in order."""
        return list(self.meta["labels"])

    def label_matrix(self, codes: Sequence[str] | None = None) -> np.ndarray:
        """0/1 float32 array (N, L) of ``codes`` (default: all :attr:`labels`)."""
        codes = self.labels if codes is None else list(codes)
        unknown = [c for c in codes if LABEL_PREFIX + c not in self.records.columns]
        if unknown:
            raise KeyError(f"{self.path}: unknown label(s) {unknown}; the store has {self.labels}")
        return self.records[[LABEL_PREFIX + c for c in codes]].to_numpy(dtype=np.float32)

    def indices(self, split: str | Sequence[str]) -> np.ndarray:
        """Row indices (int64, ascending) of the records in ``split`` (a name or a list of names)."""
        splits = [split] if isinstance(split, str) else list(split)
        unknown = sorted(set(splits) - {"train", "val", "test", "external"})
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; valid: train, val, test, external")
        return np.flatnonzero(self.records["split"].isin(splits).to_numpy()).astype(np.int64)

    def excluded(self) -> pd.DataFrame:
        """excluded.parquet: record_id, reason, detail, action (excluded | flagged)."""
        return pd.read_parquet(self.path / "excluded.parquet")

    def signature_masks(self) -> pd.DataFrame | None:
        """signature_masks.parquet (record_id, code, lead, start_s, end_s), or None when absent."""
        path = self.path / "signature_masks.parquet"
        return pd.read_parquet(path) if path.is_file() else None


class ECGDataset(Dataset):
    """Items of a store for torch.

    Parameters
    ----------
    store : Store
    indices : store rows served, in order (int array)
    labels : targets: None (all store labels), a list of statement codes, a
        :class:`~ecgstudy.data.labels.TaskLabels`, or a float array (N_store, L) aligned with store rows
    crop : window length in samples (None: the whole record)
    random_crop : draw the window start at random (seeded by ``seed``, the epoch and the row);
        otherwise the centred window
    seed : seed of the random crops
    normalise : a :data:`~ecgstudy.data.preprocess.NORMALISATIONS` name; None = the store's
        ``meta["preprocessing"]["normalise"]``. The ``dataset_*`` ones use the store's fitted statistics
        (``meta["preprocessing"]["stats"]``: the pretraining corpus's train split, see
        :mod:`ecgstudy.data.normalisation`)

    Items are dicts: ``x`` float32 tensor (12, crop) normalised with missing leads zero-filled,
    ``lead_mask`` bool tensor (12,), ``y`` float32 tensor (L,), ``index`` (int, the store row).
    """

    def __init__(
        self,
        store: Store,
        indices: Sequence[int] | np.ndarray,
        labels: Sequence[str] | TaskLabels | np.ndarray | None = None,
        crop: int | None = None,
        random_crop: bool = False,
        seed: int = 0,
        normalise: str | None = None,
    ):
        self.store = store
        self.rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.rows.size and (self.rows.min() < 0 or self.rows.max() >= len(store)):
            raise IndexError(f"indices out of range for a store of {len(store)} records")
        if isinstance(labels, TaskLabels):
            matrix, self.label_names = labels.y, list(labels.names)
        elif isinstance(labels, np.ndarray):
            matrix, self.label_names = labels, None
        else:
            self.label_names = store.labels if labels is None else list(labels)
            matrix = store.label_matrix(self.label_names)
        if matrix.ndim != 2 or matrix.shape[0] != len(store):
            raise ValueError(f"label matrix must have shape ({len(store)}, L), got {matrix.shape}")
        self.y = np.ascontiguousarray(matrix[self.rows], dtype=np.float32)  # (n, L)
        t = store.n_samples
        self.crop = t if crop is None else int(crop)
        if not 0 < self.crop <= t:
            raise ValueError(f"crop must be in 1..{t} samples, got {crop}")
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0
        self.normalise = normalise or store.meta.get("preprocessing", {}).get("normalise", "none")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {self.normalise!r}; valid: {list(NORMALISATIONS)}")
        self.stats = store.normalisation_stats
        if self.normalise in DATASET_NORMALISATIONS and not self.stats:
            raise StoreError(f"{store.path}: normalisation {self.normalise!r} needs the training-split statistics "
                             "(meta.json preprocessing.stats), which this store lacks; curate it again")

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops (same seed + epoch + row -> same crop, whatever the worker)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def crop_start(self, i: int) -> int:
        """First sample of item ``i``'s window."""
        spare = self.store.n_samples - self.crop
        if spare == 0:
            return 0
        if self.random_crop:
            rng = np.random.default_rng([self.seed, self.epoch, int(self.rows[i])])
            return int(rng.integers(0, spare + 1))
        return spare // 2

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.item(i, self.crop_start(i), self.crop)

    def item(self, i: int, start: int, length: int) -> dict[str, Any]:
        """Item ``i`` with its window set by hand: samples ``start:start + length``, normalised on their own."""
        row = int(self.rows[i])
        x = np.asarray(self.store.signals[row, :, start : start + length], dtype=np.float32)  # (12, length)
        mask = self.store.lead_mask[row]
        x = normalise_signal(x, self.normalise, mask, self.stats)
        return {
            "x": torch.from_numpy(x),
            "lead_mask": torch.from_numpy(mask.copy()),
            "y": torch.from_numpy(self.y[i]),
            "index": row,
        }


def window_starts(n_samples: int, window: int, stride: int) -> np.ndarray:
    """First samples (int64, ascending) of the sliding windows over a record of ``n_samples``.

    Windows lie wholly inside the record: starts 0, stride, 2 stride, ... up to ``n_samples - window``
    (the PTB-XL benchmark's rule); a tail shorter than a stride after the last window is not covered.
    A 10 s record at 100 Hz with 2.5 s windows every 1.25 s gives 7 windows that tile it exactly.

    Raises ValueError when the record is shorter than one window or a length is not positive.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1 sample, got window={window}, stride={stride}")
    if window > n_samples:
        raise ValueError(f"a window of {window} samples is longer than the records ({n_samples} samples)")
    return np.arange(0, n_samples - window + 1, stride, dtype=np.int64)


class WindowedDataset(Dataset):
    """Every sliding window of every record of a whole-record :class:`ECGDataset`.

    Item ``k`` is window ``k % W`` of record ``k // W`` (``W`` = ``len(starts)``, see :func:`window_starts`),
    an :class:`ECGDataset` item whose ``x`` (12, window) is normalised on its own, as a training crop is,
    plus ``window`` (the window's position). Records come in the base dataset's order, windows in time order.
    """

    def __init__(self, base: ECGDataset, window: int, stride: int):
        if base.crop != base.store.n_samples:
            raise ValueError(f"the base dataset must serve whole records ({base.store.n_samples} samples), "
                             f"not crops of {base.crop}")
        self.base = base
        self.window = int(window)
        self.starts = window_starts(base.store.n_samples, self.window, int(stride))

    def __len__(self) -> int:
        return len(self.base) * len(self.starts)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i, w = divmod(int(k), len(self.starts))
        return {**self.base.item(i, int(self.starts[w]), self.window), "window": w}
