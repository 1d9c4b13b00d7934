"""Writers of small WFDB records for the reader tests: format-16 ``.dat`` (wfdb.wrsamp) and the
PhysioNet/CinC challenge layout (a MATLAB v4 int16 matrix ``val`` in ``<name>.mat``, header lines
``<name>.mat 16+24 <gain>/mV 16 0 <first> <checksum> 0 <lead>``), written byte by byte."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import wfdb

#: Lead names as the challenge headers spell them, in the standard order.
CINC_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def write_dat(base: Path, signal: np.ndarray, fs: float, leads=CINC_LEADS, *, units: str = "mV",
              gain: float = 1000.0, comments: list[str] | None = None) -> Path:
    """Format-16 record ``base`` (.hea + .dat) of ``signal`` (n_samples, n_leads) in ``units``."""
    base.parent.mkdir(parents=True, exist_ok=True)
    n = signal.shape[1]
    wfdb.wrsamp(base.name, fs=fs, units=[units] * n, sig_name=list(leads), p_signal=signal, fmt=["16"] * n,
                adc_gain=[gain] * n, baseline=[0] * n, comments=comments or [], write_dir=str(base.parent))
    return base


def mat_v4_bytes(digital: np.ndarray, name: bytes = b"val") -> bytes:
    """A MATLAB v4 file holding int16 matrix ``digital`` (n_rows, n_cols) as variable ``name``.

    Header: five little-endian int32 (type 30 = int16 full real matrix, rows, cols, imaginary 0,
    name length with its NUL), the name, then the data column by column.
    """
    rows, cols = digital.shape
    head = struct.pack("<5i", 30, rows, cols, 0, len(name) + 1) + name + b"\x00"
    return head + np.ascontiguousarray(digital.T).astype("<i2").tobytes()


def write_mat(base: Path, signal: np.ndarray, fs: float, leads=CINC_LEADS, *, gain: float = 1000.0,
              units: str = "mV", comments: list[str] | None = None, sig_len: int | None = None) -> Path:
    """Challenge-layout record ``base`` (.hea + .mat) of ``signal`` (n_samples, n_leads) in ``units``.

    NaN samples are written as WFDB's invalid value -32768; ``sig_len`` overrides the header's length.
    """
    base.parent.mkdir(parents=True, exist_ok=True)
    digital = np.where(np.isnan(signal), -32768, np.round(np.nan_to_num(signal) * gain)).T.astype(np.int16)
    (base.parent / f"{base.name}.mat").write_bytes(mat_v4_bytes(digital))
    n_leads, n_samples = digital.shape
    lines = [f"{base.name} {n_leads} {fs:g} {n_samples if sig_len is None else sig_len} 05-Feb-2020 11:39:16"]
    for j, lead in enumerate(leads):
        checksum = int(digital[j].astype(np.int64).sum()) & 0xFFFF
        checksum -= 65536 if checksum >= 32768 else 0
        first = int(digital[j, 0]) if n_samples else 0
        lines.append(f"{base.name}.mat 16+24 {gain:g}/{units} 16 0 {first} {checksum} 0 {lead}")
    lines += [f"#{c}" for c in (comments or [])]
    (base.parent / f"{base.name}.hea").write_text("\n".join(lines) + "\n")
    return base


def cinc_comments(dx: str | None, age: str = "61", sex: str = "Male") -> list[str]:
    """Challenge header comments (``#Dx`` left out when ``dx`` is None)."""
    out = [f"Age: {age}", f"Sex: {sex}"]
    if dx is not None:
        out.append(f"Dx: {dx}")
    return out + ["Rx: Unknown", "Hx: Unknown", "Sx: Unknown"]
