"""Patients and the physiology of one recording.

A :class:`Patient` carries stable traits (age, sex, body size, heart orientation, wave amplitudes and
intervals) drawn once from published adult normal ranges; every recording of that patient starts from
the same traits, so records of one patient resemble each other (what patient-level splits guard
against). A :class:`Physiology` is the mutable description of one recording: rhythm parameters and the
wave components of one beat (P relative to the P onset; QRS, ST and T relative to the QRS onset), which
the conditions in :mod:`ecgstudy.simulate.conditions` then modify.

Normal ranges (sources in SOURCES.md): heart rate, PR, P, QRS, QTc and frontal axis by age and sex from
Mason et al. 2007, Rijnbeek et al. 2014 and the ELSA-Brasil sex differences (Pinto-Filho et al. 2017), P duration
by age, height, sex and BMI from the CoLaus population (BMJ Open 2020); QRS
voltages larger in men, falling 6.5 %/decade in men (Pipberger et al. 1967) and, in women, in the inferior and
posterior forces only (Nemati et al. 1978; Rijnbeek et al. 2014); T amplitude 25 % greater in men and falling
with age (Gambill et al. 1995); the normal J-point/ST elevation in V1-V4, >= 0.1 mV in 91 % of young men, fewer
with age, about 20 % of women (Surawicz & Parikh 2002), behind the sex- and age-specific ST thresholds of the
MI definitions (Wagner et al. 2009; Thygesen et al. 2018); QT rate dependence by the Framingham linear
formula (Sagie et al. 1992); respiratory sinus arrhythmia and its decline with age from the HRV standards
(Task Force 1996) and Umetani et al. 1998; Frank VCG loop directions from Draper et al. 1964.

Patient-level latent traits that must not change the plan's random stream (so adding one does not
reshuffle the cohort) are drawn from generators seeded by the patient's ``shape_seed`` and a fixed tag
(:func:`trait_rng`): the non-dipolar pattern (:mod:`ecgstudy.simulate.nondipolar`) and the left-ventricular
reserve behind the ejection fraction (:mod:`ecgstudy.simulate.lvef`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ecgstudy.simulate.waves import EXTENT, PART_P, PART_QRS, PART_ST, PART_T, Waves

FRAMINGHAM_SLOPE_S = 0.154  # QT = QTc - 0.154 (1 - RR), s (Sagie et al. 1992)
# Tags of the patient-level trait generators (trait_rng): one stream per latent trait.
TRAIT_J_POINT, TRAIT_NONDIPOLAR, TRAIT_LV = 1, 2, 3
# Where the normal J-point elevation shows, V1..V6 (largest in V2-V3: Wagner et al. 2009).
J_POINT_WEIGHTS = np.array([0.5, 1.0, 0.9, 0.4, 0.1, 0.0])

# Canonical normal beat in the heart's own frame (before the patient's orientation), Frank axes.
# QRS lobes: (centre, sigma) as fractions of the QRS duration, and direction * magnitude in mV.
_QRS_CENTRES = np.array([0.17, 0.43, 0.62, 0.80])
_QRS_SIGMAS = np.array([0.065, 0.10, 0.09, 0.07])
_QRS_VECTORS = np.array(
    [
        [-0.25, 0.05, -0.35],  # septal: rightward and anterior (q in I/V6, r in V1)
        [1.00, 0.75, -0.12],  # apical/free wall: leftward and inferior (R in II, V4-V6)
        [0.50, 0.05, 0.95],  # basal posterior (S in V1-V3)
        [-0.35, -0.45, 0.55],  # terminal basal: rightward, superior, posterior (s in II, I)
    ]
) * np.array([[0.55], [1.25], [0.95], [0.45]])
# P lobes (right then left atrium): centres/sigma as fractions of the P duration.
_P_CENTRES = np.array([0.35, 0.62])
_P_SIGMA = 0.14
_P_VECTORS = np.array([[0.30, 0.60, -0.20], [0.45, 0.35, 0.35]]) * np.array([[0.20], [0.14]])
# T: one asymmetric lobe (slow upstroke, faster downstroke), sigmas in s at QT = 0.41 s.
_T_VECTOR = np.array([0.75, 0.55, -0.50]) * 0.42
_T_SIGMA_LEFT, _T_SIGMA_RIGHT = 0.058, 0.036
_QT_REF = 0.41

# Age and sex effects on the voltages (sources in SOURCES.md).
MEN_QRS_PER_YEAR = 0.0065  # QRS amplitudes fall 6.5 % per decade in normal men (Pipberger et al. 1967)
# Women's QRS vector is about 85 % of men's in orthogonal leads (Nousiainen et al. 1994): the 0.92 / 1.08 sex
# factor of ``qrs_amp``. The difference is larger in the precordial leads than in the limb leads (Simonson et al.
# 1960; Cornell voltage higher in men at equal LV mass, Okin et al. 1995): a woman's V1-V6 lead vectors are
# scaled by a further WOMEN_PRECORDIAL, a volume-conductor effect (breast tissue, heart-to-chest distance) that
# attenuates every dipolar wave alike (the local, non-dipolar content is sized on those leads). Size: modelling
# choice (no per-lead table could be read); it puts women's precordial QRS at 0.72 of men's, the ratio of the
# sex-specific Cornell voltage limits (2.0 / 2.8 mV, Casale et al. 1985).
WOMEN_PRECORDIAL = 0.85
# T amplitude about 25 % greater in men than in women in every lead (Gambill et al. 1995): with the precordial
# attenuation above, a T dipole factor of 0.8 / sqrt(WOMEN_PRECORDIAL) gives women 0.87 of men's T in the limb
# leads and 0.74 in V1-V6 (geometric mean over the 12 leads: 0.80).
WOMEN_T = 0.8 / float(np.sqrt(WOMEN_PRECORDIAL))
# T amplitude by age group (Gambill et al. 1995): -10 % from 18-39 to 40-59 y, a further -15 % to 60-79 y
# (group mid-points), normalised to 1 at 45 y.
_T_AGE_X = np.array([28.5, 49.5, 69.5])
_T_AGE_Y = np.array([1.0, 0.90, 0.90 * 0.85])
# Frontal QRS axis turns left with age (Rijnbeek et al. 2014; Mason et al. 2007; Giovanardi et al. 2022), deg/y.
QRS_AXIS_PER_YEAR = -0.45
# The frontal T axis does not follow that shift (no correlation with age, Chime et al. 2020; it lags behind a
# leftward QRS axis, Ziegler & Bloomfield 1970), so the frontal QRS-T angle widens in older people (Giovanardi
# et al. 2022; Br J Cardiol 2019): each patient's T wave is oriented as the heart would be without the age part
# of the axis shift (``Morphology.t_turn_deg``, by ``record.build_physiology``).
# P-wave duration in the general population (CoLaus|PsyCoLaus, BMJ Open 2020; 3,459 adults 62 +/- 10 y; adjusted
# coefficients of a multivariable model):
# +0.29 ms per year of age, +0.32 ms per cm of height, men 2.1 ms longer than women, obese 3 ms longer than
# normal-weight people (read as +0.3 ms per BMI unit: a modelling choice). Normal upper limit 120 ms (Hancock
# et al. 2009); longer P waves are the LAO/LAE statement's (clinical_effects.P_MITRALE_MS).
P_MS_PER_YEAR, P_MS_PER_CM, P_MS_MEN, P_MS_PER_BMI = 0.29, 0.32, 2.1, 0.3
P_MS_MAX = 120.0
# Respiratory sinus arrhythmia falls with age (Umetani et al. 1998) until 60 y and stays level after it (10-s
# RMSSD percentiles, Tegegne et al. 2019: the Lifelines cohort).
RSA_AGE_PLATEAU = 60.0
# Women's QRS by age in the body frame (Nemati et al. 1978, orthogonal leads, 450 normal women 18-90 y):
# in the oldest, Ry 71 % and Rz 80 % of the youngest's, the fall levelling off in the sixth decade; the
# leftward (X) forces do not fall (left precordial amplitudes rise in older women, Rijnbeek et al. 2014).
WOMEN_QRS_OLDEST = np.array([1.0, 0.71, 0.80])  # X, Y, Z of the oldest relative to the youngest
_WOMEN_QRS_AGES = (20.0, 55.0)  # the fall runs from the youngest group to the sixth decade
# Normal J-point elevation, max over V1-V4 (Surawicz & Parikh 2002): >= 0.1 mV in 91 % of men aged 17-24,
# falling to 14 % of the oldest men (~85 y); in women < 0.1 mV in about 80 % at every age after puberty.
# With a log-normal spread of sd J_POINT_SD the medians that give these shares are below (mV).
J_POINT_SD = 0.3  # log-normal spread of the J elevation between people (modelling choice)
_J_MEN_YOUNG = 0.1 * float(np.exp(1.34 * J_POINT_SD))  # 91 % above 0.1 mV at 20 y
_J_MEN_OLD = 0.1 * float(np.exp(-1.08 * J_POINT_SD))  # 14 % above 0.1 mV at 85 y
_J_WOMEN = 0.1 * float(np.exp(-0.84 * J_POINT_SD))  # 20 % above 0.1 mV at any age


def p_duration_mean_ms(age: float, male: float, height_cm: float, bmi: float) -> float:
    """Mean normal P duration (ms) of a person of ``age`` years, ``height_cm`` and ``bmi`` (``male`` 1 or 0): the
    adjusted CoLaus coefficients (:data:`P_MS_PER_YEAR` etc.) around a 100-ms mean at 50 y, 170 cm and BMI 26."""
    return (100.0 + P_MS_PER_YEAR * (age - 50.0) + P_MS_PER_CM * (height_cm - 170.0) + P_MS_MEN * male
            + P_MS_PER_BMI * (bmi - 26.0))


def t_age_factor(age: float) -> float:
    """T amplitude relative to a 45-year-old's (Gambill et al. 1995 age groups, extrapolated linearly)."""
    def f(a: float) -> float:
        if a <= _T_AGE_X[1]:
            k = (_T_AGE_Y[1] - _T_AGE_Y[0]) / (_T_AGE_X[1] - _T_AGE_X[0])
            return _T_AGE_Y[0] + k * (a - _T_AGE_X[0])
        k = (_T_AGE_Y[2] - _T_AGE_Y[1]) / (_T_AGE_X[2] - _T_AGE_X[1])
        return _T_AGE_Y[1] + k * (a - _T_AGE_X[1])

    return float(np.clip(f(age), 0.6, 1.1) / f(45.0))


