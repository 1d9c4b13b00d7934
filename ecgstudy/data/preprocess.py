"""Signal harmonisation: standard lead order, mV, filters, polyphase resampling, fixed length.

Curation applies :func:`harmonise` to every record (the result is stored, in mV); the normalisation
(:func:`normalise`) is applied at load time by :class:`ecgstudy.data.store.ECGDataset`, so one store
serves models that expect different normalisations.

Named presets (:data:`PRESETS`) hold the harmonisation of published models as data; a
``params.yaml`` curate section names one with ``preset:``.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal as sps

from ecgstudy.data.leads import LEADS

#: The standard 12-lead order of every store.
STANDARD_LEADS: tuple[str, ...] = LEADS
_BY_LOWER = {name.lower(): name for name in STANDARD_LEADS}
#: Length policies for records longer/shorter than the target duration: one stored row per record (cropped
#: or zero-padded), or ``windows``: consecutive non-overlapping windows of the target length, one stored row
#: each (a tail shorter than a window is dropped; a record shorter than one window is padded at the end).
LENGTH_POLICIES: tuple[str, ...] = ("center_crop_or_pad", "start_crop_or_pad", "windows")
#: Lead names some sources use for leads that stand in for a standard lead. Never applied on their own:
#: a curation (``curate.lead_aliases``) or a prediction declares the aliases it accepts. Sources: the MIT-BIH
#: Arrhythmia Database headers (PhysioNet, Moody & Mark 2001) name their modified limb lead "MLII"; other
#: PhysioNet databases spell it "ML2"; "MLI" and "MLIII" are the modified leads I and III of the same family.
DOCUMENTED_ALIASES: dict[str, str] = {"MLII": "II", "ML2": "II", "MLI": "I", "MLIII": "III"}
#: Load-time normalisations. The ``dataset_*`` ones use statistics fitted once on a training split
#: (:mod:`ecgstudy.data.normalisation`) and so keep each record's voltage; the others z-score each record.
NORMALISATIONS: tuple[str, ...] = ("dataset_per_lead_zscore", "dataset_zscore", "per_lead_zscore", "record_zscore", "none")
#: The normalisations that need fitted statistics (``meta.json`` ``preprocessing.stats``).
DATASET_NORMALISATIONS: tuple[str, ...] = ("dataset_per_lead_zscore", "dataset_zscore")
#: Multipliers to mV.
_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
#: Smallest standard deviation (mV) used by the z-scores: 1 uV, the PTB-XL ADC resolution.
STD_FLOOR_MV = 1e-3

#: Named harmonisation presets (values replace the curate config's defaults). Sources:
#: docs/architecture.md ("Preprocessing presets"). ``ptbxl_benchmark`` is the study default (helme: 100 Hz, 10 s).
PRESETS: dict[str, dict[str, Any]] = {
    "ptbxl_benchmark": {
        "fs": 100,  # records100, as the PTB-XL benchmark
        "duration_s": 10.0,
        "bandpass": None,
        "notch": None,
        "baseline_median_s": None,
        "normalise": "dataset_zscore",  # one mean and std over the training set (the benchmark's StandardScaler)
    },
    "ecgfounder": {
        "fs": 500,  # 5000 samples over 10 s
        "duration_s": 10.0,
        "notch": 50.0,  # 50 Hz notch, Q = 30
        "bandpass": (0.67, 40.0),  # Butterworth order 4, zero-phase
        "baseline_median_s": 0.4,  # median-filter baseline removal
        "normalise": "record_zscore",  # one z-score over the 12 x 5000 array
    },
    "ecg_fm": {
        "fs": 500,  # 500 Hz; the model sees 5 s crops (2500 samples), cut at load time
        "duration_s": 10.0,
        "bandpass": None,  # no filtering
        "notch": None,
        "baseline_median_s": None,
        "normalise": "per_lead_zscore",
    },
}
#: Notch quality factor (ECGFounder's Q).
NOTCH_Q = 30.0
#: Butterworth band-pass order.
BANDPASS_ORDER = 4


def standard_lead_name(name: str) -> str | None:
    """Standard spelling of a lead name (``AVR``, ``avr``, ``aVR`` -> ``aVR``), None if not a 12-lead name."""
    return _BY_LOWER.get(str(name).strip().lower())


def check_aliases(aliases: dict[str, str] | None) -> dict[str, str]:
    """Declared lead-name aliases ``{source name: standard lead}`` with standard spellings; fails naming a bad one."""
    out = {}
    for name, target in (aliases or {}).items():
        std = standard_lead_name(target)
        if std is None:
            raise ValueError(f"lead alias {name!r} -> {target!r}: the target must be one of {list(STANDARD_LEADS)}")
        if standard_lead_name(name) is not None and standard_lead_name(name) != std:
            raise ValueError(f"lead alias {name!r} -> {target!r} would rename a standard lead")
        out[str(name).strip().lower()] = std
    return out


def to_standard_leads(
    data: np.ndarray, leads: tuple[str, ...] | list[str], aliases: dict[str, str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder leads to :data:`STANDARD_LEADS`.

    Parameters
    ----------
    data : array of shape (n_leads, n_samples)
    leads : names of the rows of ``data``, any case; names that are not 12-lead names (nor declared
        aliases) are dropped (e.g. the Frank leads vx, vy, vz of PTB Diagnostic records)
    aliases : declared ``{source name: standard lead}`` (any case), e.g. ``{"MLII": "II"}``
        (:data:`DOCUMENTED_ALIASES`); undeclared aliases are dropped like any other name

    Returns
    -------
    out : float64 array of shape (12, n_samples); leads that are missing, or entirely NaN, are NaN
    mask : bool array of shape (12,), True where the lead is present
    """
    out = np.full((len(STANDARD_LEADS), data.shape[1]), np.nan)
    seen: dict[str, str] = {}
    declared = check_aliases(aliases)
    for row, name in enumerate(leads):
        std = standard_lead_name(name) or declared.get(str(name).strip().lower())
        if std is None:
            continue
        if std in seen:
            raise ValueError(f"leads {seen[std]!r} and {name!r} both map to {std}")
        seen[std] = name
        out[STANDARD_LEADS.index(std)] = data[row]
    mask = ~np.isnan(out).all(axis=1) if out.shape[1] else np.zeros(len(STANDARD_LEADS), bool)
    return out, mask


