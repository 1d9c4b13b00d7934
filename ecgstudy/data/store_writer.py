"""Writing a curated store safely: an all-or-nothing folder and a streaming signals.npy.

- :func:`atomic_folder` yields a temporary sibling folder and renames it to the target only when the
  block completes, so a crash or interruption never leaves a complete-looking store; the previous
  store stays in place until the new one is ready, and leftovers of dead runs are removed.
- :class:`SignalWriter` appends harmonised records to a memory-mapped ``signals.npy`` (opened with
  :func:`numpy.lib.format.open_memmap`), reopening the map per block so resident memory does not
  grow with the number of records, and cuts the file to the records actually kept.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: Files of a complete store (meta.json is written last).
STORE_FILES = ("signals.npy", "lead_mask.npy", "records.parquet", "excluded.parquet", "meta.json")


def _partial_dir(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"


def _clean_stale(out_dir: Path) -> None:
    """Remove partial folders of earlier runs for ``out_dir`` whose process is gone."""
    for stale in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        try:
            os.kill(int(stale.name.rsplit("-", 1)[1]), 0)
            alive = True
        except (ValueError, ProcessLookupError):
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(stale, ignore_errors=True)


def check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a non-empty folder that is not a store (never delete unrelated data)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"{out_dir} exists and is not a folder")
        entries = {p.name for p in out_dir.iterdir()}
        if entries and not entries & set(STORE_FILES):
            raise FileExistsError(f"{out_dir} is a non-empty folder that is not a curated store; not replacing it")


@contextmanager
def atomic_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder that replaces ``out_dir`` when the ``with`` block succeeds.

    On any exception (KeyboardInterrupt included) the temporary folder is deleted and ``out_dir``,
    old store or nothing, is left as it was.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(out_dir)
    _clean_stale(out_dir)
    tmp = _partial_dir(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def shrink_npy(path: str | Path, n_rows: int) -> None:
    """Cut a C-order .npy file to its first ``n_rows`` rows in place (header rewritten, same length)."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
        if fortran or not 0 <= n_rows <= shape[0]:
            raise ValueError(f"{path}: cannot cut an array of shape {shape} to {n_rows} rows")
        new_shape = (n_rows, *shape[1:])
        header = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": new_shape})
        prefix = 10 if version == (1, 0) else 12
        text = header.ljust(offset - prefix - 1) + "\n"
        if len(text) != offset - prefix:
            raise RuntimeError(f"{path}: cannot rewrite the .npy header in place")
        f.seek(prefix)
        f.write(text.encode("latin1"))
        f.truncate(offset + int(np.prod(new_shape)) * dtype.itemsize)


class SignalWriter:
    """Streams records into ``<folder>/signals.npy`` and ``<folder>/lead_mask.npy``.

    Parameters
    ----------
    folder : the (temporary) store folder
    capacity : records expected (the file grows when more come, as under the ``windows`` length policy,
        and is cut to the real count by :meth:`close`)
    n_leads, n_samples : shape of one record (float32 (n_leads, n_samples))
    """

    def __init__(self, folder: Path, capacity: int, n_leads: int, n_samples: int):
        self.path = Path(folder) / "signals.npy"
        self.mask_path = Path(folder) / "lead_mask.npy"
        self.capacity = max(1, capacity)
        self.shape = (n_leads, n_samples)
        np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=(self.capacity, *self.shape)).flush()
        self.masks = np.zeros((capacity, n_leads), dtype=bool)  # 12 bytes per record
        self.n = 0

    def append(self, signals: np.ndarray, masks: np.ndarray) -> None:
        """Write a block: ``signals`` float32 (k, n_leads, n_samples) in mV, ``masks`` bool (k, n_leads)."""
        k = len(signals)
        if self.n + k > self.capacity:
            self._grow(max(2 * self.capacity, self.n + k))
        mapped = np.lib.format.open_memmap(self.path, mode="r+")  # reopened per block: flat resident memory
        mapped[self.n : self.n + k] = signals
        mapped.flush()
        del mapped
        self.masks[self.n : self.n + k] = masks
        self.n += k

    def _grow(self, capacity: int, block: int = 256) -> None:
        """Reallocate signals.npy for ``capacity`` records, copying the rows written in blocks (flat memory)."""
        bigger = self.path.with_name(self.path.name + ".grow")
        new = np.lib.format.open_memmap(bigger, mode="w+", dtype=np.float32, shape=(capacity, *self.shape))
        old = np.load(self.path, mmap_mode="r")
        for start in range(0, self.n, block):
            new[start : start + block] = old[start : min(self.n, start + block)]
        new.flush()
        del new, old
        os.replace(bigger, self.path)
        self.masks = np.concatenate([self.masks, np.zeros((capacity - self.capacity, self.shape[0]), bool)])
        self.capacity = capacity

    def close(self) -> int:
        """Cut signals.npy to the records written, save lead_mask.npy; returns the record count."""
        if self.n < self.capacity:
            shrink_npy(self.path, self.n)
        np.save(self.mask_path, self.masks[: self.n])
        return self.n