def women_qrs_axes(age: float) -> np.ndarray:
    """(3,) body-frame X, Y, Z scale of a woman's QRS forces at ``age``, 1 at 45 y (Nemati et al. 1978)."""
    lo, hi = _WOMEN_QRS_AGES

    def at(a: float) -> np.ndarray:
        w = float(np.clip((a - lo) / (hi - lo), 0.0, 1.0))
        return 1.0 + w * (WOMEN_QRS_OLDEST - 1.0)

    return at(age) / at(45.0)


def j_point_median_mv(age: float, female: bool) -> float:
    """Median normal J elevation in V2 (mV) by age and sex (Surawicz & Parikh 2002 prevalences)."""
    if female:
        return _J_WOMEN
    w = float(np.clip((age - 20.0) / 65.0, 0.0, 1.0))
    return float(np.exp((1.0 - w) * np.log(_J_MEN_YOUNG) + w * np.log(_J_MEN_OLD)))


def rsa_median(age: float) -> float:
    """Median respiratory modulation of RR (fraction) at ``age``: 5 % at 20 y, falling exp(-(age - 20)/45)
    (Task Force 1996; Umetani et al. 1998) until :data:`RSA_AGE_PLATEAU`, level after (Tegegne et al. 2019)."""
    return 0.05 * float(np.exp(-(min(age, RSA_AGE_PLATEAU) - 20.0) / 45.0))