def to_millivolts(data: np.ndarray, units: tuple[str, ...] | list[str]) -> np.ndarray:
    """Convert each row of ``data`` (n_leads, n_samples) from its unit to mV; unknown units raise."""
    factors = []
    for unit in units:
        key = str(unit).strip().lower()
        if key not in _TO_MV:
            raise ValueError(f"unknown signal unit {unit!r}; known: mV, uV, V, nV")
        factors.append(_TO_MV[key])
    factors = np.asarray(factors)
    return data if np.all(factors == 1.0) else data * factors[:, None]


def notch(data: np.ndarray, fs: float, freq: float, q: float = NOTCH_Q) -> np.ndarray:
    """Zero-phase IIR notch at ``freq`` Hz of ``data`` (n_leads, n_samples) at ``fs`` Hz."""
    if freq >= fs / 2:
        return data
    b, a = sps.iirnotch(freq, q, fs=fs)
    return _nan_safe(lambda x: sps.filtfilt(b, a, x, axis=-1), data)


def bandpass(data: np.ndarray, fs: float, low: float, high: float, order: int = BANDPASS_ORDER) -> np.ndarray:
    """Zero-phase Butterworth band-pass ``low``-``high`` Hz (high clipped below Nyquist)."""
    high = min(high, 0.45 * fs)
    sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    return _nan_safe(lambda x: sps.sosfiltfilt(sos, x, axis=-1), data)


def remove_baseline_median(data: np.ndarray, fs: float, window_s: float) -> np.ndarray:
    """Subtract a running median of ``window_s`` seconds (odd window) from each lead."""
    width = max(1, int(round(window_s * fs))) | 1
    half = width // 2

    def running_median(x: np.ndarray) -> np.ndarray:
        # edge-padded 1-D medfilt per lead (= ndimage.median_filter mode "nearest", ~40x faster)
        padded = np.pad(x, ((0, 0), (half, half)), mode="edge")
        return np.stack([sps.medfilt(row, width)[half : half + x.shape[1]] for row in padded])

    return _nan_safe(lambda x: x - running_median(x), data)


