"""Storing records the PTB-XL way: quantisation, exact derived limb leads, 100 Hz copies, WFDB files.

PTB-XL stores each record twice, at 500 Hz (``records500/``) and 100 Hz (``records100/``), as WFDB
format-16 files (interleaved little-endian int16) with gain 1000 ADC units per mV, baseline 0, units mV.

Quantisation keeps Einthoven's and Goldberger's identities exact in the stored integers: I and II are
rounded to an even number of uV (the device's resolution ``lsb_uv`` is even), and III = II - I,
aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2 are computed in integers, where the halves are exact.

:func:`write_wfdb` writes the same bytes as ``wfdb.wrsamp(..., d_signal=counts, fmt=['16']*12,
adc_gain=[1000.0]*12, baseline=[0]*12, units=['mV']*12)`` (a test compares them) but without wfdb's
per-call header bookkeeping, which costs about 20 ms per record and would dominate the cohort's
writing time. ``writer="wfdb"`` in :class:`~ecgstudy.simulate.cohort.SimulateConfig` uses wfdb itself.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal as sps

from ecgstudy.data.preprocess import antialias_fir
from ecgstudy.simulate.leads import INDEPENDENT_ROWS, WFDB_NAMES, derive_limb_leads

ADC_GAIN = 1000.0  # ADC units per mV (PTB-XL): one unit is one microvolt
LIMB_LIMIT_UV = 16000  # I and II are clipped to +-16 mV so that every derived lead fits in int16
PRECORDIAL_LIMIT_UV = 32000  # V1-V6 clip


def quantise(leads8: np.ndarray, lsb_uv: int) -> np.ndarray:
    """ADC counts of the 12 leads from the 8 independent ones.

    Parameters
    ----------
    leads8 : (8, n) float, mV: I, II, V1-V6.
    lsb_uv : resolution in uV, even.

    Returns
    -------
    (12, n) int32 counts at gain 1000 (uV), leads I, II, III, aVR, aVL, aVF, V1-V6; the four derived limb
    leads are exact integer functions of I and II.
    """
    if lsb_uv < 2 or lsb_uv % 2:
        raise ValueError(f"lsb_uv must be an even number of uV >= 2, got {lsb_uv}")
    steps = np.rint(leads8 * (ADC_GAIN / lsb_uv)).astype(np.int64) * lsb_uv
    steps[:2] = np.clip(steps[:2], -LIMB_LIMIT_UV, LIMB_LIMIT_UV)
    steps[2:] = np.clip(steps[2:], -PRECORDIAL_LIMIT_UV, PRECORDIAL_LIMIT_UV)
    out = np.empty((12, leads8.shape[1]), np.int32)
    out[list(INDEPENDENT_ROWS)] = steps
    out[2:6] = derive_limb_leads(steps[0], steps[1])
    return out


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis with scipy's default anti-aliasing FIR (designed once)."""
    ratio = Fraction(int(fs_out), int(fs_in))
    if ratio == 1:
        return x
    up, down = ratio.numerator, ratio.denominator
    return sps.resample_poly(x, up, down, axis=-1, window=antialias_fir(up, down))


def downsample(counts: np.ndarray, fs_in: int, fs_out: int, lsb_uv: int) -> np.ndarray:
    """The stored record at a lower rate (PTB-XL's records100 from records500).

    Anti-aliased by :func:`scipy.signal.resample_poly` (a zero-phase Kaiser-windowed FIR low-pass at the
    new Nyquist frequency) on I, II and V1-V6, then quantised again (limb leads derived exactly).

    Parameters
    ----------
    counts : (12, n) int ADC counts at ``fs_in`` Hz (gain 1000).

    Returns
    -------
    (12, n * fs_out / fs_in) int32 counts at ``fs_out`` Hz.
    """
    eight = counts[list(INDEPENDENT_ROWS)].astype(np.float64) / ADC_GAIN
    return quantise(resample(eight, fs_in, fs_out), lsb_uv)


def header_text(record_name: str, counts: np.ndarray, fs: int) -> str:
    """The WFDB header of a format-16, gain-1000, mV record (as wfdb.wrsamp writes it)."""
    n_sig, n = counts.shape
    init = counts[:, 0] if n else np.zeros(n_sig, int)
    checksum = np.sum(counts.astype(np.int64), axis=1) % 65536
    lines = [f"{record_name} {n_sig} {fs} {n}"]
    for k in range(n_sig):
        lines.append(
            f"{record_name}.dat 16 {ADC_GAIN}(0)/mV 16 0 {int(init[k])} {int(checksum[k])} 0 {WFDB_NAMES[k]}"
        )
    return "\n".join(lines) + "\n"


def write_wfdb(path_base: str | Path, counts: np.ndarray, fs: int, use_wfdb: bool = False) -> None:
    """Write ``<path_base>.hea`` and ``<path_base>.dat`` (12 leads, format 16, gain 1000, mV).

    Parameters
    ----------
    path_base : record path without extension, e.g. ``.../records500/00000/00001_hr``.
    counts : (12, n) integer ADC counts.
    use_wfdb : write through ``wfdb.wrsamp`` instead (same bytes, about 20 ms slower per record).
    """
    path_base = Path(path_base)
    if counts.shape[0] != 12:
        raise ValueError(f"{path_base}: expected 12 leads, got array of shape {counts.shape}")
    if counts.min(initial=0) < -32768 or counts.max(initial=0) > 32767:
        raise ValueError(f"{path_base}: counts exceed the int16 range of WFDB format 16")
    if use_wfdb:
        import wfdb

        wfdb.wrsamp(
            path_base.name, fs=fs, units=["mV"] * 12, sig_name=list(WFDB_NAMES),
            d_signal=np.asarray(counts.T, np.int64), fmt=["16"] * 12, adc_gain=[ADC_GAIN] * 12, baseline=[0] * 12,
            write_dir=str(path_base.parent),
        )
        return
    path_base.with_suffix(".hea").write_text(header_text(path_base.name, counts, fs))
    np.ascontiguousarray(counts.T, dtype="<i2").tofile(path_base.with_suffix(".dat"))
