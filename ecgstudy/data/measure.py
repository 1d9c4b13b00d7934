"""Independent measurement of ECG intervals and voltages (a check on the simulator, and a table for curate).

Two measurers that know nothing of the simulator:

- :func:`measure_intervals` (one lead, neurokit2) finds R peaks with ``neurokit2.ecg_peaks`` and delineates the waves with
``neurokit2.ecg_delineate(method="prominence")`` (the default wavelet method gives impossible values on
clean synthetic signals, see RESEARCH.md), then takes per-beat medians:

- heart rate from the mean RR interval, and the coefficient of variation of RR (irregularity);
- PR = QRS onset - P onset; QRS = QRS offset - QRS onset; QT = T offset - QRS onset.

- :func:`measure_global` (all 12 leads together, as computerised programs measure a global QRS): a median
  beat of the 12 leads aligned on the QRS; QRS onset = the earliest and offset = the latest instant at
  which the spatial velocity of the eight independent leads (I, II, V1-V6) exceeds a fixed fraction of
  its peak; QT from that onset to the T end found by the tangent method (steepest descent of the T wave's
  root-mean-square over the leads, extended to the baseline; Postema & Wilde 2014); Sokolow-Lyon voltage
  (S in V1 + the larger R in V5/V6) and the largest limb-lead QRS amplitude on the median beat.

- :func:`measure_leads` adds per-lead amplitudes, axes, the 10-s RMSSD and a global P wave (PR interval and
  P duration: boundaries where the spatial velocity of the low-passed leads falls below a fraction of its peak).

Whatever cannot be measured comes back as NaN rather than an exception. :func:`interval_table` gives the
per-condition medians over a sample of records, for both measurers and the intended (ground-truth)
values (the curate stage's "intervals by condition" table).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ecgstudy.data.leads import LEADS

MEASURES: tuple[str, ...] = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "rr_cv")
MIN_BEATS = 3  # fewer detected R peaks than this: nothing is measured


def _nan_result() -> dict[str, float]:
    return {k: float("nan") for k in MEASURES}


def _median_ms(later: Sequence, earlier: Sequence, fs: float, lo_ms: float, hi_ms: float) -> float:
    """Median of per-beat differences (ms) where both fiducials exist and the difference is plausible."""
    a = np.asarray(later, dtype=float)
    b = np.asarray(earlier, dtype=float)
    n = min(a.size, b.size)
    d = (a[:n] - b[:n]) * 1000.0 / fs
    d = d[np.isfinite(d) & (d >= lo_ms) & (d <= hi_ms)]
    return float(np.median(d)) if d.size else float("nan")


def measure_intervals(signal: np.ndarray, fs: float, lead: str = "II") -> dict[str, float]:
    """Heart rate, PR, QRS, QT and RR irregularity of one record, measured on one lead.

    Parameters
    ----------
    signal : array of shape (12, n_samples) at ``fs`` Hz in mV, leads in the order I, II, III, aVR, aVL,
        aVF, V1-V6 (a single lead of shape (n_samples,) is accepted as well).
    fs : sampling rate, Hz.
    lead : the lead to measure on.

    Returns
    -------
    dict with hr_bpm, pr_ms, qrs_ms, qt_ms (medians over beats) and rr_cv (std / mean of RR); NaN for
    whatever could not be measured (flat or missing lead, too few beats, failed delineation).
    """
    import neurokit2 as nk

    x = np.asarray(signal, dtype=float)
    if x.ndim == 2:
        if lead not in LEADS:
            raise ValueError(f"unknown lead {lead!r}; leads: {list(LEADS)}")
        x = x[LEADS.index(lead)]
    out = _nan_result()
    if x.size < 2 * fs or not np.all(np.isfinite(x)) or np.ptp(x) < 0.05:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cleaned = nk.ecg_clean(x, sampling_rate=int(fs))
            _, info = nk.ecg_peaks(cleaned, sampling_rate=int(fs))
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
        except Exception:  # neurokit2 raises assorted errors on odd signals: report "not measured"
            return out
        if peaks.size < MIN_BEATS:
            return out
        rr = np.diff(peaks) / fs
        out["hr_bpm"] = float(60.0 / rr.mean())
        out["rr_cv"] = float(rr.std() / rr.mean())
        try:
            _, waves = nk.ecg_delineate(cleaned, peaks, sampling_rate=int(fs), method="prominence")
        except Exception:
            return out
    r_on = waves.get("ECG_R_Onsets", [])
    out["pr_ms"] = _median_ms(r_on, waves.get("ECG_P_Onsets", []), fs, 40.0, 500.0)
    out["qrs_ms"] = _median_ms(waves.get("ECG_R_Offsets", []), r_on, fs, 30.0, 300.0)
    out["qt_ms"] = _median_ms(waves.get("ECG_T_Offsets", []), r_on, fs, 150.0, 750.0)
    return out


#: What :func:`measure_global` returns.
GLOBAL_MEASURES: tuple[str, ...] = ("qrs_ms", "qt_ms", "sokolow_mv", "limb_qrs_mv")
_INDEPENDENT = (0, 1, 6, 7, 8, 9, 10, 11)  # rows of I, II, V1-V6: the eight independent leads
_LIMB = (0, 1, 2, 3, 4, 5)
_V1, _V5, _V6 = 6, 10, 11
VELOCITY_FRACTION = 0.05  # QRS boundaries: spatial velocity above this fraction of its peak
_BEAT_FS = 1000.0  # the median beat is interpolated to 1 kHz before the boundaries are searched
_PRE_S, _POST_S = 0.3, 0.7  # median-beat window around the QRS velocity peak, s
_MIN_QUIET_S = 0.012  # the QRS ends where the velocity stays below the threshold this long


def _butter(x: np.ndarray, fs: float, cutoff: float, kind: str) -> np.ndarray:
    from scipy import signal as sps

    sos = sps.butter(2, cutoff, kind, fs=fs, output="sos")
    return sps.sosfiltfilt(sos, x, axis=-1)


def _velocity(x: np.ndarray, fs: float) -> np.ndarray:
    """Spatial velocity (mV/s) of the leads ``x`` (L, n): the length of the time derivative vector, (n,)."""
    d = np.gradient(x, axis=-1) * fs
    return np.sqrt((d**2).sum(axis=0))


def median_beat(signal: np.ndarray, fs: float) -> tuple[np.ndarray, float, float] | None:
    """The median beat of a 12-lead record, aligned on the peak of the QRS spatial velocity.

    (beat (12, m) at ``fs_beat`` = 1000 Hz, fs_beat, mean RR in s) as :func:`_beats` finds them, or None.
    """
    made = _beats(signal, fs)
    return None if made is None else (made[0], made[1], float(np.mean(made[2])))


def _beats(signal: np.ndarray, fs: float) -> tuple[np.ndarray, float, np.ndarray, np.ndarray] | None:
    """The median beat of a 12-lead record, aligned on the peak of the QRS spatial velocity, and the RR
    intervals between the detected beats.

    Baseline wander is removed by a 0.5 Hz zero-phase high-pass; beats are found as peaks of the
    smoothed spatial velocity of the independent leads (at least 250 ms apart); beats whose QRS does not
    resemble the median (correlation < 0.9, e.g. ectopic beats) are left out of a second median.

    Parameters
    ----------
    signal : array of shape (12, n) at ``fs`` Hz in mV, leads in :data:`LEADS` order.

    Returns
    -------
    (beat, fs_beat, rr_s, spread) with ``beat`` of shape (12, m) at ``fs_beat`` = 1000 Hz covering 0.3 s
    before to 0.7 s after the QRS velocity peak (sample ``round(0.3 * fs_beat)``), ``rr_s`` (B - 1,) the
    intervals between the B detected beats in s and ``spread`` (12, k) at 1000 Hz the robust sd (1.4826 x
    median absolute deviation) of the kept beats, low-passed at :data:`P_LOWPASS_HZ`, around their median,
    over the beat's first 0.4 s (to 0.1 s after the QRS velocity peak); or None when fewer than
    :data:`MIN_BEATS` beats are found.
    """
    from scipy import signal as sps

    x = np.asarray(signal, dtype=float)
    if x.ndim != 2 or x.shape[0] != len(LEADS) or not np.all(np.isfinite(x)) or x.shape[1] < 2 * fs:
        return None
    live = [i for i in _INDEPENDENT if np.ptp(x[i]) > 0.05]  # a disconnected (flat) lead is left out
    if len(live) < 2:
        return None
    x = _butter(x, fs, 0.5, "highpass")
    v = _velocity(_butter(x[live], fs, min(40.0, 0.4 * fs), "lowpass"), fs)
    width = max(int(round(0.04 * fs)), 1)
    v = np.convolve(v, np.ones(width) / width, mode="same")
    peaks, _ = sps.find_peaks(v, height=0.3 * np.percentile(v, 99.5), distance=max(int(0.25 * fs), 1))
    if peaks.size < MIN_BEATS:
        return None
    rr = np.diff(peaks) / fs
    pre, post = int(round(_PRE_S * fs)), int(round(_POST_S * fs))
    peaks = peaks[(peaks >= pre) & (peaks + post <= x.shape[1])]
    if peaks.size < 2:
        return None
    beats = np.stack([x[:, p - pre : p + post] for p in peaks])  # (B, 12, pre + post)
    core = slice(max(pre - int(0.08 * fs), 0), pre + int(0.12 * fs))
    med = np.median(beats, axis=0)
    ref = med[live, core].ravel()
    corr = np.array([np.corrcoef(b[live, core].ravel(), ref)[0, 1] for b in beats])
    if (corr > 0.9).sum() >= 2:
        beats = beats[corr > 0.9]
        med = np.median(beats, axis=0)
    # beat-to-beat variation of the low-passed leads before the QRS (where the P wave is searched): robust sd
    smooth = _butter(beats[:, :, : pre + int(0.1 * fs)], fs, min(P_LOWPASS_HZ, 0.4 * fs), "lowpass")
    spread = 1.4826 * np.median(np.abs(smooth - np.median(smooth, axis=0)), axis=0)  # (12, pre + 0.1 s)
    up = int(round(_BEAT_FS))
    g = int(np.gcd(up, int(round(fs))))
    beat, spread = (sps.resample_poly(a, up // g, int(round(fs)) // g, axis=-1, padtype="line") for a in (med, spread))
    return beat, _BEAT_FS, rr, np.maximum(spread, 0.0)


def measure_global(signal: np.ndarray, fs: float) -> dict[str, float]:
    """Global QRS duration, QT and QRS voltages of a 12-lead record, from its median beat.

    Parameters
    ----------
    signal : array of shape (12, n_samples) at ``fs`` Hz in mV, leads in :data:`LEADS` order.
    fs : sampling rate, Hz (100 Hz records are interpolated to 1 kHz on the median beat).

    Returns
    -------
    dict with qrs_ms (earliest onset to latest offset over the leads), qt_ms (global QRS onset to T end),
    sokolow_mv (S in V1 + max R in V5/V6) and limb_qrs_mv (largest QRS peak-to-peak in a limb lead); NaN
    for whatever could not be measured.
    """
    return _measure(signal, fs, per_lead=False)


def measure_leads(signal: np.ndarray, fs: float) -> dict[str, float]:
    """:func:`measure_global`'s measures plus the heart rate and per-lead amplitudes of the median beat.

    Amplitudes are in mV relative to the PR-segment level (the 20 ms before the global QRS onset):
    ``R_<lead>`` and ``S_<lead>`` the largest positive and negative QRS deflection, ``ST_<lead>`` the level
    40 ms after the global QRS offset (J point), ``T_<lead>`` the signed largest deflection 80-360 ms after
    it; lead names as in :data:`LEADS`. ``hr_bpm`` from the mean interval between detected beats. Used to ask
    how far age and sex can be read from standard measurements (:mod:`ecgstudy.data.demographics`).

    Also :data:`AXIS_RHYTHM_MEASURES`, as ECG programs report them: the frontal QRS and T axes (deg) from the
    net areas of leads I and aVF over the QRS (global onset to offset) and over the T wave (40 ms after the
    QRS offset to the measured T end), as the MEANS program computes them (Rijnbeek et al. 2014); the frontal
    QRS-T angle (absolute difference of the two, 0-180 deg); and the RMSSD of the strip (ms: root mean square
    of successive RR differences between detected beats, intervals more than 20 % from the median RR left
    out as ectopic), the 10-s heart-rate variability of van den Berg et al. 2018 and Tegegne et al. 2019.

    And :data:`P_WAVE_MEASURES`: the PR interval (P onset to global QRS onset) and the P-wave duration (ms) of a
    global P wave delineated on the median beat (1 kHz) over the independent leads low-passed at 30 Hz, its
    boundaries where the spatial velocity falls below a fixed fraction of its peak (:func:`_p_wave`); NaN when
    no single, beat-locked P wave precedes the QRS (AF, flutter, pacing, P on T, PR beyond ~230 ms).

    Parameters
    ----------
    signal : array of shape (12, n_samples) at ``fs`` Hz in mV, leads in :data:`LEADS` order.
    fs : sampling rate, Hz.

    Returns
    -------
    dict of :data:`LEAD_MEASURES` (NaN for whatever could not be measured).
    """
    return _measure(signal, fs, per_lead=True)


#: Axes and 10-s heart-rate variability of :func:`measure_leads` (besides the amplitudes).
AXIS_RHYTHM_MEASURES: tuple[str, ...] = ("qrs_axis_deg", "t_axis_deg", "qrs_t_angle_deg", "rmssd_ms")
#: The global P wave of :func:`measure_leads`: PR interval and P duration, ms.
P_WAVE_MEASURES: tuple[str, ...] = ("pr_ms", "p_ms")
#: What :func:`measure_leads` returns.
LEAD_MEASURES: tuple[str, ...] = GLOBAL_MEASURES + ("hr_bpm",) + AXIS_RHYTHM_MEASURES + P_WAVE_MEASURES + tuple(
    f"{kind}_{lead}" for kind in ("R", "S", "ST", "T") for lead in LEADS
)


def _measure(signal: np.ndarray, fs: float, per_lead: bool) -> dict[str, float]:
    """The median beat's global measures (and, with ``per_lead``, the heart rate and lead amplitudes)."""
    out = {k: float("nan") for k in (LEAD_MEASURES if per_lead else GLOBAL_MEASURES)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = _beats(signal, fs)
    if made is None:
        return out
    beat, bfs, rr, spread = made
    mean_rr = float(np.mean(rr))
    if per_lead:
        out["hr_bpm"] = 60.0 / mean_rr
        out["rmssd_ms"] = rmssd_ms(rr)
    centre = int(round(_PRE_S * bfs))
    live = [i for i in _INDEPENDENT if np.ptp(beat[i]) > 0.02]
    v = _velocity(_butter(beat[live], bfs, 40.0, "lowpass"), bfs)
    search = slice(centre - int(0.06 * bfs), centre + int(0.06 * bfs))
    peak = search.start + int(np.argmax(v[search]))
    floor = float(np.percentile(v, 20))
    threshold = max(VELOCITY_FRACTION * float(v[peak]), 3.0 * floor)
    quiet = max(int(round(_MIN_QUIET_S * bfs)), 1)
    below = v < threshold
    onset = peak
    while onset > quiet and not below[onset - quiet : onset].all():
        onset -= 1
    offset = peak
    limit = min(len(v) - quiet, centre + int(0.3 * bfs))
    while offset < limit and not below[offset : offset + quiet].all():
        offset += 1
    if onset <= quiet or offset >= limit:
        return out
    out["qrs_ms"] = 1000.0 * (offset - onset) / bfs
    base = beat[:, max(onset - int(0.02 * bfs), 0) : onset].mean(axis=1, keepdims=True)  # PR-segment level
    qrs = beat[:, onset : offset + 1] - base
    out["sokolow_mv"] = float(-qrs[_V1].min() + max(qrs[_V5].max(), qrs[_V6].max()))
    out["limb_qrs_mv"] = float(np.ptp(qrs[list(_LIMB)], axis=1).max())
    out["qt_ms"] = _t_end_ms(beat - base, bfs, onset, offset, mean_rr)
    if per_lead:
        _lead_amplitudes(out, beat - base, bfs, onset, offset)
        _axes(out, beat - base, bfs, onset, offset, out["qt_ms"])
        out["pr_ms"], out["p_ms"] = _p_wave(beat, spread, bfs, onset, after_t_s=mean_rr - out["qt_ms"] / 1000.0)
    return out


P_LOWPASS_HZ = 30.0  # the P wave is searched on the leads low-passed at this cut-off, Hz
# P boundaries: spatial velocity above this fraction of its peak (a smooth, Gaussian-like wave's velocity is
# about 20 % of its peak where the wave itself is about 5 % of its peak)
P_FRACTION = 0.2
P_MIN_RATIO = 3.0  # the P peak magnitude is at least this many times the beat-to-beat variation (time-locked)
P_SINGLE = 0.4  # outside the P wave the velocity stays below this fraction of its peak (one wave)
_P_MARGIN_S = 0.02  # the search starts this long after the median beat's start (or the previous T end), s
_P_GAP_S = 0.02  # the P peak lies at least this long before the QRS onset, s
_P_REF_S = 0.01  # reference level: the mean of the leads over this long before the QRS onset, s
_P_QUIET_S = 0.008  # the P wave starts / ends where the velocity stays below its threshold this long, s


def _p_wave(beat: np.ndarray, spread: np.ndarray, fs: float, onset: int,
            after_t_s: float = float("nan")) -> tuple[float, float]:
    """(PR, P duration) in ms of a median beat: a global P wave over the eight independent leads.

    Parameters
    ----------
    beat : median beat, (12, m) mV at ``fs`` (1000 Hz from :func:`_beats`), leads in :data:`LEADS` order.
    spread : robust beat-to-beat sd of the 30 Hz low-passed beats around that median, (12, k) mV, k > onset.
    fs : sampling rate of ``beat``, Hz.
    onset : sample of the global QRS onset in ``beat``.
    after_t_s : time from the previous beat's T end to this QRS onset (mean RR - QT), s; NaN: unknown.

    Method: the independent leads (I, II, V1-V6) low-passed at :data:`P_LOWPASS_HZ` are searched from the
    beat's start (or just after the previous T wave, at fast rates) to the QRS onset. The P wave is the
    largest spatial magnitude (length of the lead vector relative to its level in the 10 ms before the QRS
    onset) at least 20 ms before the QRS onset; it must stand :data:`P_MIN_RATIO` times above the
    beat-to-beat variation (a wave not time-locked to the QRS, as AF's f-waves, averages away in the median
    but not in the spread). Its onset and offset are found as the QRS's are: walking out from the peak to
    where the spatial velocity stays below :data:`P_FRACTION` of its peak in the P wave for 8 ms. Outside
    the wave the velocity must stay below :data:`P_SINGLE` of that peak (one wave: not flutter waves, not a
    T wave). PR = P onset to QRS onset, P duration = onset to offset.

    Returns
    -------
    (pr_ms, p_ms); both NaN when no single P wave is found (AF, flutter, pacing, P on the T wave at fast
    rates, a PR longer than the window of about 230 ms), p_ms alone NaN when the P wave runs into the QRS.
    """
    nan = (float("nan"), float("nan"))
    live = [i for i in _INDEPENDENT if np.ptp(beat[i]) > 0.02]
    ref_n = max(int(round(_P_REF_S * fs)), 1)
    start = int(round(_P_MARGIN_S * fs))
    if np.isfinite(after_t_s):  # the previous beat's T wave ends about this long before the QRS onset
        start = max(start, onset - int(round((after_t_s - _P_MARGIN_S) * fs)))
    gap = int(round(_P_GAP_S * fs))
    quiet = max(int(round(_P_QUIET_S * fs)), 1)
    if len(live) < 2 or onset - gap - start < int(round(0.04 * fs)):
        return nan
    x = _butter(beat[live], fs, P_LOWPASS_HZ, "lowpass")
    ref = x[:, onset - ref_n : onset].mean(axis=1, keepdims=True)
    mag = np.sqrt(((x[:, start:onset] - ref) ** 2).sum(axis=0))  # (onset - start,) from the window's start
    vel = _velocity(x, fs)[start:onset]
    end = len(vel) - gap  # the QRS onset's own rise is left out
    peak = int(np.argmax(mag[:end]))
    variation = float(np.sqrt((spread[live, start:onset] ** 2).sum(axis=0).mean()))
    if not mag[peak] >= P_MIN_RATIO * variation:
        return nan
    vpeak = float(vel[max(peak - int(0.06 * fs), 0) : min(peak + int(0.06 * fs), end)].max())
    below = vel < P_FRACTION * vpeak
    p_on = peak
    while p_on > quiet and not below[p_on - quiet : p_on].all():
        p_on -= 1
    if p_on <= quiet:
        return nan  # the P wave starts before the window (a long PR) or never returns to the baseline
    p_off = peak
    while p_off < end and not below[p_off : p_off + quiet].all():
        p_off += 1
    outside = np.concatenate([vel[: p_on - quiet], vel[p_off + quiet : end]])
    if outside.size and outside.max() > P_SINGLE * vpeak:
        return nan
    pr_ms = 1000.0 * (len(mag) - p_on) / fs
    return pr_ms, (1000.0 * (p_off - p_on) / fs if p_off < end else float("nan"))


def frontal_axis_from_areas(lead_i: float, lead_avf: float) -> float:
    """Frontal axis (deg, -180..180] of a wave from its net areas in leads I and aVF (the hexaxial way)."""
    return float(np.degrees(np.arctan2(lead_avf, lead_i)))


def rmssd_ms(rr_s: np.ndarray) -> float:
    """Root mean square of successive RR differences (ms) of ``rr_s`` (n,) s, after leaving out intervals more
    than 20 % from the median (ectopic beats and their pauses); NaN with fewer than two successive pairs."""
    rr = np.asarray(rr_s, np.float64)
    normal = np.abs(rr - np.median(rr)) <= 0.2 * np.median(rr) if rr.size else np.zeros(0, bool)
    pairs = normal[1:] & normal[:-1]
    if pairs.sum() < 2:
        return float("nan")
    return float(1000.0 * np.sqrt(np.mean(np.diff(rr)[pairs] ** 2)))


def _axes(out: dict[str, float], beat: np.ndarray, fs: float, onset: int, offset: int, qt_ms: float) -> None:
    """Fill ``out`` with the frontal QRS and T axes and the QRS-T angle of the baseline-corrected ``beat``."""
    i, avf = LEADS.index("I"), LEADS.index("aVF")
    t_start = offset + int(round(0.04 * fs))
    t_end = onset + int(round(qt_ms * fs / 1000.0)) if np.isfinite(qt_ms) else offset + int(round(0.36 * fs))
    t_end = min(t_end, beat.shape[1])
    qrs = beat[:, onset : offset + 1].sum(axis=1)
    out["qrs_axis_deg"] = frontal_axis_from_areas(qrs[i], qrs[avf])
    if t_end - t_start < int(round(0.05 * fs)):
        return
    t = beat[:, t_start:t_end].sum(axis=1)
    out["t_axis_deg"] = frontal_axis_from_areas(t[i], t[avf])
    out["qrs_t_angle_deg"] = float(abs((out["t_axis_deg"] - out["qrs_axis_deg"] + 180.0) % 360.0 - 180.0))


def _lead_amplitudes(out: dict[str, float], beat: np.ndarray, fs: float, onset: int, offset: int) -> None:
    """Fill ``out`` with R, S, ST (J + 40 ms) and T amplitudes per lead of the baseline-corrected ``beat``."""
    qrs = beat[:, onset : offset + 1]
    st = offset + int(round(0.04 * fs))
    t_win = beat[:, offset + int(round(0.08 * fs)) : min(offset + int(round(0.36 * fs)), beat.shape[1])]
    if st >= beat.shape[1] or t_win.shape[1] == 0:
        return
    t = t_win[np.arange(len(LEADS)), np.abs(t_win).argmax(axis=1)]
    for i, lead in enumerate(LEADS):
        out[f"R_{lead}"] = float(qrs[i].max())
        out[f"S_{lead}"] = float(qrs[i].min())
        out[f"ST_{lead}"] = float(beat[i, st])
        out[f"T_{lead}"] = float(t[i])


def _t_end_ms(beat: np.ndarray, fs: float, onset: int, offset: int, mean_rr: float) -> float:
    """QT (ms): global QRS onset to the T end by the tangent method on the leads' RMS curve."""
    rms = _butter(np.sqrt((beat[list(_INDEPENDENT)] ** 2).mean(axis=0)), fs, 20.0, "lowpass")
    start = offset + int(0.06 * fs)
    stop = min(len(rms) - 1, onset + int(min(0.75, 0.92 * mean_rr) * fs))
    if stop - start < int(0.05 * fs):
        return float("nan")
    t_peak = start + int(np.argmax(rms[start:stop]))
    slope = np.gradient(rms) * fs
    if t_peak >= stop - 1:
        return float("nan")
    steep = t_peak + int(np.argmin(slope[t_peak:stop]))
    if slope[steep] >= 0:
        return float("nan")
    level = float(np.percentile(rms[offset:stop], 5))
    t_end = steep + (rms[steep] - level) / -slope[steep] * fs
    return 1000.0 * (t_end - onset) / fs


def _source_arrays(source: Any) -> tuple[Any, pd.DataFrame, float]:
    """(signals (N, 12, T), label/ground-truth frame, fs) from a Store-like object or a tuple."""
    if hasattr(source, "signals") and hasattr(source, "records") and hasattr(source, "fs"):
        return source.signals, source.records, float(source.fs)
    if isinstance(source, tuple) and len(source) == 3:
        signals, labels, fs = source
        if isinstance(labels, dict):
            labels = pd.DataFrame({f"y_{k}": np.asarray(v).astype(np.int8) for k, v in labels.items()})
        return signals, labels, float(fs)
    raise TypeError(
        "interval_table expects a Store (with .signals, .records, .fs) or a tuple "
        "(signals (N, 12, T), labels DataFrame with y_<CODE> columns or {code: 0/1 array}, fs)"
    )


#: The global measurer's columns of :func:`interval_table` (prefixed ``global_``).
_TABLE_GLOBAL: tuple[str, ...] = GLOBAL_MEASURES + ("pr_ms",)


def interval_table(
    store_or_arrays: Any,
    codes: Sequence[str],
    n_per_code: int = 20,
    lead: str = "II",
    seed: int = 0,
) -> pd.DataFrame:
    """Median measured intervals per condition (neurokit2 on one lead, and the global 12-lead measurer),
    next to the intended values, over a sample of records with that label.

    Parameters
    ----------
    store_or_arrays : a curated store (``.signals`` (N, 12, T) mV, ``.records`` with ``y_<CODE>`` columns,
        ``.fs``), or a tuple ``(signals, labels, fs)`` with labels a DataFrame of ``y_<CODE>`` columns or a
        dict {code: 0/1 array}.
    codes : the conditions to tabulate (rows of the table).
    n_per_code : records measured per condition (a seeded random sample when there are more).
    lead : lead measured.
    seed : seed of the sampling.

    Returns
    -------
    DataFrame indexed by code with columns n_records, n_measured, n_measured_global; hr_bpm, pr_ms, qrs_ms,
    qt_ms, rr_cv (neurokit2 on ``lead``, medians); global_qrs_ms, global_qt_ms, global_sokolow_mv,
    global_limb_qrs_mv (:func:`measure_global`'s measures) and global_pr_ms (the global P wave of
    :func:`measure_leads`, measured in ``n_measured_global_pr`` records; NaN beyond about 230 ms, outside the median
    beat, and NaN in the table when fewer than half the records were measured, as in first-degree block, AF or
    flutter), medians; plus the medians of the intended (ground-truth)
    values gt_hr_bpm, gt_pr_ms, gt_qrs_ms, gt_qt_ms, gt_sokolow_mv, gt_limb_qrs_mv when the records carry
    them. neurokit2's prominence delineator takes the QRS as the bases of the R wave within a 100 ms
    window, so its qrs_ms never exceeds 100 ms: QRS width is checked by the global measurer.
    """
    signals, records, fs = _source_arrays(store_or_arrays)
    rng = np.random.default_rng(seed)
    rows = []
    for code in codes:
        col = f"y_{code}"
        if col not in records.columns:
            raise KeyError(f"no label column {col!r}; available: {[c for c in records.columns if c.startswith('y_')]}")
        idx = np.flatnonzero(records[col].to_numpy() == 1)
        if idx.size > n_per_code:
            idx = np.sort(rng.choice(idx, n_per_code, replace=False))
        measured = [measure_intervals(np.asarray(signals[i]), fs, lead) for i in idx]
        frame = pd.DataFrame(measured, columns=list(MEASURES))
        glob = pd.DataFrame([measure_leads(np.asarray(signals[i]), fs) for i in idx], columns=list(_TABLE_GLOBAL))
        row: dict[str, Any] = {
            "code": code, "n_records": int(idx.size), "n_measured": int(frame["hr_bpm"].notna().sum()),
            "n_measured_global": int(glob["qrs_ms"].notna().sum()),
        }
        for k in MEASURES:
            row[k] = float(frame[k].median()) if frame[k].notna().any() else float("nan")
        row["n_measured_global_pr"] = int(glob["pr_ms"].notna().sum())
        for k in _TABLE_GLOBAL:
            row[f"global_{k}"] = float(glob[k].median()) if glob[k].notna().any() else float("nan")
        if 2 * row["n_measured_global_pr"] < idx.size:  # a median over a selected minority would mislead
            row["global_pr_ms"] = float("nan")
        for k in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "sokolow_mv", "limb_qrs_mv"):
            gt = f"gt_{k}"
            if gt in records.columns:
                values = pd.to_numeric(records[gt].iloc[idx], errors="coerce")
                row[gt] = float(values.median()) if values.notna().any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("code")