def trait_rng(shape_seed: int, tag: int) -> np.random.Generator:
    """The generator of one latent patient trait (same patient, same draws; independent of the plan's stream)."""
    return np.random.default_rng([int(shape_seed), int(tag)])


def truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    """One draw of N(mean, sd) restricted to [lo, hi] (rejection, then clipping as a last resort)."""
    for _ in range(64):
        x = rng.normal(mean, sd)
        if lo <= x <= hi:
            return float(x)
    return float(np.clip(mean, lo, hi))


@dataclass(frozen=True)
class Morphology:
    """A patient's stable ECG traits (in the absence of disease)."""

    hr_bpm: float  # resting sinus rate
    axis_deg: float  # frontal QRS axis
    horizontal_deg: float  # rotation of the heart in the horizontal plane (moves the R/S transition)
    qrs_amp: float  # QRS magnitude factor (body habitus, sex, age)
    t_amp: float  # T magnitude factor
    p_amp: float  # P magnitude factor
    qrs_ms: float  # QRS duration
    pr_ms: float  # PR interval (P onset to QRS onset)
    p_ms: float  # P duration
    qtc_ms: float  # Framingham-corrected QT
    rsa: float  # respiratory sinus arrhythmia, fractional RR modulation
    shape_seed: int  # seeds the patient's own small deviations of every wave lobe
    j_mv: float = 0.0  # normal J-point/ST elevation in V2-V3 (largest in young men), mV
    t_turn_deg: float = 0.0  # age part of the QRS axis shift undone for the T wave (its axis keeps its young direction)


