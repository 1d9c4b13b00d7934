"""Quality checks: each exclusion reason, and what must pass."""

from __future__ import annotations

import numpy as np
import pytest

from ecgstudy.config import ConfigError, from_dict
from ecgstudy.data.quality import QCConfig, check, saturated_leads

FS = 500


def _ecg_like(duration_s: float = 10.0, seed: int = 0) -> np.ndarray:
    """(12, n) mV: sharp periodic spikes + a T-like bump + 5 uV noise, per-lead gains (some negative)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * FS)) / FS
    phase = (t * 1.2) % 1.0
    beat = np.exp(-((phase - 0.3) ** 2) / 2e-4) + 0.3 * np.exp(-((phase - 0.6) ** 2) / 4e-3)
    gains = np.linspace(0.3, 1.5, 12) * np.where(np.arange(12) % 3 == 1, -1, 1)
    return gains[:, None] * beat[None, :] + rng.normal(0, 0.005, (12, len(t)))


def _mask(n_missing: int = 0) -> np.ndarray:
    return np.arange(12) >= n_missing


def test_clean_record_passes():
    result = check(_ecg_like(), _mask(), FS, 10.0, QCConfig())
    assert not result.excluded and result.mask.all() and result.flags == []


def test_noise_free_positive_waves_on_a_flat_baseline_are_not_clipping():
    x = np.round(np.abs(_ecg_like()) * 1000) / 1000  # exact 1 uV steps, baseline exactly 0 = the minimum
    x[:, ::2] = np.round(np.clip(x[:, ::2] - 0.005, 0, None), 3)
    assert not saturated_leads(x, FS, 0.1, 0.0005).any()


def test_clipped_lead_is_saturated():
    x = _ecg_like()
    t = np.arange(x.shape[1]) / FS
    x[1] = np.clip(x[1] + 3.0 * np.sin(2 * np.pi * 0.15 * t), -2.0, 2.0)  # wander excursions hit the rails
    result = check(x, _mask(), FS, 10.0, QCConfig())
    assert result.reason == "saturated_lead" and "II" in result.detail


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda x: x[:, :0], "empty_record"),
        (lambda x: np.where(np.arange(x.shape[1]) == 50, np.inf, x), "non_finite"),
        (lambda x: x[:, : 6 * FS], "wrong_duration"),
        (lambda x: np.vstack([x[:4], np.zeros((1, x.shape[1])) + 0.001, x[5:]]), "flat_lead"),
        (lambda x: np.where((np.arange(12) == 8)[:, None] & (np.arange(x.shape[1]) == 100), 25.0, x),
         "implausible_amplitude"),
    ],
)
def test_exclusion_reasons(edit, reason):
    result = check(edit(_ecg_like()), _mask(), FS, 10.0, QCConfig())
    assert result.reason == reason


def test_duration_tolerance_can_be_switched_off():
    x = _ecg_like(6.0)
    assert check(x, _mask(), FS, 10.0, QCConfig()).reason == "wrong_duration"
    assert not check(x, _mask(), FS, 10.0, QCConfig(duration_tolerance_s=None)).excluded


def test_missing_leads_against_min_leads():
    x = _ecg_like()
    x[:2] = np.nan
    assert check(x, _mask(2), FS, 10.0, QCConfig()).reason == "missing_leads"
    assert not check(x, _mask(2), FS, 10.0, QCConfig(min_leads=10)).excluded


def test_mask_policy_masks_bad_leads_and_flags():
    x = _ecg_like()
    x[7] = 0.0
    result = check(x, _mask(), FS, 10.0, QCConfig(bad_lead_policy="mask", min_leads=11))
    assert not result.excluded
    assert result.mask.sum() == 11 and not result.mask[7]
    assert result.flags == [("flat_lead", "lead(s) V2 masked")]
    strict = check(x, _mask(), FS, 10.0, QCConfig(bad_lead_policy="mask"))
    assert strict.reason == "missing_leads"


def test_qc_config_is_validated():
    with pytest.raises(ConfigError, match="min_leads"):
        from_dict(QCConfig, {"min_leads": 0}, "curate.qc")
    with pytest.raises(ConfigError, match="bad_lead_policy"):
        from_dict(QCConfig, {"bad_lead_policy": "ignore"}, "curate.qc")
