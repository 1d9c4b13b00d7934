"""Harmonisation: lead names and order, units, resampling, length, filters, normalisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ecgstudy.data import preprocess as pp
from ecgstudy.data.curation import CurateConfig


@pytest.mark.parametrize("name, std", [("AVR", "aVR"), ("avr", "aVR"), ("aVL", "aVL"), ("v1", "V1"), (" II ", "II")])
def test_lead_names_normalise(name, std):
    assert pp.standard_lead_name(name) == std


def test_unknown_lead_names_are_not_standard():
    assert pp.standard_lead_name("MLII") is None


def test_reorder_to_standard_with_missing_leads_nan():
    names = ["V6", "AVR", "I", "MLII"]
    data = np.array([[6.0] * 5, [3.0] * 5, [0.0] * 5, [9.0] * 5])
    out, mask = pp.to_standard_leads(data, names)
    assert out.shape == (12, 5)
    assert mask.tolist() == [True, False, False, True] + [False] * 7 + [True]
    assert out[0, 0] == 0.0 and out[3, 0] == 3.0 and out[11, 0] == 6.0
    assert np.isnan(out[1]).all()


def test_entirely_nan_lead_counts_as_missing():
    data = np.zeros((12, 4))
    data[5] = np.nan
    _, mask = pp.to_standard_leads(data, pp.STANDARD_LEADS)
    assert mask.sum() == 11 and not mask[5]


def test_two_leads_with_one_name_raise():
    with pytest.raises(ValueError, match="aVR"):
        pp.to_standard_leads(np.zeros((2, 3)), ["AVR", "avr"])


def test_units_convert_to_millivolts():
    data = np.ones((3, 2))
    out = pp.to_millivolts(data, ["uV", "mV", "V"])
    assert out[:, 0].tolist() == [1e-3, 1.0, 1e3]
    with pytest.raises(ValueError, match="furlong"):
        pp.to_millivolts(data, ["furlong", "mV", "mV"])


def _dominant_frequency(x: np.ndarray, fs: float) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / fs)[np.argmax(spectrum)])


@pytest.mark.parametrize("fs_in, fs_out", [(500, 100), (360, 100), (100, 500), (257, 100)])
def test_resampling_keeps_frequency_and_amplitude(fs_in, fs_out):
    t = np.arange(int(10 * fs_in)) / fs_in
    x = np.stack([0.8 * np.sin(2 * np.pi * 5.0 * t), 1.5 * np.sin(2 * np.pi * 12.5 * t)])
    y = pp.resample(x, fs_in, fs_out)
    assert y.shape == (2, int(np.ceil(x.shape[1] * fs_out / fs_in)))
    core = y[:, fs_out : -fs_out]  # away from the edges
    assert _dominant_frequency(core[0], fs_out) == pytest.approx(5.0, abs=0.15)
    assert _dominant_frequency(core[1], fs_out) == pytest.approx(12.5, abs=0.15)
    assert np.abs(core[0]).max() == pytest.approx(0.8, rel=0.02)
    assert np.abs(core[1]).max() == pytest.approx(1.5, rel=0.02)
    t_out = np.arange(y.shape[1]) / fs_out
    np.testing.assert_allclose(core[0], (0.8 * np.sin(2 * np.pi * 5.0 * t_out))[fs_out:-fs_out], atol=0.02)


def test_resampling_keeps_missing_leads_nan():
    x = np.vstack([np.ones(500), np.full(500, np.nan)])
    y = pp.resample(x, 500, 100)
    assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()


def test_fit_length_crops_centre_and_pads_with_zeros():
    x = np.arange(10.0)[None, :].repeat(2, axis=0)
    out, offset = pp.fit_length(x, 6)
    assert offset == 2 and out[0].tolist() == [2, 3, 4, 5, 6, 7]
    out, offset = pp.fit_length(x, 6, "start_crop_or_pad")
    assert offset == 0 and out[0].tolist() == [0, 1, 2, 3, 4, 5]
    x[1] = np.nan
    out, offset = pp.fit_length(x, 14)
    assert offset == -2 and out[0].tolist() == [0, 0] + list(range(10)) + [0, 0]
    assert np.isnan(out[1]).all()
    with pytest.raises(ValueError, match="length policy"):
        pp.fit_length(x, 6, "stretch")


def test_bandpass_removes_wander_and_notch_removes_mains():
    fs = 500
    t = np.arange(10 * fs) / fs
    ecg_like = 0.5 * np.sin(2 * np.pi * 10 * t)
    x = np.stack([ecg_like + 2.0 + 1.0 * np.sin(2 * np.pi * 0.1 * t), ecg_like + 0.3 * np.sin(2 * np.pi * 50 * t)])
    bp = pp.bandpass(x[:1], fs, 0.67, 40.0)
    core = slice(fs, -fs)
    np.testing.assert_allclose(bp[0, core], ecg_like[core], atol=0.05)
    notched = pp.notch(x[1:], fs, 50.0)
    np.testing.assert_allclose(notched[0, core], ecg_like[core], atol=0.05)


def test_median_baseline_removal_takes_out_a_step():
    fs = 100
    x = np.concatenate([np.zeros(500), np.ones(500)])[None, :]
    out = pp.remove_baseline_median(x, fs, 0.4)
    assert np.abs(out[0, :480]).max() == 0 and np.abs(out[0, 530:]).max() == 0


def test_harmonise_output_spec():
    fs = 500
    x = np.random.default_rng(0).normal(size=(12, 5200))
    x[4] = np.nan
    out, offset_s = pp.harmonise(x, fs, fs_out=100, n_samples=1000, bandpass_hz=(0.5, 40.0), notch_hz=50.0)
    assert out.dtype == np.float32 and out.shape == (12, 1000)
    assert offset_s == pytest.approx(0.2)
    assert np.isnan(out[4]).all() and np.isfinite(np.delete(out, 4, axis=0)).all()


def test_normalise_per_lead_and_record():
    rng = np.random.default_rng(1)
    x = (rng.normal(3.0, 2.0, size=(12, 400)) * np.arange(1, 13)[:, None]).astype(np.float32)
    x[2] = np.nan
    per_lead = pp.normalise(x, "per_lead_zscore")
    present = np.delete(per_lead, 2, axis=0)
    np.testing.assert_allclose(present.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(present.std(axis=1), 1, atol=1e-4)
    assert (per_lead[2] == 0).all()
    record = pp.normalise(x, "record_zscore")
    whole = np.delete(record, 2, axis=0)
    assert whole.mean() == pytest.approx(0, abs=1e-5) and whole.std() == pytest.approx(1, abs=1e-4)
    assert np.delete(record, 2, axis=0).std(axis=1).std() > 0.1  # leads keep their relative scale
    none = pp.normalise(x, "none")
    np.testing.assert_array_equal(np.delete(none, 2, axis=0), np.delete(x, 2, axis=0))
    masked = pp.normalise(np.nan_to_num(x), "none", mask=np.arange(12) != 7)
    assert (masked[7] == 0).all() and (masked[2] == 0).all()
    with pytest.raises(ValueError, match="normalisation"):
        pp.normalise(x, "minmax")


def test_flat_lead_normalises_without_blowing_up():
    out = pp.normalise(np.zeros((12, 10), np.float32), "per_lead_zscore")
    assert np.isfinite(out).all() and (out == 0).all()


def test_presets_name_only_curate_fields():
    fields = {f.name for f in dataclasses.fields(CurateConfig)}
    for name, preset in pp.PRESETS.items():
        assert set(preset) <= fields, name
        cfg = CurateConfig(preset=name).resolved()
        assert cfg.fs == preset["fs"] and cfg.normalise == preset["normalise"]
    assert CurateConfig(preset="ecgfounder").resolved().n_samples == 5000
