"""What each condition does to the physiology of a recording.

Every effect takes the recording's :class:`~ecgstudy.simulate.physiology.Physiology`, the condition's
severity in [0, 1] (0 = borderline, just meeting the criterion; 1 = florid) and a random generator, and
changes the rhythm parameters or the wave components in place. Effects run in stages:

- ``rhythm``: rate and rhythm (SBRAD, STACH, AFIB, AFLT, PACE, 1AVB, ectopy), in
  :mod:`ecgstudy.simulate.rhythm_effects`;
- ``shape``: the activation sequence in the heart's own frame (bundle branch blocks, pre-excitation,
  hypertrophy) before the patient's orientation is applied;
- ``body``: changes fixed to the body frame after orientation: fascicular block (axis), infarct
  territories; then the secondary ST-T changes that the activation sequence implies
  (:func:`repolarisation_secondary`);
- ``repolarisation``: primary ST-T changes (ischaemia, non-specific ST, long QT, the rare conditions);
- ``final``: low voltage (scales the finished beat).

The diagnostic criteria each effect reproduces, with their sources, are listed in SOURCES.md.
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.leads import DOWER, frontal_axis_deg, rotation, twelve_lead_matrix
from ecgstudy.simulate.physiology import Physiology, fit_span
from ecgstudy.simulate.waves import (
    EXTENT,
    PART_P,
    PART_QRS,
    PART_ST,
    PART_T,
    Waves,
    render,
    rotate_to,
    unit,
)

LVH_MAX_LOBE_MV = 3.2  # largest QRS dipole lobe in hypertrophy, mV

# Infarct territories in the body frame (unit vectors pointing at the injured wall).
TERRITORY = {
    "IMI": unit([0.0, 1.0, 0.15]),  # inferior wall: leads II, III, aVF
    "ASMI": unit([-0.35, 0.1, -1.0]),  # anteroseptal: V1-V3
    "AMI": unit([0.45, 0.1, -1.0]),  # anterior: V2-V4
}
# Regional (non-dipolar) weight of each territory on V1..V6; the inferior wall is far from every
# precordial electrode, so an inferior infarct is seen through the dipole only (II, III, aVF).
TERRITORY_LEADS = {
    "IMI": np.zeros(6),
    "ASMI": np.array([0.8, 1.0, 0.7, 0.2, 0.0, 0.0]),  # V1-V3 (V4)
    "AMI": np.array([0.1, 0.6, 1.0, 1.0, 0.4, 0.0]),  # V2-V4 (V5)
}
# Accessory pathway locations (heart frame): direction of the delta wave's initial forces.
PATHWAYS = {
    "left_lateral": (0.5, unit([-0.55, 0.35, -0.75])),  # type A: positive delta in V1, negative in I/aVL
    "posteroseptal": (0.3, unit([0.45, -0.55, -0.7])),  # negative delta in II, III, aVF (pseudo-infarct)
    "right_free_wall": (0.2, unit([0.8, 0.15, 0.55])),  # type B: negative delta in V1, LBBB-like
}


# ----------------------------------------------------------------------------------------- helpers
def qrs_amp(phys: Physiology) -> float:
    """Magnitude scale of the patient's QRS (mV per unit lobe)."""
    return float(phys.notes.get("qrs_amp", 1.0))


def mean_qrs_direction(phys: Physiology) -> np.ndarray:
    """Unit vector of the net (time-integrated) QRS dipole."""
    return unit(phys.qrs.area(PART_QRS)[:3])


def replace_t(phys: Physiology, vector: np.ndarray, sl_s: float, sr_s: float) -> None:
    """Replace the T wave by one lobe of dipole ``vector`` (mV) ending at QT = QTc.

    The T wave starts no earlier than the J point (its upstroke is narrowed when needed): repolarisation
    that overlapped the QRS would widen the QRS a measurer sees.
    """
    keep = phys.t.part != PART_T
    centre = phys.qtc_s - EXTENT * sr_s
    _, j = phys.qrs.onset_offset(PART_QRS)
    sl_s = float(np.clip((centre - j) / EXTENT, 0.3 * sl_s, sl_s))
    t_lobe = Waves.lobes([centre], sl_s, sr_s, np.asarray(vector)[None], PART_T)
    phys.t = Waves.concat([phys.t.select(keep), t_lobe])


