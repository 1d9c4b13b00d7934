"""Recording sites and their devices: acquisition rate, filters, gain, resolution, noise, case mix.

Every site acquires at its native sampling rate with its own analogue bandwidth, filters and mains
frequency, then stores the record at 500 Hz like PTB-XL. The differences give the external site a real
domain shift: a 250 Hz device with a 0.5-40 Hz "monitoring" filter and a mains notch loses the QRS
notches and distorts the ST segment; a 1000 Hz 60 Hz-mains device keeps more high-frequency content.

Diagnostic bandwidth 0.05-150 Hz is the AHA recommendation (Kligfield et al. 2007, Part I); 0.5-40 Hz is
a common monitoring/"filtered" setting that the same document warns distorts ST segments and QRS
amplitude. Stored resolution: IEC 60601-2-25 requires <= 5 uV per LSB.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from ecgstudy.simulate.noise import NoiseLevels
from ecgstudy.simulate.writer import resample


@dataclass(frozen=True)
class SiteConfig:
    """One recording site with its device (a params.yaml ``simulate.sites`` entry)."""

    name: str = "A"  # site label (documentation; the database stores the site's index)
    device: str = "SIM-500"  # device model written to ptbxl_database.csv's ``device`` column
    weight: float = 1.0  # share of the cohort's patients recorded at this site (relative)
    native_fs: int = 500  # acquisition sampling rate, Hz (stored records are resampled to simulate.fs)
    highpass_hz: float = 0.05  # baseline high-pass cut-off, Hz (0.05 = AHA diagnostic)
    lowpass_hz: float = 150.0  # low-pass / anti-alias cut-off, Hz (150 = AHA diagnostic)
    notch: bool = False  # mains notch filter on
    mains_hz: float = 50.0  # powerline frequency of the site's country
    mains_uv: float = 10.0  # powerline residue per electrode, uV
    emg_uv: float = 8.0  # muscle noise RMS per electrode, uV
    wander_mv: float = 0.1  # baseline wander amplitude per electrode, mV
    motion_prob: float = 0.04  # probability of an electrode-motion artefact per record
    lead_off_prob: float = 0.01  # probability that one precordial electrode is off (flat lead)
    gain: float = 1.0  # amplifier calibration factor (1.0 = exact)
    lsb_uv: int = 2  # stored resolution in uV per ADC unit step (even: derived limb leads stay exact)
    placement_sd: float = 0.10  # precordial electrode placement variability: relative sd of V1-V6 lead vectors
    age_mean: float = 62.0  # patient age distribution, years
    age_sd: float = 17.0  # its spread, years
    female_frac: float = 0.48  # share of women
    prevalence: dict[str, float] = field(default_factory=dict)  # case-mix multipliers per SCP code
    convention: str = "sokolow"  # how the site's cardiologists read: sokolow | cornell | strict (annotate.py)

    def validate(self) -> None:
        if self.native_fs < 100:
            raise ValueError(f"site {self.name!r}: native_fs must be >= 100 Hz, got {self.native_fs}")
        if not 0.0 < self.highpass_hz < self.lowpass_hz < self.native_fs / 2.0:
            raise ValueError(
                f"site {self.name!r}: need 0 < highpass_hz < lowpass_hz < native_fs/2, got "
                f"{self.highpass_hz}, {self.lowpass_hz}, {self.native_fs}"
            )
        if self.lsb_uv < 2 or self.lsb_uv % 2:
            raise ValueError(f"site {self.name!r}: lsb_uv must be an even number of uV >= 2, got {self.lsb_uv}")
        if self.mains_hz not in (50.0, 60.0):
            raise ValueError(f"site {self.name!r}: mains_hz must be 50 or 60, got {self.mains_hz}")
        if self.weight <= 0 or not 0.0 <= self.female_frac <= 1.0:
            raise ValueError(f"site {self.name!r}: weight must be > 0 and female_frac in [0, 1]")
        if not 0.0 <= self.placement_sd <= 0.5:
            raise ValueError(f"site {self.name!r}: placement_sd must lie in [0, 0.5], got {self.placement_sd}")
        for p in (self.motion_prob, self.lead_off_prob):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"site {self.name!r}: probabilities must lie in [0, 1]")
        from ecgstudy.simulate.annotate import CONVENTIONS  # annotate -> conditions -> effects: import late

        if self.convention not in CONVENTIONS:
            raise ValueError(f"site {self.name!r}: convention {self.convention!r} unknown; "
                             f"known: {sorted(CONVENTIONS)}")

    def noise_levels(self) -> NoiseLevels:
        return NoiseLevels(self.wander_mv, self.emg_uv, self.mains_hz, self.mains_uv, self.motion_prob)


def default_sites() -> tuple[SiteConfig, ...]:
    """Three sites: a university hospital, a community clinic, and a site abroad (the default device of
    :func:`~ecgstudy.simulate.record.simulate_record`; the study's world is :mod:`ecgstudy.simulate.corpora`)."""
    return (
        SiteConfig(
            name="university", device="SIM-500", weight=0.45, native_fs=500, highpass_hz=0.05, lowpass_hz=150.0,
            mains_hz=50.0, mains_uv=8.0, emg_uv=6.0, wander_mv=0.08, motion_prob=0.03, lead_off_prob=0.005,
            gain=1.0, lsb_uv=2, age_mean=62.0, age_sd=17.0, female_frac=0.48, convention="sokolow",
        ),
        SiteConfig(
            name="community", device="SIM-250F", weight=0.35, native_fs=250, highpass_hz=0.5, lowpass_hz=40.0,
            notch=True, mains_hz=50.0, mains_uv=25.0, emg_uv=14.0, wander_mv=0.2, motion_prob=0.08,
            lead_off_prob=0.015, gain=0.97, lsb_uv=4, age_mean=67.0, age_sd=14.0, female_frac=0.55,
            prevalence={"AFIB": 1.4, "AFLT": 1.3, "LVH": 1.3, "PACE": 1.4, "1AVB": 1.2, "IMI": 0.8, "ASMI": 0.8},
            convention="cornell",
        ),
        SiteConfig(
            name="external", device="SIM-1000X", weight=0.20, native_fs=1000, highpass_hz=0.05,
            lowpass_hz=100.0, mains_hz=60.0, mains_uv=15.0, emg_uv=11.0, wander_mv=0.12, motion_prob=0.05,
            lead_off_prob=0.01, gain=1.04, lsb_uv=2, age_mean=57.0, age_sd=16.0, female_frac=0.42,
            prevalence={"IMI": 1.5, "ASMI": 1.5, "AMI": 1.8, "ISC_": 1.5, "CLBBB": 1.3, "WPW": 1.5, "AFIB": 0.7},
            convention="strict",
        ),
    )


def acquire(leads: np.ndarray, site: SiteConfig, fs_out: int) -> np.ndarray:
    """The device's signal path: amplifier gain, filters at the native rate, resampling to ``fs_out``.

    Parameters
    ----------
    leads : array of shape (L, n) at ``site.native_fs`` Hz in mV (analogue signal plus noise).
    fs_out : stored sampling rate, Hz.

    Returns
    -------
    array of shape (L, n * fs_out / native_fs) at ``fs_out`` Hz in mV.
    """
    fs = float(site.native_fs)
    n = leads.shape[-1]
    x = leads * site.gain
    # Zero-phase filtering (the |H|^2 of a forward-backward pass) in the frequency domain over the record
    # extended by its mirror image: no discontinuity at the ends, so the result looks as if the device's
    # filters had been running long before (no start-up transient of the 3 s high-pass time constant).
    x = np.concatenate([x, x[:, ::-1]], axis=-1)
    gain = _zero_phase_gain(2 * n, fs, site.highpass_hz, site.lowpass_hz, site.mains_hz if site.notch else 0.0)
    x = np.fft.irfft(np.fft.rfft(x, axis=-1) * gain, 2 * n, axis=-1)[:, :n]
    return resample(x, site.native_fs, fs_out)


@functools.lru_cache(maxsize=32)
def _zero_phase_gain(n: int, fs: float, highpass_hz: float, lowpass_hz: float, notch_hz: float) -> np.ndarray:
    """|H(f)|^2 on the rfft grid of ``n`` samples: Butterworth high-pass (order 1) and low-pass (order 4),
    optionally a mains notch (Q = 30); squared because the filters act forward and backward."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    sos = np.concatenate(
        [
            signal.butter(1, highpass_hz, "highpass", fs=fs, output="sos"),
            signal.butter(4, lowpass_hz, "lowpass", fs=fs, output="sos"),
        ]
    )
    gain = np.abs(signal.sosfreqz(sos, worN=freqs, fs=fs)[1]) ** 2
    if notch_hz:
        b, a = signal.iirnotch(notch_hz, 30.0, fs=fs)
        gain *= np.abs(signal.freqz(b, a, worN=freqs, fs=fs)[1]) ** 2
    gain.setflags(write=False)
    return gain


def analogue_spike_sigma_s(site: SiteConfig) -> float:
    """Width (sigma, s) a sub-millisecond pacing spike has after the device's front end."""
    return max(1.0 / (2.0 * np.pi * site.lowpass_hz), 0.35 / site.native_fs)
