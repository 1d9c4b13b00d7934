"""One simulated recording: conditions -> physiology -> beats -> dipole -> leads -> device -> stored record.

:func:`simulate_record` is the whole chain for one record:

1. the patient's normal physiology (:func:`~ecgstudy.simulate.physiology.baseline_physiology`);
2. the recording's LVEF (:mod:`ecgstudy.simulate.lvef`) and its ECG effects, then the conditions' effects,
   stage by stage (rhythm, shape in the heart's frame, the patient's orientation, body-frame changes,
   secondary then primary repolarisation changes, voltage), then the patient's non-dipolar content
   (:mod:`ecgstudy.simulate.nondipolar`);
3. the beat schedule (sinus with HRV and ectopy, AF, flutter or pacing);
4. the dipole of every beat (with respiratory and beat-to-beat variation) rendered at the device's
   native rate, projected to I, II, V1-V6 through this recording's electrode placement, plus the
   non-dipolar precordial parts and the atrial f/F waves;
5. electrode noise, the device's gain, filters and resampling to ``fs``, an occasional lead-off;
6. quantisation to the device's resolution, III/aVR/aVL/aVF derived exactly from the quantised I/II;
7. ground truth (HR, PR, QRS, QT, axis, rhythm, LVEF, true codes) and the signature masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgstudy.simulate import effects as fx
from ecgstudy.simulate import lvef as lv
from ecgstudy.simulate.conditions import APPLY_ORDER, CATALOGUE, complete_truth, resolve_exclusions
from ecgstudy.simulate.devices import SiteConfig, acquire, analogue_spike_sigma_s, default_sites
from ecgstudy.simulate.leads import frontal_axis_deg, placement_matrix, rotation
from ecgstudy.simulate.masks import signature_rows
from ecgstudy.simulate.noise import electrode_noise, electrodes_to_leads
from ecgstudy.simulate.nondipolar import add_non_dipolar
from ecgstudy.simulate.physiology import (
    FRAMINGHAM_SLOPE_S, WOMEN_PRECORDIAL, Patient, Physiology, baseline_physiology, sample_patient,
    women_qrs_axes,
)
from ecgstudy.simulate.rhythm_effects import spikes
from ecgstudy.simulate.rhythm import (
    P_ECTOPIC,
    P_PACED,
    QRS_PACED,
    QRS_PVC,
    Schedule,
    af_schedule,
    fibrillatory_waves,
    flutter_schedule,
    flutter_waves,
    paced_schedule,
    sinus_schedule,
)
from ecgstudy.simulate.waves import PART_P, PART_QRS, PART_ST, PART_T, Waves, render
from ecgstudy.simulate.writer import quantise


PAD_S = 1.0  # simulated margin on each side of the stored 10 s (filters and beats settle outside it)
PLACEMENT_SD = (0.10, 0.02)  # relative lead-vector variation from electrode placement: precordial (default; per site: SiteConfig.placement_sd), limb
LIMB_LOW_VOLTAGE_MV = 0.5  # QRS amplitude criterion of low voltage in every limb lead


@dataclass
class SimulatedRecord:
    """A simulated 12-lead recording and its ground truth.

    Attributes
    ----------
    signal : (12, n) float64, mV, at ``fs`` Hz, leads I, II, III, aVR, aVL, aVF, V1-V6, exactly as
        stored (quantised to the device resolution; III, aVR, aVL, aVF derived from I and II).
    counts : (12, n) int32 ADC units at gain 1000 (1 unit = 1 uV), what the WFDB file holds.
    fs : sampling rate, Hz.
    truth : ground truth: hr_bpm, pr_ms (nan without a P-QRS relation), qrs_ms, qt_ms, qtc_ms,
        axis_deg, rhythm (SR/SBRAD/STACH/AFIB/AFLT/PACE), sokolow_mv, limb_qrs_mv, lvef (%), lvef40
        (1 when LVEF <= 40 %), codes
        ({code: severity}, including the derived SR/NORM/LVOLT).
    masks : signature-mask rows (code, lead, start_s, end_s).
    physiology, schedule : the simulated heart and its beat timing (for inspection and tests).
    lead_off : name of a flat (disconnected) lead, or None.
    """

    signal: np.ndarray
    counts: np.ndarray
    fs: int
    truth: dict
    masks: list[tuple[str, str, float, float]]
    physiology: Physiology
    schedule: Schedule
    lead_off: str | None


def orientation_matrix(phys: Physiology, axis_deg: float | None = None) -> np.ndarray:
    """Rotation taking the heart's frame to the body frame for this patient.

    A horizontal-plane rotation (moves the precordial transition), then a frontal rotation chosen so that
    the patient's normal QRS has the frontal axis ``axis_deg`` (default the patient's, ``phys.axis_deg``).
    """
    target = phys.axis_deg if axis_deg is None else float(axis_deg)
    r_h = rotation("y", phys.horizontal_deg)
    area = r_h @ phys.qrs.area(PART_QRS)[:3]
    total = 0.0
    for _ in range(6):
        axis = frontal_axis_deg(rotation("z", total) @ area)
        delta = (target - axis + 180.0) % 360.0 - 180.0
        if abs(delta) < 0.2:
            break
        total += delta
    return rotation("z", total) @ r_h


def build_physiology(
    rng: np.random.Generator, conditions: dict[str, float], patient: Patient, dower: np.ndarray | None = None
) -> Physiology:
    """The physiology of one recording of ``patient`` with ``conditions`` ({code: severity in [0, 1]}).

    ``dower``: the recording's lead transfer matrix (criteria read on the leads, such as the LAFB axis or
    low voltage, are met on this recording's own leads); default the standard Dower matrix.
    """
    unknown = sorted(set(conditions) - set(CATALOGUE))
    if unknown:
        raise ValueError(f"unknown condition code(s) {unknown}; known codes: {sorted(CATALOGUE)}")
    for code, sev in conditions.items():
        if not 0.0 <= float(sev) <= 1.0:
            raise ValueError(f"severity of {code!r} must lie in [0, 1], got {sev}")
    conditions = resolve_exclusions(conditions)
    phys = baseline_physiology(rng, patient)
    phys.dower = dower
    phys.notes["qrs_amp"] = patient.morphology.qrs_amp
    phys.notes["female"] = patient.sex == 1
    lv.apply(phys, lv.lvef_of(patient, conditions), rng)
    orient = orientation_matrix(phys)
    # the T wave keeps the orientation of the patient's heart without the QRS axis's leftward shift with age
    # (physiology.QRS_AXIS_PER_YEAR): the frontal T axis does not change with age, the QRS-T angle widens
    young = orientation_matrix(phys, phys.axis_deg + patient.morphology.t_turn_deg)

    def run(stage: str) -> None:
        for code in APPLY_ORDER:
            if code in conditions and CATALOGUE[code].stage == stage:
                CATALOGUE[code].effect(phys, float(conditions[code]), rng)

    run("rhythm")
    run("shape")
    for waves in (phys.p, phys.qrs, phys.t, phys.pvc, phys.pac_p):
        if waves is not None:
            waves.transform_dipole(orient)
    phys.t.transform_dipole(young @ orient.T, (PART_T,))
    p_turn = rotation("z", -0.5 * (phys.axis_deg - 55.0))  # the atria turn half as much as the ventricles
    phys.p.transform_dipole(p_turn)
    if phys.pac_p is not None:
        phys.pac_p.transform_dipole(p_turn)
    phys.oriented = True
    if patient.sex == 1:  # women's inferior and posterior QRS forces fall with age, the leftward do not
        phys.qrs.transform_dipole(np.diag(women_qrs_axes(patient.age)), (PART_QRS,))
    if phys.qrs_axis_target is not None and "LAFB" not in conditions:
        fx.rotate_qrs_to_axis(phys, phys.qrs_axis_target)
    run("body")
    fx.repolarisation_secondary(phys)
    run("repolarisation")
    add_non_dipolar(phys, patient.morphology.shape_seed)
    run("final")  # after the non-dipolar parts: final effects (e.g. BL_LVH) target voltages read on all leads
    return phys


def make_schedule(rng: np.random.Generator, phys: Physiology, duration_s: float) -> Schedule:
    t0, t1 = -PAD_S, duration_s + PAD_S
    if phys.rhythm == "afib":
        return af_schedule(rng, phys.hr_bpm, phys.atrial["rr_cv"], t0, t1)
    if phys.rhythm == "aflt":
        a = phys.atrial
        return flutter_schedule(rng, a["cl_s"], a["ratios"], a["av_delay_s"], a["phase_s"], t0, t1)
    if phys.rhythm == "paced":
        p = phys.pacing
        return paced_schedule(rng, p["rate_bpm"], p["av_delay_s"], p["dual"], t0, t1)
    return sinus_schedule(rng, phys, t0, t1, duration_s)


def _beat_waves(rng: np.random.Generator, template: Waves, times: np.ndarray, qt_shift: np.ndarray,
                resp: tuple[float, float], amp_sd: float) -> Waves:
    """Copies of ``template`` at ``times`` with per-beat QT shift, respiratory and random variation."""
    b, k = times.size, len(template)
    if b == 0 or k == 0:
        return Waves.empty()
    resp_hz, resp_phase = resp
    wave = np.sin(2.0 * np.pi * resp_hz * times + resp_phase)
    scale = 1.0 + 0.04 * wave + amp_sd * rng.standard_normal(b)
    rot = np.stack([rotation("x", 2.5 * w) @ rotation("z", 3.0 * w) for w in wave])  # (b, 3, 3)
    late = np.isin(template.part, (PART_ST, PART_T))
    t = template.t[None, :] + times[:, None] + np.where(late[None, :], qt_shift[:, None], 0.0)
    width = np.broadcast_to(template.width, (b, k)).copy()
    plateau_st = template.plateau & (template.part == PART_ST)
    width[:, plateau_st] += qt_shift[:, None]
    t[:, plateau_st] -= qt_shift[:, None]  # ST plateaus keep their start at the J point
    amp = np.broadcast_to(template.amp, (b, k, template.amp.shape[1])).copy()
    amp[:, :, :3] = np.einsum("bij,bkj->bki", rot, amp[:, :, :3])
    amp *= scale[:, None, None]
    return Waves(
        t.ravel(), np.tile(template.sl, b), np.tile(template.sr, b), np.maximum(width, 0.0).ravel(),
        amp.reshape(b * k, -1), np.tile(template.part, b), np.tile(template.plateau, b),
    )


def record_waves(rng: np.random.Generator, phys: Physiology, schedule: Schedule, spike_sigma_s: float) -> Waves:
    """All wave components of the recording (record time), beat by beat."""
    resp = (phys.resp_hz, float(rng.uniform(0.0, 2.0 * np.pi)))
    amp_sd = 0.03 if phys.rhythm == "afib" else 0.012
    v_spike, a_spike = spikes(phys, spike_sigma_s)
    normal = Waves.concat([phys.qrs, phys.t])
    parts = []
    kinds = schedule.qrs_kind
    qt_shift = FRAMINGHAM_SLOPE_S * (schedule.rr_prev - 1.0)
    for kind, template in ((0, normal), (QRS_PACED, Waves.concat([normal, v_spike]))):
        sel = kinds == kind
        parts.append(_beat_waves(rng, template, schedule.qrs_t[sel], qt_shift[sel], resp, amp_sd))
    if phys.pvc is not None:
        sel = kinds == QRS_PVC
        parts.append(_beat_waves(rng, phys.pvc, schedule.qrs_t[sel], np.zeros(sel.sum()), resp, amp_sd))
    pk = schedule.p_kind
    no_shift = np.zeros(pk.size)
    sinus_p = phys.p.of(PART_P)
    parts.append(_beat_waves(rng, sinus_p, schedule.p_t[pk == 0], no_shift[pk == 0], resp, 0.03))
    if phys.pac_p is not None:
        parts.append(_beat_waves(rng, phys.pac_p, schedule.p_t[pk == P_ECTOPIC], no_shift[pk == P_ECTOPIC], resp, 0.03))
    paced_p = Waves.concat([sinus_p, a_spike])
    parts.append(_beat_waves(rng, paced_p, schedule.p_t[pk == P_PACED], no_shift[pk == P_PACED], resp, 0.03))
    return Waves.concat(parts)


def atrial_activity(rng: np.random.Generator, phys: Physiology, t: np.ndarray, dower: np.ndarray) -> np.ndarray | None:
    """AF f-waves or flutter F-waves on I, II, V1-V6 (shape (8, n), mV), or None."""
    a = phys.atrial
    if not a:
        return None
    if a["kind"] == "f":
        wave = fibrillatory_waves(rng, t, a["f_hz"], a["amp_mv"])
        out = np.outer(dower @ a["direction"], wave)
        out[2] += a.get("v1_local", 0.0) * wave  # near-field right-atrial activity in V1
        return out
    wave = flutter_waves(t, a["cl_s"], a["phase_s"], a["amp_mv"])
    return np.outer(dower @ a["direction"], wave)


def _rhythm_label(phys: Physiology, codes: dict[str, float]) -> str:
    for code in ("AFIB", "AFLT", "PACE", "SBRAD", "STACH"):
        if code in codes:
            return code
    return "SR"


def ground_truth(phys: Physiology, schedule: Schedule, dower: np.ndarray, codes: dict[str, float],
                 duration_s: float) -> dict:
    """The intended physiology of the record (what an ideal measurer should find)."""
    visible = (schedule.qrs_t >= 0.0) & (schedule.qrs_t < duration_s)
    rr = np.diff(schedule.qrs_t[visible])
    hr = 60.0 / float(np.mean(rr)) if rr.size else phys.hr_bpm
    normal = visible & (schedule.qrs_kind != QRS_PVC)
    qt = phys.qt_ref_s() + FRAMINGHAM_SLOPE_S * (schedule.rr_prev[normal] - 1.0)
    has_p = phys.rhythm == "sinus" or (phys.rhythm == "paced" and phys.pacing.get("dual"))
    qrs_12 = fx.qrs_leads(phys, dower)
    p2p = qrs_12.max(axis=1) - qrs_12.min(axis=1)
    sokolow = float(-qrs_12[6].min() + max(qrs_12[10].max(), qrs_12[11].max()))
    qt_med = float(np.median(qt)) if qt.size else phys.qt_ref_s()
    mean_rr = float(np.mean(rr)) if rr.size else phys.rr_s
    pr_s = phys.pr_s if phys.rhythm == "sinus" else phys.pacing.get("av_delay_s", np.nan)
    return {
        "hr_bpm": hr,
        "pr_ms": 1000.0 * pr_s if has_p else np.nan,
        "qrs_ms": 1000.0 * phys.qrs_duration_s(),
        "qt_ms": 1000.0 * qt_med,
        "qtc_ms": 1000.0 * (qt_med + FRAMINGHAM_SLOPE_S * (1.0 - mean_rr)),
        "axis_deg": frontal_axis_deg(phys.qrs.area(PART_QRS)[:3], dower),
        "rhythm": _rhythm_label(phys, codes),
        "sokolow_mv": sokolow,
        "limb_qrs_mv": float(p2p[:6].max()),
        "lvef": float(phys.notes.get("lvef", np.nan)),
        "lvef40": int(phys.notes.get("lvef", 100.0) <= lv.LVEF_THRESHOLD),
        "codes": codes,
    }


def simulate_record(
    rng: np.random.Generator,
    conditions: dict[str, float],
    patient: Patient | None = None,
    device: SiteConfig | None = None,
    fs: int = 500,
    duration_s: float = 10.0,
    noise: bool = True,
) -> SimulatedRecord:
    """Simulate one 12-lead recording.

    Parameters
    ----------
    rng : the record's own random generator (every draw comes from it: same state, same record).
    conditions : {SCP code: severity in [0, 1]}; 0 = borderline, 1 = florid. Codes a present condition
        excludes are dropped (e.g. 1AVB under AFIB); SR and NORM are derived, not needed here.
    patient : the person (default: drawn from ``rng`` with the default site's demographics).
    device : the site/device recording it (default: the first default site).
    fs : stored sampling rate, Hz (the device acquires at its native rate and resamples).
    duration_s : length of the record, s.
    noise : False gives a noise-free, never lead-off recording (still filtered by the device).

    Returns
    -------
    SimulatedRecord with ``signal`` of shape (12, round(duration_s * fs)) in mV.
    """
    device = device or default_sites()[0]
    if patient is None:
        patient = sample_patient(rng, age_mean=device.age_mean, age_sd=device.age_sd, female_frac=device.female_frac)
    dower = placement_matrix(rng, device.placement_sd, PLACEMENT_SD[1])
    if patient.sex == 1:  # a woman's chest leads see the heart smaller (breast tissue, heart-to-chest distance)
        dower = dower * np.array([1.0, 1.0] + [WOMEN_PRECORDIAL] * 6)[:, None]
    phys = build_physiology(rng, conditions, patient, dower)
    codes = resolve_exclusions({k: float(v) for k, v in conditions.items()})
    schedule = make_schedule(rng, phys, duration_s)

    native = float(device.native_fs)
    n_native = int(round((duration_s + 2 * PAD_S) * native))
    chans = render(record_waves(rng, phys, schedule, analogue_spike_sigma_s(device)), -PAD_S, native, n_native)
    leads8 = dower @ chans[:3]
    leads8[2:] += chans[3:]
    t_grid = -PAD_S + np.arange(n_native) / native
    atrial = atrial_activity(rng, phys, t_grid, dower)
    if atrial is not None:
        leads8 += atrial
    lead_off = None
    if noise:
        leads8 += electrodes_to_leads(electrode_noise(rng, n_native, native, device.noise_levels()))
    stored = acquire(leads8, device, fs)
    pad = int(round(PAD_S * fs))
    n = int(round(duration_s * fs))
    stored = stored[:, pad : pad + n]
    if noise and rng.random() < device.lead_off_prob:
        k = int(rng.integers(2, 8))  # one precordial electrode off: its lead is flat
        stored[k] = 0.0
        lead_off = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")[k]
    counts = quantise(stored, device.lsb_uv)

    truth = ground_truth(phys, schedule, dower, {}, duration_s)
    if truth["limb_qrs_mv"] < LIMB_LOW_VOLTAGE_MV and phys.rhythm != "paced" and "LVOLT" not in codes:
        codes["LVOLT"] = 0.0  # the criterion is met by this patient's own small voltages
    codes = complete_truth(codes)
    truth["codes"] = codes
    truth["rhythm"] = _rhythm_label(phys, codes)
    masks = signature_rows(codes, phys, schedule, dower, duration_s)
    return SimulatedRecord(counts / 1000.0, counts, int(fs), truth, masks, phys, schedule, lead_off)