def t_vector(phys: Physiology) -> np.ndarray:
    """Net dipole direction-weighted vector of the T wave (mV, peak-amplitude scale)."""
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    return phys.t.amp[sel, :3].sum(axis=0) if sel.any() else np.zeros(3)


ST_RISE_S = 0.006  # time constant of an ST deviation's onset edge, s
ST_LEAD_S = 2.2 * ST_RISE_S  # the edge is centred this much before the J point: 90 % there at J


def add_st(phys: Physiology, vector: np.ndarray | None, local: np.ndarray | None = None) -> None:
    """ST-segment deviation: a plateau present at the J point and lasting into the T wave's peak (dipole
    ``vector`` and/or ``local`` V1..V6 amplitudes, mV).

    The deviation develops during the terminal QRS (its edge is centred :data:`ST_LEAD_S` before the J
    point), as the injury or secondary repolarisation currents do; a step after the J point would widen
    the QRS that a measurer sees.
    """
    _, j = phys.qrs.onset_offset(PART_QRS)
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    t_peak = float(np.max(phys.t.t[sel])) if sel.any() else phys.qtc_s - 0.09
    plateau = Waves.plateau_(j - ST_LEAD_S, t_peak, ST_RISE_S, 0.03, vector, PART_ST, local)
    phys.t = Waves.concat([phys.t, plateau])


def secondary_st_t(phys: Physiology, t_mv: float, st_mv: float, sl_s: float = 0.075, sr_s: float = 0.045) -> None:
    """Repolarisation discordant to the QRS (bundle branch block, pacing, PVC-like activation)."""
    d = mean_qrs_direction(phys)
    replace_t(phys, -t_mv * d, sl_s, sr_s)
    if st_mv > 0:
        add_st(phys, -st_mv * d)


def rotate_qrs_to_axis(phys: Physiology, target_deg: float, skip_initial: bool = False) -> None:
    """Rotate the QRS lobes in the frontal plane until their net frontal axis is ``target_deg``.

    The limb leads see the vertical (Y) component more strongly than the horizontal one, so a rotation
    can inflate their amplitudes; the rotated lobes are scaled back so that the largest limb-lead QRS
    amplitude does not grow (a conduction change redirects forces, it does not add muscle).
    """
    sel = phys.qrs.part == PART_QRS
    if skip_initial and sel.sum() > 1:
        first = np.flatnonzero(sel)[np.argmin(phys.qrs.t[sel])]
        sel = sel.copy()
        sel[first] = False
    before = _limb_amplitude(phys)
    dower = DOWER if phys.dower is None else phys.dower
    for _ in range(6):
        axis = frontal_axis_deg(phys.qrs.area(PART_QRS)[:3], dower)
        delta = (target_deg - axis + 180.0) % 360.0 - 180.0
        if abs(delta) < 0.5:
            break
        phys.qrs.amp[sel, :3] = phys.qrs.amp[sel, :3] @ rotation("z", delta).T
    after = _limb_amplitude(phys)
    if after > before > 0:
        phys.qrs.amp[sel, :3] *= before / after


def _limb_amplitude(phys: Physiology) -> float:
    limb = qrs_leads(phys)[:6]
    return float(np.max(limb.max(axis=1) - limb.min(axis=1)))


def template_leads(phys: Physiology, waves, part: int, dower: np.ndarray | None = None,
                   fs: float = 1000.0) -> np.ndarray:
    """One wave (``part`` of ``waves``) of the template in the 12 leads (dipole plus local parts), shape
    (12, n) at ``fs``, mV, from 10 ms before its onset to 10 ms after its offset.

    ``dower``: the transfer matrix (default: the recording's own, else the standard Dower matrix).
    """
    if dower is None:
        dower = DOWER if phys.dower is None else phys.dower
    on, off = waves.onset_offset(part)
    n = int(np.ceil((off - on + 0.02) * fs)) + 1
    chans = render(waves.of(part), on - 0.01, fs, n)
    leads = twelve_lead_matrix(dower) @ chans[:3]
    leads[6:] += chans[3:]
    return leads