@dataclass(frozen=True)
class Patient:
    """One simulated person."""

    patient_id: int
    age: float  # years, at the first recording
    sex: int  # 0 male, 1 female (PTB-XL coding)
    height_cm: float
    weight_kg: float
    site: int  # index into the cohort's sites
    morphology: Morphology

    @property
    def bmi(self) -> float:
        return self.weight_kg / (self.height_cm / 100.0) ** 2


def sample_patient(
    rng: np.random.Generator,
    patient_id: int = 0,
    site: int = 0,
    age_mean: float = 62.0,
    age_sd: float = 17.0,
    female_frac: float = 0.48,
    age: float | None = None,
    sex: int | None = None,
) -> Patient:
    """Draw a patient; ``age``/``sex`` fix those traits when given."""
    if sex is None:
        sex = int(rng.random() < female_frac)
    if age is None:
        age = truncated_normal(rng, age_mean, age_sd, 18.0, 95.0)
    female = sex == 1
    male = 1.0 - female
    height = truncated_normal(rng, 163.0 if female else 176.0, 6.5 if female else 7.0, 145.0, 205.0)
    bmi = truncated_normal(rng, 27.0, 4.5, 17.0, 45.0)
    weight = bmi * (height / 100.0) ** 2
    # QRS voltage: men larger; falls 6.5 %/decade in men (Pipberger 1967); in women the fall is per axis
    # (women_qrs_axes, applied in the body frame); smaller with BMI
    age_voltage = 1.0 + (MEN_QRS_PER_YEAR if not female else 0.0) * (45.0 - age)
    qrs_amp = float(
        np.exp(rng.normal(0.0, 0.18)) * (0.92 if female else 1.08) * age_voltage * (1.0 - 0.02 * (bmi - 26.0))
    )
    morph = Morphology(
        hr_bpm=truncated_normal(rng, 71.0 + 3.0 * female - 0.05 * (age - 50.0), 9.0, 50.0, 105.0),
        axis_deg=truncated_normal(rng, 54.0 + 4.0 * female + QRS_AXIS_PER_YEAR * (age - 20.0), 22.0, -25.0, 95.0),
        horizontal_deg=float(rng.normal(0.0, 12.0)),
        qrs_amp=float(np.clip(qrs_amp, 0.45, 2.2)),
        t_amp=float(np.exp(rng.normal(0.0, 0.2)) * (WOMEN_T if female else 1.0) * t_age_factor(age)),
        p_amp=float(np.exp(rng.normal(0.0, 0.2))),
        qrs_ms=truncated_normal(rng, 87.0 + 6.0 * male + 0.06 * (age - 50.0), 7.0, 72.0, 106.0),
        pr_ms=truncated_normal(rng, 155.0 + 6.0 * male + 0.3 * (age - 50.0), 17.0, 120.0, 198.0),
        p_ms=truncated_normal(rng, p_duration_mean_ms(age, male, height, bmi), 9.0, 78.0, P_MS_MAX),
        qtc_ms=truncated_normal(
            rng, 408.0 + 11.0 * female + 0.3 * (age - 50.0), 15.0, 370.0, 457.0 if female else 447.0
        ),
        rsa=float(np.clip(rng.lognormal(np.log(rsa_median(age)), 0.35), 0.004, 0.12)),
        shape_seed=int(rng.integers(2**31)),
    )
    j_rng = trait_rng(morph.shape_seed, TRAIT_J_POINT)
    j_mv = j_point_median_mv(age, female) * float(np.exp(j_rng.normal(0.0, J_POINT_SD)))
    morph = dataclasses.replace(morph, j_mv=j_mv, t_turn_deg=-QRS_AXIS_PER_YEAR * (age - 20.0))
    return Patient(patient_id, float(age), int(sex), float(height), float(weight), int(site), morph)


