"""Recording noise, generated per electrode and combined into leads like a real amplifier does.

Noise arises at the skin-electrode interface and in the muscles under each electrode, so it is drawn for
the nine electrodes (RA, LA, LL, V1..V6) and turned into leads by the lead definitions
(I = LA - RA, II = LL - RA, Vk = Ek - Wilson central terminal): the limb leads then share their noise
exactly as real ones do, and the derived limb leads stay consistent.

The four noise types of the MIT-BIH Noise Stress Test Database (Moody et al. 1984) and of routine
practice: baseline wander (respiration and slow electrode drift, below about 0.5 Hz), powerline
interference (50 or 60 Hz with a weaker third harmonic), muscle (EMG) noise (broadband 20 Hz up, in
bursts) and electrode motion artefacts (sudden baseline shifts that relax over 0.2-1 s). Amplitudes are
per-site settings (:mod:`ecgstudy.simulate.devices`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class NoiseLevels:
    """Noise amplitudes of one recording."""

    wander_mv: float = 0.1  # baseline wander, typical peak amplitude per electrode
    emg_uv: float = 10.0  # muscle noise RMS per electrode (limb electrodes x1.5)
    mains_hz: float = 50.0  # powerline frequency
    mains_uv: float = 10.0  # powerline amplitude per electrode (differential residue)
    motion_prob: float = 0.05  # probability of an electrode motion artefact in the recording


def electrode_noise(rng: np.random.Generator, n: int, fs: float, levels: NoiseLevels) -> np.ndarray:
    """Noise potentials of the nine electrodes.

    Parameters
    ----------
    n, fs : number of samples and sampling rate (Hz) of the grid.

    Returns
    -------
    array of shape (9, n) in mV, rows in :data:`ELECTRODES` order.
    """
    t = np.arange(n) / fs

    # baseline wander: 1/f^2 drift below ~0.05-0.5 Hz (drawn on a coarse 10 Hz grid and interpolated)
    # plus breathing at 0.15-0.4 Hz (shared phase, each electrode its own size)
    n_low = int(np.ceil(t[-1] * 10.0)) + 2 if n > 1 else 2
    low_freqs = np.fft.rfftfreq(n_low, 0.1)
    drift_shape = np.where(low_freqs > 0, 1.0 / (1.0 + (low_freqs / 0.05) ** 2), 0.0)
    drift_low = np.fft.irfft(np.fft.rfft(rng.standard_normal((9, n_low)), axis=-1) * drift_shape, n_low, axis=-1)
    drift_low /= max(float(np.std(drift_low)), 1e-12)
    t_low = np.arange(n_low) * 0.1
    drift = np.stack([np.interp(t, t_low, d) for d in drift_low])
    resp_hz = rng.uniform(0.15, 0.4)
    resp = np.sin(2.0 * np.pi * resp_hz * t + rng.uniform(0, 2 * np.pi))
    wander = levels.wander_mv * (0.6 * drift + rng.uniform(0.2, 1.0, (9, 1)) * resp[None]) / 1.6

    # muscle noise: white noise band-limited to 20 Hz .. 0.45 fs, in bursts; limb electrodes carry more
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    band = ((freqs >= 20.0) & (freqs <= 0.45 * fs)).astype(float)
    emg = np.fft.irfft(np.fft.rfft(rng.standard_normal((9, n)), axis=-1) * band, n, axis=-1)
    emg /= max(float(np.std(emg)), 1e-12)
    burst_rate = rng.uniform(0.05, 0.5, 9)
    burst_phase = rng.uniform(0, 2 * np.pi, 9)
    burst = 0.5 + np.abs(np.sin(2.0 * np.pi * burst_rate[:, None] * t_low[None] + burst_phase[:, None]))
    burst = np.stack([np.interp(t, t_low, b) for b in burst])
    limb = np.array([1.5, 1.5, 1.5, 1, 1, 1, 1, 1, 1.0])
    emg *= burst * (levels.emg_uv / 1000.0 * limb * rng.uniform(0.5, 1.5, 9))[:, None]

    # powerline with its third harmonic; each electrode sees its own residue of the common-mode field
    phase = 2.0 * np.pi * (levels.mains_hz + rng.normal(0.0, 0.02)) * t + rng.uniform(0, 2 * np.pi)
    mains = np.sin(phase)[None] + 0.2 * np.sin(3.0 * phase + rng.uniform(0, 2 * np.pi))[None]
    mains = mains * (levels.mains_uv / 1000.0) * rng.uniform(0.2, 1.0, (9, 1))

    noise = wander + emg + mains
    if rng.random() < levels.motion_prob:
        noise[int(rng.integers(9))] += motion_artefact(rng, t)
    return noise


def motion_artefact(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """One electrode motion artefact: a baseline step of 0.2-1.5 mV relaxing with tau 0.2-1 s."""
    start = rng.uniform(t[0], t[-1])
    tau = rng.uniform(0.2, 1.0)
    size = rng.uniform(0.2, 1.5) * rng.choice([-1.0, 1.0])
    d = t - start
    step = np.where(d >= 0, np.exp(-np.clip(d, 0, None) / tau), 0.0)
    wobble = np.where(d >= 0, np.sin(2.0 * np.pi * rng.uniform(2, 6) * d) * np.exp(-np.clip(d, 0, None) / 0.08), 0.0)
    return size * (step + 0.4 * wobble)


def electrodes_to_leads(electrodes: np.ndarray) -> np.ndarray:
    """Lead potentials from electrode potentials.

    Parameters
    ----------
    electrodes : array of shape (9, n), rows RA, LA, LL, V1..V6 (mV).

    Returns
    -------
    array of shape (8, n): I, II, V1..V6 (mV).
    """
    ra, la, ll = electrodes[0], electrodes[1], electrodes[2]
    wct = (ra + la + ll) / 3.0
    out = np.empty((8, electrodes.shape[1]))
    out[0] = la - ra
    out[1] = ll - ra
    out[2:] = electrodes[3:] - wct
    return out