def qrs_leads(phys: Physiology, dower: np.ndarray | None = None, fs: float = 1000.0) -> np.ndarray:
    """The QRS of the template in the 12 leads, shape (12, n) at ``fs``, mV (:func:`template_leads`)."""
    return template_leads(phys, phys.qrs, PART_QRS, dower, fs)


def scale_dipoles(phys: Physiology, factor: float, parts: tuple[int, ...]) -> None:
    for waves in (phys.p, phys.qrs, phys.t):
        sel = np.isin(waves.part, parts)
        waves.amp[sel] *= factor


# ------------------------------------------------------------------------------------- shape stage
def clbbb(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Complete LBBB: QRS >= 120 ms, no septal q (initial forces leftward), broad notched R in I/aVL/V5/V6,
    QS or rS in V1-V2, discordant ST-T (AHA/ACCF/HRS 2009 Part III)."""
    dur = 0.121 + 0.06 * sev + rng.uniform(0.0, 0.005)
    amp = qrs_amp(phys) * rng.uniform(1.05, 1.3)
    vectors = np.array([[0.55, 0.10, 0.45], [0.95, 0.25, 0.75], [0.80, -0.10, 0.85]])
    vectors = vectors * np.array([[0.7], [1.45], [1.05]])
    sig = np.array([0.11, 0.15, 0.11])
    qrs = Waves.lobes(np.array([0.2, 0.48, 0.76]) * dur, sig * dur, sig * dur, vectors * amp, PART_QRS)
    phys.qrs = Waves.concat([phys.qrs.select(phys.qrs.part != PART_QRS), fit_span(qrs, PART_QRS, 0.0, dur)])
    phys.notes["secondary_st_t"] = (0.25 + 0.2 * sev) * amp, (0.08 + 0.12 * sev) * amp
    phys.qrs_axis_target = phys.axis_deg - 15.0


def _rbbb(phys: Physiology, dur: float, terminal_mv: float, rng: np.random.Generator) -> None:
    """Right bundle branch block: normal LV activation, then slow right-anterior terminal forces (R' in V1,
    wide S in I and V6)."""
    qrs = phys.qrs
    sel = qrs.part == PART_QRS
    normal_dur = min(phys.qrs_duration_s(), 0.095)
    order = np.flatnonzero(sel)[np.argsort(qrs.t[sel])]
    keep = np.ones(len(qrs), bool)
    keep[order[-1]] = False  # the normal terminal (basal) forces are replaced by the RV's late forces
    base = fit_span(qrs.select(keep), PART_QRS, 0.0, normal_dur * 0.92)
    start = normal_dur * 0.55
    sigma = (dur - start) / (2 * EXTENT)
    direction = unit([-0.55, -0.1, -0.8] + rng.normal(0.0, 0.08, 3))
    terminal = Waves.lobes([start + EXTENT * sigma], sigma, sigma, (terminal_mv * direction)[None], PART_QRS)
    phys.qrs = Waves.concat([base, terminal])
    phys.notes["rbbb_terminal"] = terminal_mv * direction


def crbbb(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Complete RBBB: QRS >= 120 ms, rsR' in V1-V2, S wider than R or > 40 ms in I and V6; secondary T
    inversion in V1-V2 (AHA/ACCF/HRS 2009 Part III)."""
    dur = 0.121 + 0.04 * sev + rng.uniform(0.0, 0.005)
    _rbbb(phys, dur, qrs_amp(phys) * (0.55 + 0.45 * sev), rng)
    phys.notes["rbbb_t"] = 0.3 + 0.2 * sev


def irbbb(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Incomplete RBBB: the RBBB pattern with QRS 110-119 ms (AHA/ACCF/HRS 2009 Part III)."""
    dur = 0.110 + 0.009 * sev + rng.uniform(0.0, 0.0005)
    _rbbb(phys, dur, qrs_amp(phys) * (0.3 + 0.3 * sev), rng)
    phys.notes["rbbb_t"] = 0.1 * sev


def wpw(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Ventricular pre-excitation: PR < 120 ms, slurred delta wave, QRS > 110-120 ms, secondary ST-T."""
    names = list(PATHWAYS)
    weights = np.array([PATHWAYS[n][0] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    direction = PATHWAYS[name][1]
    delta = 0.03 + 0.035 * sev + rng.uniform(0.0, 0.005)
    pr_short = 0.118 - 0.03 * sev - rng.uniform(0.0, 0.008)
    amp = qrs_amp(phys) * (0.3 + 0.4 * sev)
    qrs = phys.qrs.shifted(delta)
    qrs.amp[qrs.part == PART_QRS] *= 1.0 - 0.3 * sev  # fusion: part of the ventricles is pre-excited
    sr = 0.012
    sl = (delta + 0.004) / EXTENT
    lobe = Waves.lobes([delta + 0.004], sl, sr, (amp * direction)[None], PART_QRS)
    phys.qrs = Waves.concat([qrs, lobe])
    phys.pr_s = pr_short
    phys.notes["delta"] = (delta, amp * direction, name)


def lvh(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """LV hypertrophy: larger leftward-posterior QRS forces (Sokolow-Lyon SV1 + RV5/6 >= 3.5 mV in florid
    cases), slight QRS widening, left atrial abnormality; strain ST-T in more severe cases."""
    qrs = phys.qrs
    sel = (qrs.part == PART_QRS) & (qrs.amp[:, 0] > 0)
    # hypertrophy adds voltage, less so on an already large QRS (keeps Sokolow-Lyon within observed ranges)
    gain = (1.3 + 0.9 * sev + rng.uniform(0.0, 0.1)) / max(qrs_amp(phys), 1.0) ** 0.5
    qrs.amp[sel, :3] *= gain
    post = sel & (qrs.amp[:, 2] > 0)
    qrs.amp[post, 2] *= 1.0 + 0.3 * sev
    largest = float(np.linalg.norm(qrs.amp[sel, :3], axis=1).max()) if sel.any() else 0.0
    if largest > LVH_MAX_LOBE_MV:  # keep the voltage within what is observed (Sokolow-Lyon up to ~7-8 mV)
        qrs.amp[sel, :3] *= LVH_MAX_LOBE_MV / largest
    on, off = qrs.onset_offset(PART_QRS)
    phys.qrs = fit_span(qrs, PART_QRS, 0.0, (off - on) * (1.0 + 0.08 * sev))
    la = phys.p.t.argmax() if len(phys.p) else None
    if la is not None:
        phys.p.amp[la] *= 1.2 + 0.5 * sev
    phys.notes["lvh_strain"] = bool(sev > 0.35 and rng.random() < 0.3 + 0.7 * sev)
    phys.notes["lvh_strain_sev"] = sev


def rvh(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """RV hypertrophy: dominant anterior-rightward forces (R/S > 1 in V1, deep S in V5-V6), right axis
    deviation, right atrial abnormality; RV strain (T inversion V1-V3) when severe."""
    qrs = phys.qrs
    sel = qrs.part == PART_QRS
    left = sel & (qrs.amp[:, 0] > 0)
    qrs.amp[left, :3] *= 0.8 - 0.25 * sev
    dur = phys.qrs_duration_s()
    sigma = 0.12 * dur
    rv_vector = qrs_amp(phys) * (0.7 + 0.9 * sev) * unit([-0.6, 0.35, -0.85])
    rv = Waves.lobes([0.55 * dur], sigma, sigma, rv_vector[None], PART_QRS)
    phys.qrs = Waves.concat([qrs, rv])
    ra = phys.p.t.argmin() if len(phys.p) else None
    if ra is not None:
        phys.p.amp[ra] *= 1.4 + 0.6 * sev
    phys.qrs_axis_target = 100.0 + 40.0 * sev + rng.uniform(-5.0, 10.0)
    phys.notes["rvh_strain"] = bool(sev > 0.4 and rng.random() < sev)


# -------------------------------------------------------------------------------------- body stage
def lafb(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """LAFB: frontal axis -45 to -90 deg, qR in aVL, rS in II/III/aVF (initial forces inferior-rightward),
    QRS < 120 ms (AHA/ACCF/HRS 2009 Part III)."""
    target = -46.0 - 40.0 * sev - rng.uniform(0.0, 2.0)
    rotate_qrs_to_axis(phys, target, skip_initial=True)
    sel = phys.qrs.part == PART_QRS
    first = np.flatnonzero(sel)[np.argmin(phys.qrs.t[sel])]
    size = np.linalg.norm(phys.qrs.amp[first, :3])
    phys.qrs.amp[first, :3] = max(size, 0.15 * qrs_amp(phys)) * unit([-0.35, 0.8, -0.2])
    rotate_qrs_to_axis(phys, target, skip_initial=True)  # the new initial lobe shifted the net axis


def infarct(code: str):
    """Old (established) myocardial infarction of a territory: pathological Q waves (>= 30-40 ms) and loss
    of R in the territory leads, T inversion there in part of the cases (Fourth Universal Definition).

    Two parts: the dipole loses its forces toward the territory and gains an initial Q lobe away from it
    (what the distant limb leads see), and a regional, non-dipolar part on the territory's precordial
    leads (:data:`TERRITORY_LEADS`): a local Q, a local loss of R and, with T inversion, a local negative T
    (the scar is close to those electrodes; body-surface maps show infarcts as regional, non-dipolar
    potential losses).
    """

    def effect(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
        u = TERRITORY[code]
        w = TERRITORY_LEADS[code]
        qrs = phys.qrs
        sel = (qrs.part == PART_QRS) & (qrs.amp[:, :3] @ u > 0)
        proj = qrs.amp[sel, :3] @ u
        qrs.amp[sel, :3] -= (0.35 + 0.5 * sev) * proj[:, None] * u[None]
        sigma = 0.0065 + 0.003 * sev
        amp = qrs_amp(phys)
        q_size = (0.2 + 0.5 * sev) * amp
        q = Waves.lobes([EXTENT * sigma], sigma, sigma * 1.2, (-q_size * u)[None], PART_QRS,
                        local=(-0.5 * q_size * w)[None])
        on, off = qrs.onset_offset(PART_QRS)
        r_loss = Waves.lobes([on + 0.45 * (off - on)], 0.1 * (off - on), 0.1 * (off - on), None, PART_QRS,
                             local=(-(0.15 + 0.35 * sev) * amp * w)[None])
        phys.qrs = Waves.concat([qrs, q, r_loss])
        t_inverted = bool(rng.random() < 0.3 + 0.6 * sev)
        if t_inverted:
            sel_t = (phys.t.part == PART_T) & ~phys.t.plateau
            tv = phys.t.amp[sel_t, :3]
            along = tv @ u
            tv -= ((1.0 + 0.8 * sev) * np.maximum(along, 0.0) + (0.05 + 0.1 * sev))[:, None] * u[None]
            phys.t.amp[sel_t, :3] = tv
            t_lobes = phys.t.select(sel_t)
            if len(t_lobes):
                k = int(np.argmax(t_lobes.t))
                local_t = Waves.lobes([t_lobes.t[k]], t_lobes.sl[k], t_lobes.sr[k], None, PART_T,
                                      local=(-(0.08 + 0.15 * sev) * w)[None])
                phys.t = Waves.concat([phys.t, local_t])
        phys.notes[f"{code}_t_inverted"] = t_inverted

    return effect


def repolarisation_secondary(phys: Physiology) -> None:
    """Apply the secondary ST-T changes that the conduction conditions registered (after orientation)."""
    if "secondary_st_t" in phys.notes:
        t_mv, st_mv = phys.notes["secondary_st_t"]
        secondary_st_t(phys, t_mv, st_mv)
    if phys.notes.get("paced_secondary"):
        secondary_st_t(phys, 0.35 * qrs_amp(phys), 0.12 * qrs_amp(phys))
    if phys.notes.get("rbbb_t"):
        term = unit(phys.notes["rbbb_terminal"])
        add_st(phys, -0.05 * phys.notes["rbbb_t"] * term)
        sel = (phys.t.part == PART_T) & ~phys.t.plateau
        phys.t.amp[sel, :3] -= phys.notes["rbbb_t"] * 0.5 * term[None]
    if "delta" in phys.notes:
        _, vec, _ = phys.notes["delta"]
        sel = (phys.t.part == PART_T) & ~phys.t.plateau
        phys.t.amp[sel, :3] -= 0.35 * vec[None]
    if phys.notes.get("lvh_strain"):
        s = phys.notes["lvh_strain_sev"]
        d = mean_qrs_direction(phys)
        sel = (phys.t.part == PART_T) & ~phys.t.plateau
        for k in np.flatnonzero(sel):
            phys.t.amp[k, :3] = rotate_to(phys.t.amp[k, :3], -d, min(0.55 + 0.6 * s, 1.0)) * 0.9
        add_st(phys, -(0.04 + 0.1 * s) * d)
    if phys.notes.get("rvh_strain"):
        sel = (phys.t.part == PART_T) & ~phys.t.plateau
        phys.t.amp[sel, 2] += 0.3


def isc(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Non-specific ischaemia: horizontal/down-sloping ST depression of 0.05-0.2 mV in the leads with
    dominant R, T flattening or inversion (AHA/ACCF/HRS 2009 Parts IV and VI)."""
    d = mean_qrs_direction(phys)
    lateral = unit(d + rng.normal(0.0, 0.25, 3))
    depth = 0.05 + 0.15 * sev
    add_st(phys, -depth * lateral * 1.3)
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    phys.t.amp[sel, :3] *= 1.0 - 1.5 * sev
    phys.notes["ISC__vector"] = -depth * lateral


def nst(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Non-specific ST changes: small ST deviation (0.03-0.08 mV) and mild T flattening."""
    d = unit(-0.6 * mean_qrs_direction(phys) + 0.5 * unit(rng.normal(size=3)))
    size = 0.03 + 0.05 * sev
    add_st(phys, size * d * 1.3)
    sel = (phys.t.part == PART_T) & ~phys.t.plateau
    phys.t.amp[sel, :3] *= 1.0 - 0.3 * sev
    phys.notes["NST__vector"] = size * d


def lngqt(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Long QT: QTc >= 450 ms (men) / 460 ms (women) (AHA/ACCF/HRS 2009 Part IV); ST lengthened and T
    broadened and flattened."""
    threshold = 0.46 if phys.notes.get("female") else 0.45
    new_qtc = threshold + 0.004 + 0.09 * sev
    delta = max(new_qtc - phys.qtc_s, 0.0)
    sel = phys.t.part == PART_T
    lobes = sel & ~phys.t.plateau
    stretch = 1.0 + 0.6 * delta / phys.qtc_s
    phys.t.sl[lobes] *= stretch
    phys.t.sr[lobes] *= stretch
    phys.t.amp[lobes] *= 0.85
    _, t_off = phys.t.onset_offset(PART_T)
    shift = new_qtc - t_off
    phys.t.t[lobes] += shift
    plateaus = (phys.t.part == PART_ST) & phys.t.plateau
    phys.t.width[plateaus] += shift
    phys.qtc_s = new_qtc


def lvolt(phys: Physiology, sev: float, rng: np.random.Generator) -> None:
    """Low QRS voltage: QRS amplitude <= 0.5 mV in all limb leads (AHA/ACCF/HRS 2009 Part V); pericardial
    fluid, obesity or emphysema attenuate every wave alike."""
    target = 0.48 - 0.2 * sev
    limb = qrs_leads(phys)[:6]
    current = float(np.max(limb.max(axis=1) - limb.min(axis=1)))
    if current > 0:
        factor = target / current
        scale_dipoles(phys, factor, (PART_P, PART_QRS, PART_ST, PART_T))
        phys.notes["qrs_amp"] = qrs_amp(phys) * factor
        if phys.pvc is not None:
            phys.pvc.amp *= factor
