"""When the beats happen: RR processes for sinus rhythm, atrial fibrillation and flutter, pacing, ectopy.

A :class:`Schedule` lists the QRS onsets (with the kind of each complex and the RR before it, which sets
its QT) and the P-wave onsets (sinus, ectopic atrial or paced; conducted or blocked) over a time span
that extends past the stored 10 s on both sides, so filters and beats are not cut at the edges.

- Sinus: the RR interval is modulated by breathing (respiratory sinus arrhythmia), by 0.1 Hz Mayer waves
  and by small beat-to-beat noise (HRV standards, Task Force 1996).
- Atrial fibrillation: no P waves; ventricular RR independent and irregular (log-normal, coefficient of
  variation 0.12-0.30; AHA/ACC/HRS 2014 AF guideline: "irregularly irregular"), never below a 0.28 s
  AV-nodal refractory limit (Tateno & Glass 2001 for RR variability in AF); fibrillatory f-waves at
  4.5-8 Hz (270-480 /min), inside the 4-9 Hz dominant atrial frequency of surface ECGs (Bollmann 2006).
- Atrial flutter: sawtooth F-waves at an atrial cycle of 0.18-0.24 s (250-330 /min), conducted 2:1,
  3:1, 4:1 or variably (ACC/AHA/HRS 2015 SVT guideline).
- Ectopy: a PVC comes early (coupling 0.45-0.7 RR) and is followed by a full compensatory pause (the
  sinus node is not reset; the sinus P falls blocked inside the PVC); a PAC comes early (0.6-0.85 RR)
  and resets the sinus node (non-compensatory pause).
- Pacing: a fixed rate with tiny jitter; atrial pacing spikes and paced P waves in dual-chamber mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgstudy.simulate.physiology import Physiology

QRS_NORMAL, QRS_PVC, QRS_PACED = 0, 1, 2  # supraventricular conduction / ventricular ectopic / paced
P_SINUS, P_ECTOPIC, P_PACED = 0, 1, 2
AF_MIN_RR_S = 0.28  # shortest RR the AV node conducts in AF


@dataclass
class Schedule:
    """Beat timing of one recording (times in s, 0 = start of the stored record)."""

    qrs_t: np.ndarray  # QRS onsets
    qrs_kind: np.ndarray  # QRS_* per complex
    rr_prev: np.ndarray  # RR interval ending at each complex (sets its QT)
    p_t: np.ndarray  # P onsets
    p_kind: np.ndarray  # P_* per P wave
    p_conducted: np.ndarray  # whether each P is followed by its own QRS


def _finish(qrs_t, qrs_kind, p_t, p_kind, p_conducted, default_rr: float) -> Schedule:
    order = np.argsort(qrs_t, kind="stable")
    qrs_t = np.asarray(qrs_t, float)[order]
    qrs_kind = np.asarray(qrs_kind, int)[order]
    rr_prev = np.diff(qrs_t, prepend=qrs_t[0] - default_rr) if qrs_t.size else np.zeros(0)
    return Schedule(
        qrs_t, qrs_kind, rr_prev, np.asarray(p_t, float), np.asarray(p_kind, int), np.asarray(p_conducted, bool)
    )


def sinus_schedule(rng: np.random.Generator, phys: Physiology, t0: float, t1: float, duration_s: float) -> Schedule:
    """Sinus rhythm over [t0, t1] with ``phys.n_pvc`` PVCs and ``phys.n_pac`` PACs inside [0, duration_s]."""
    rr0 = phys.rr_s
    phase_resp, phase_lf = rng.uniform(0.0, 2.0 * np.pi, 2)
    p = [t0 - rng.uniform(0.0, rr0)]
    while p[-1] < t1:
        tk = p[-1]
        mod = (
            phys.rsa * np.sin(2.0 * np.pi * phys.resp_hz * tk + phase_resp)
            + phys.lf * np.sin(2.0 * np.pi * 0.1 * tk + phase_lf)
            + phys.rr_jitter * rng.standard_normal()
        )
        p.append(tk + rr0 * (1.0 + mod))
    p_t = np.array(p)
    qrs_t = p_t + phys.pr_s + rng.normal(0.0, 0.002, p_t.size)
    qrs_kind = np.zeros(p_t.size, int)
    p_kind = np.zeros(p_t.size, int)
    p_conducted = np.ones(p_t.size, bool)

    eligible = np.flatnonzero((qrs_t > 0.4) & (qrs_t < duration_s - 0.6))
    eligible = eligible[eligible >= 1]
    n_ectopic = min(phys.n_pvc + phys.n_pac, (eligible.size + 1) // 2)
    chosen: list[int] = []
    for i in rng.permutation(eligible):
        if len(chosen) == n_ectopic:
            break
        if all(abs(int(i) - c) >= 2 for c in chosen):
            chosen.append(int(i))
    kinds = ["pvc"] * min(phys.n_pvc, len(chosen)) + ["pac"] * max(len(chosen) - phys.n_pvc, 0)
    kinds = [kinds[j] for j in rng.permutation(len(kinds))]
    extra_qrs: list[float] = []
    for i, kind in sorted(zip(chosen, kinds)):
        rr_here = p_t[i] - p_t[i - 1]
        if kind == "pvc":
            coupling = phys.pvc_coupling * rng.uniform(0.9, 1.1)
            extra_qrs.append(qrs_t[i - 1] + coupling * rr_here)
            p_conducted[i] = False  # the sinus P falls inside the PVC and is blocked
            qrs_kind[i] = -1  # removed below
        else:
            coupling = phys.pac_coupling * rng.uniform(0.92, 1.08)
            p_pac = p_t[i - 1] + coupling * rr_here
            shift = p_pac - p_t[i]
            p_t[i:] += shift  # the sinus node is reset by the premature atrial beat
            qrs_t[i:] += shift
            p_kind[i] = P_ECTOPIC
            qrs_t[i] += rng.normal(0.0, 0.01)  # the ectopic P conducts with a slightly different PR
    keep = qrs_kind >= 0
    all_qrs = np.concatenate([qrs_t[keep], extra_qrs])
    all_kind = np.concatenate([qrs_kind[keep], np.full(len(extra_qrs), QRS_PVC)])
    return _finish(all_qrs, all_kind, p_t, p_kind, p_conducted, rr0)


def af_schedule(rng: np.random.Generator, hr_bpm: float, rr_cv: float, t0: float, t1: float) -> Schedule:
    """Atrial fibrillation: independent log-normal RR with mean 60/hr_bpm and coefficient ``rr_cv``."""
    rr0 = 60.0 / hr_bpm
    sigma = np.sqrt(np.log(1.0 + rr_cv**2))
    q = [t0 - rng.uniform(0.0, rr0)]
    while q[-1] < t1:
        rr = rr0 * np.exp(sigma * rng.standard_normal() - sigma**2 / 2.0)
        q.append(q[-1] + max(rr, AF_MIN_RR_S))
    q = np.array(q)
    return _finish(q, np.zeros(q.size, int), [], [], [], rr0)


def flutter_schedule(
    rng: np.random.Generator, atrial_cl_s: float, ratios: tuple[int, ...], av_delay_s: float, phase_s: float,
    t0: float, t1: float,
) -> Schedule:
    """Atrial flutter: QRS after every ``r``-th flutter wave, r drawn from ``ratios`` per beat.

    Flutter wave k starts at ``phase_s + k * atrial_cl_s``; a conducted wave's QRS follows after
    ``av_delay_s``.
    """
    k0 = int(np.floor((t0 - phase_s) / atrial_cl_s)) - 1
    k = k0 + int(rng.integers(0, max(ratios)))
    q = []
    while True:
        t = phase_s + k * atrial_cl_s + av_delay_s + rng.normal(0.0, 0.003)
        if t > t1:
            break
        q.append(t)
        k += int(ratios[int(rng.integers(len(ratios)))])
    q = np.array(q)
    return _finish(q, np.zeros(q.size, int), [], [], [], atrial_cl_s * ratios[0])


def paced_schedule(
    rng: np.random.Generator, rate_bpm: float, av_delay_s: float, atrial_paced: bool, t0: float, t1: float
) -> Schedule:
    """Ventricular pacing at a fixed rate; in dual-chamber mode each QRS follows a paced P."""
    rr0 = 60.0 / rate_bpm
    q = np.arange(t0 - rng.uniform(0.0, rr0), t1 + rr0, rr0) + rng.normal(0.0, 0.001, 1)
    q = q + rng.normal(0.0, 0.0008, q.size)
    kinds = np.full(q.size, QRS_PACED)
    if atrial_paced:
        p_t = q - av_delay_s
        return _finish(q, kinds, p_t, np.full(q.size, P_PACED), np.ones(q.size, bool), rr0)
    return _finish(q, kinds, [], [], [], rr0)


def fibrillatory_waves(rng: np.random.Generator, t: np.ndarray, f_hz: float, amp_mv: float) -> np.ndarray:
    """AF f-waves on the time grid ``t`` (s): shape (n,), unit direction applied by the caller.

    A quasi-periodic oscillation whose rate wanders by about +-0.5 Hz and whose amplitude waxes and
    wanes, with two harmonics (f-waves are irregular in shape and size).
    """
    drift = 0.35 * np.sin(2.0 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 2 * np.pi))
    drift += 0.25 * np.sin(2.0 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 2 * np.pi))
    phase = 2.0 * np.pi * np.cumsum(f_hz + drift) * (t[1] - t[0]) + rng.uniform(0, 2 * np.pi)
    env = 1.0 + 0.35 * np.sin(2.0 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))
    wave = np.sin(phase) + 0.35 * np.sin(2.0 * phase + 1.0) + 0.15 * np.sin(3.0 * phase + 2.0)
    return amp_mv * env * wave / 1.3


def flutter_waves(t: np.ndarray, atrial_cl_s: float, phase_s: float, amp_mv: float) -> np.ndarray:
    """Sawtooth F-waves on the grid ``t`` (s): slow descent, quick rise; peak-to-peak ``amp_mv``."""
    x = 2.0 * np.pi * (t - phase_s) / atrial_cl_s
    wave = sum(np.sin(h * x) / h * np.exp(-0.15 * h) for h in range(1, 7))
    return amp_mv * wave / 1.6