def _nan_safe(fn, data: np.ndarray) -> np.ndarray:
    """Apply ``fn`` to the leads that are not entirely NaN (missing leads stay NaN)."""
    present = ~np.isnan(data).all(axis=1)
    if present.all():
        return fn(data)
    if not present.any() or data.shape[1] == 0:
        return fn(np.zeros_like(data)) * np.nan  # the output shape of fn, all NaN
    done = fn(data[present])
    out = np.full((data.shape[0], done.shape[1]), np.nan)
    out[present] = done
    return out


def resample(data: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling of ``data`` (n_leads, n_samples) from ``fs_in`` to ``fs_out`` Hz.

    The rate ratio is approximated by a fraction with denominator <= 1000; the output has
    ``ceil(n_samples * up / down)`` samples. Missing (all-NaN) leads stay NaN.
    """
    ratio = Fraction(float(fs_out) / float(fs_in)).limit_denominator(1000)
    if ratio == 1:
        return data
    up, down = ratio.numerator, ratio.denominator
    fir = antialias_fir(up, down)
    return _nan_safe(lambda x: sps.resample_poly(x, up, down, axis=-1, window=fir), data) if data.shape[1] else data


@functools.lru_cache(maxsize=32)
def antialias_fir(up: int, down: int) -> np.ndarray:
    """resample_poly's default anti-aliasing FIR (Kaiser, beta 5), designed once per rate pair."""
    max_rate = max(up, down)
    fir = sps.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    fir.setflags(write=False)
    return fir


def fit_length(data: np.ndarray, n_samples: int, policy: str = "center_crop_or_pad") -> tuple[np.ndarray, int]:
    """Crop or zero-pad ``data`` (n_leads, n) to ``n_samples``.

    Returns
    -------
    out : array of shape (n_leads, n_samples); missing (all-NaN) leads stay NaN after padding
    offset : index in the input of output sample 0 (negative when padded at the start)
    """
    if policy not in LENGTH_POLICIES or policy == "windows":
        raise ValueError(f"unknown length policy {policy!r}; valid: {[p for p in LENGTH_POLICIES if p != 'windows']} "
                         "(windows: see split_windows)")
    n = data.shape[1]
    if n == n_samples:
        return data, 0
    offset = (n - n_samples) // 2 if policy == "center_crop_or_pad" else 0
    if n > n_samples:
        return data[:, offset : offset + n_samples], offset
    out = np.zeros((data.shape[0], n_samples), dtype=data.dtype)
    start = -offset
    out[:, start : start + n] = data
    out[np.isnan(data).all(axis=1)] = np.nan
    return out, offset


def split_windows(data: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``data`` (n_leads, n) into consecutive non-overlapping windows of ``n_samples`` (``windows`` policy).

    Returns
    -------
    windows : array of shape (K, n_leads, n_samples), K = max(1, n // n_samples); the tail after the last
        whole window is dropped; a record shorter than one window is zero-padded at the end (missing
        leads stay NaN)
    offsets : int64 (K,), index in the input of each window's sample 0
    """
    n = data.shape[1]
    if n <= n_samples:
        padded, offset = fit_length(data, n_samples, "start_crop_or_pad")
        return padded[None], np.array([offset], dtype=np.int64)
    starts = np.arange(n // n_samples, dtype=np.int64) * n_samples
    return np.stack([data[:, s : s + n_samples] for s in starts]), starts


def filter_and_resample(
    data: np.ndarray,
    fs: float,
    fs_out: float,
    *,
    bandpass_hz: tuple[float, float] | None = None,
    notch_hz: float | None = None,
    baseline_median_s: float | None = None,
) -> np.ndarray:
    """The filters of :func:`harmonise` at ``fs`` (notch, band-pass, median baseline), then resampling to
    ``fs_out``: (12, n) at ``fs`` Hz -> (12, m) at ``fs_out`` Hz, mV, any length (no cropping)."""
    if notch_hz is not None:
        data = notch(data, fs, notch_hz)
    if bandpass_hz is not None:
        data = bandpass(data, fs, *bandpass_hz)
    if baseline_median_s is not None:
        data = remove_baseline_median(data, fs, baseline_median_s)
    return resample(data, fs, fs_out)


def harmonise(
    data: np.ndarray,
    fs: float,
    *,
    fs_out: float,
    n_samples: int,
    length_policy: str = "center_crop_or_pad",
    bandpass_hz: tuple[float, float] | None = None,
    notch_hz: float | None = None,
    baseline_median_s: float | None = None,
) -> tuple[np.ndarray, float]:
    """Filter, resample and fit the length of a standard-order signal.

    Parameters
    ----------
    data : array of shape (12, n) at ``fs`` Hz, mV, standard lead order (missing leads NaN)
    fs_out, n_samples : target rate (Hz) and length (samples)
    bandpass_hz, notch_hz, baseline_median_s : optional filters, applied at ``fs`` in the order
        notch, band-pass, median baseline removal (ECGFounder's order)

    Returns
    -------
    out : float32 array of shape (12, n_samples) at ``fs_out`` Hz, mV; with ``length_policy`` ``windows``,
        shape (K, 12, n_samples) (:func:`split_windows`)
    offset_s : time (s) in the input of output sample 0 (negative when padded at the start); with
        ``windows``, float64 (K,), one per window
    """
    data = filter_and_resample(data, fs, fs_out, bandpass_hz=bandpass_hz, notch_hz=notch_hz,
                               baseline_median_s=baseline_median_s)
    if length_policy == "windows":
        windows, starts = split_windows(data, n_samples)
        return windows.astype(np.float32), starts / fs_out
    data, offset = fit_length(data, n_samples, length_policy)
    return data.astype(np.float32), offset / fs_out


def normalise(x: np.ndarray, method: str, mask: np.ndarray | None = None, stats: dict | None = None) -> np.ndarray:
    """Load-time normalisation of one signal ``x`` (12, T) in mV, returning float32 with NaN set to 0.

    ``dataset_per_lead_zscore``: each lead minus its training-split mean, over its training-split std
    (``stats["mean"]``, ``stats["std"]``, 12 values each, mV): voltages stay comparable between records;
    ``dataset_zscore``: one training-split mean and std for all leads (``stats["global_mean"]``,
    ``stats["global_std"]``; the PTB-XL benchmark's StandardScaler); ``per_lead_zscore``: each lead of
    this record to mean 0, std 1 over time; ``record_zscore``: one mean and std over this record's
    present leads and samples; ``none``: unchanged. Standard deviations are floored at
    :data:`STD_FLOOR_MV`. Missing leads (``mask`` False, or NaN) become zeros after normalising.
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; valid: {list(NORMALISATIONS)}")
    if method in DATASET_NORMALISATIONS and not stats:
        raise ValueError(f"normalisation {method!r} needs statistics fitted on a training split (stats=None)")
    x = np.asarray(x, dtype=np.float32)
    present = ~np.isnan(x).all(axis=1) if mask is None else np.asarray(mask, bool) & ~np.isnan(x).all(axis=1)
    out = np.zeros_like(x)
    if not present.any():
        return out
    xp = x[present]
    if method == "dataset_per_lead_zscore":
        mean = np.asarray(stats["mean"], np.float32)[present][:, None]
        std = np.maximum(np.asarray(stats["std"], np.float32)[present][:, None], STD_FLOOR_MV)
        xp = (xp - mean) / std
    elif method == "dataset_zscore":
        xp = (xp - np.float32(stats["global_mean"])) / np.float32(max(float(stats["global_std"]), STD_FLOOR_MV))
    elif method == "per_lead_zscore":
        mean = np.nanmean(xp, axis=1, keepdims=True)
        std = np.maximum(np.nanstd(xp, axis=1, keepdims=True), STD_FLOOR_MV)
        xp = (xp - mean) / std
    elif method == "record_zscore":
        xp = (xp - np.nanmean(xp)) / max(float(np.nanstd(xp)), STD_FLOOR_MV)
    out[present] = np.nan_to_num(xp, nan=0.0, posinf=0.0, neginf=0.0)
    return out