def aged(patient: Patient, years: float) -> Patient:
    """The same patient ``years`` later (the traits stay; age moves)."""
    return Patient(
        patient.patient_id, patient.age + years, patient.sex, patient.height_cm, patient.weight_kg,
        patient.site, patient.morphology,
    )


@dataclass
class Physiology:
    """What one recording's heart does: rhythm and the wave components of one beat.

    ``p`` is relative to the P onset; ``qrs`` and ``t`` (ST and T components) are relative to the QRS
    onset, the T placed for RR = 1 s (QT = QTc); beats at other RR shift it by the Framingham relation.
    Dipole amplitudes are in the heart's canonical frame until :func:`orient` applies the patient's
    orientation (``oriented`` then becomes True).
    """

    rhythm: str  # sinus | afib | aflt | paced
    hr_bpm: float  # mean ventricular rate intended
    pr_s: float  # P onset to QRS onset (sinus beats)
    qtc_s: float  # Framingham-corrected QT
    p: Waves
    qrs: Waves
    t: Waves
    axis_deg: float  # the patient's frontal QRS axis (whole heart orientation)
    horizontal_deg: float
    qrs_axis_target: float | None = None  # a condition's frontal QRS axis (rotates the QRS only)
    rsa: float = 0.03  # respiratory modulation of RR, fraction
    resp_hz: float = 0.25  # breathing rate
    lf: float = 0.01  # Mayer-wave (0.1 Hz) modulation of RR, fraction
    rr_jitter: float = 0.01  # beat-to-beat RR noise, fraction
    n_pvc: int = 0  # premature ventricular complexes in the 10 s
    n_pac: int = 0  # premature atrial complexes in the 10 s
    pvc: Waves | None = None  # PVC QRS+ST-T (relative to its onset), set by the PVC condition
    pac_p: Waves | None = None  # ectopic P of a PAC (relative to its onset)
    pac_coupling: float = 0.7  # PAC prematurity, fraction of the RR
    pvc_coupling: float = 0.6  # PVC prematurity, fraction of the RR
    atrial: dict = field(default_factory=dict)  # AF f-wave / flutter-wave parameters
    pacing: dict = field(default_factory=dict)  # pacemaker parameters
    oriented: bool = False
    dower: np.ndarray | None = None  # this recording's lead transfer matrix (8 x 3); None = standard Dower
    notes: dict = field(default_factory=dict)  # per-condition details needed for masks/ground truth

    @property
    def rr_s(self) -> float:
        return 60.0 / self.hr_bpm

    def qt_at(self, rr_s: float | np.ndarray) -> float | np.ndarray:
        """QT (s) at a preceding RR (s): Framingham, QT = QTc - 0.154 (1 - RR)."""
        return self.qtc_s - FRAMINGHAM_SLOPE_S * (1.0 - np.asarray(rr_s))

    def qrs_duration_s(self) -> float:
        on, off = self.qrs.onset_offset(PART_QRS)
        return off - on

    def qt_ref_s(self) -> float:
        """QT of the template (RR = 1 s): QRS onset to the latest T offset."""
        on, _ = self.qrs.onset_offset(PART_QRS)
        _, t_off = self.t.onset_offset(PART_T)
        return t_off - on


def _jitter(rng: np.random.Generator, vectors: np.ndarray, rel_sd: float) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors + rel_sd * norms * rng.standard_normal(vectors.shape)


def normal_p(p_s: float, amp: float, rng: np.random.Generator) -> Waves:
    """Sinus P wave of duration ``p_s`` (s), relative to its onset: right then left atrial lobe."""
    sigma = _P_SIGMA * p_s
    centres = _P_CENTRES * p_s + rng.normal(0.0, 0.01, 2) * p_s
    centres = np.clip(centres, EXTENT * sigma, p_s - EXTENT * sigma)
    return Waves.lobes(centres, sigma, sigma, amp * _jitter(rng, _P_VECTORS, 0.12), PART_P)


def normal_qrs(qrs_s: float, amp: float, rng: np.random.Generator) -> Waves:
    """Narrow QRS of duration ``qrs_s`` (s), relative to its onset: septal, apical, basal, terminal lobes."""
    sigmas = _QRS_SIGMAS * qrs_s * np.exp(rng.normal(0.0, 0.06, 4))
    centres = _QRS_CENTRES * qrs_s + rng.normal(0.0, 0.015, 4) * qrs_s
    vectors = amp * _jitter(rng, _QRS_VECTORS, 0.15)
    waves = Waves.lobes(centres, sigmas, sigmas, vectors, PART_QRS)
    return fit_span(waves, PART_QRS, 0.0, qrs_s)


def normal_t(qt_s: float, amp: float, rng: np.random.Generator) -> Waves:
    """T wave ending at ``qt_s`` after the QRS onset (s)."""
    stretch = qt_s / _QT_REF
    sl, sr = _T_SIGMA_LEFT * stretch, _T_SIGMA_RIGHT * stretch
    vector = amp * _jitter(rng, _T_VECTOR[None], 0.15)[0]
    return Waves.lobes([qt_s - EXTENT * sr], sl, sr, vector[None], PART_T)


def j_point_elevation(j_mv: float, qrs: Waves, t: Waves) -> Waves:
    """The normal J-point/ST elevation of V1-V4 (non-dipolar, mostly V2-V3): a plateau from the J point
    (already risen there) fading into the T wave's peak, ``j_mv`` in V2."""
    _, j = qrs.onset_offset(PART_QRS)
    t_peak = float(np.max(t.t[t.part == PART_T]))
    return Waves.plateau_(j - 0.012, t_peak, 0.005, 0.03, None, PART_ST, j_mv * J_POINT_WEIGHTS)


def fit_span(waves: Waves, part: int, start: float, end: float) -> Waves:
    """Shift and scale the timing of ``part``'s lobes so they span exactly [start, end] (s)."""
    on, off = waves.onset_offset(part)
    if not np.isfinite(on) or off <= on:
        return waves
    k = (end - start) / (off - on)
    out = waves.copy()
    sel = out.part == part
    out.t[sel] = start + (out.t[sel] - on) * k
    out.sl[sel] *= k
    out.sr[sel] *= k
    out.width[sel] *= k
    return out


def baseline_physiology(rng: np.random.Generator, patient: Patient) -> Physiology:
    """A healthy recording of ``patient``: sinus rhythm and the patient's own normal waves.

    Day-to-day variation around the patient's traits: heart rate +-5 bpm, breathing 12-20 /min.
    The wave shapes come from the patient's ``shape_seed`` (identical across the patient's records).
    """
    m = patient.morphology
    shape_rng = np.random.default_rng(m.shape_seed)
    p = normal_p(m.p_ms / 1000.0, m.p_amp, shape_rng)
    qrs = normal_qrs(m.qrs_ms / 1000.0, m.qrs_amp, shape_rng)
    t = normal_t(m.qtc_ms / 1000.0, m.t_amp, shape_rng)
    if m.j_mv > 0.0:
        t = Waves.concat([t, j_point_elevation(m.j_mv, qrs, t)])
    return Physiology(
        rhythm="sinus",
        hr_bpm=truncated_normal(rng, m.hr_bpm, 5.0, 60.5, 99.5),
        pr_s=m.pr_ms / 1000.0,
        qtc_s=m.qtc_ms / 1000.0,
        p=p,
        qrs=qrs,
        t=t,
        axis_deg=m.axis_deg,
        horizontal_deg=m.horizontal_deg,
        rsa=m.rsa,
        resp_hz=float(rng.uniform(0.2, 0.33)),
        lf=float(rng.uniform(0.003, 0.015)),
        rr_jitter=float(rng.uniform(0.004, 0.012)),
    )
