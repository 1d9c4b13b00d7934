"""Signature masks: for each condition of a record, the leads and time spans where its signature lies.

A condition's leads come from the catalogue: a fixed set (the leads in which its diagnostic criterion
is read, e.g. II/III/aVF for an inferior infarct) or ``projected:<key>``, the leads onto which the
condition's own dipole (an ST vector, the delta wave, the T wave) projects with at least half of its
largest projection in this record. Its time spans are segments of the beats:

- ``record``: the whole recording (rate and rhythm conditions);
- ``p_pr``: P onset to QRS onset of each conducted P;
- ``qrs``: QRS onset to offset; ``terminal_qrs``: its last 50 ms; ``st_t``: J point to T offset;
- ``pre_excitation``: the delta wave (QRS onset to the end of pre-excitation);
- ``ectopic``: the premature beats (PVC: QRS onset to T offset; PAC: P onset to QRS offset).

Spans are clipped to [0, duration] and merged where they touch; rows are (code, lead, start_s, end_s).
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.conditions import CATALOGUE
from ecgstudy.simulate.effects import t_vector
from ecgstudy.simulate.leads import LEADS, twelve_lead_matrix
from ecgstudy.simulate.physiology import Physiology
from ecgstudy.simulate.rhythm import P_ECTOPIC, QRS_PVC, Schedule
from ecgstudy.simulate.waves import PART_P, PART_QRS, PART_T

PROJECTED_FRACTION = 0.5  # a lead is in a projected mask when it shows >= half the largest projection


def beat_times(phys: Physiology, schedule: Schedule) -> dict[str, np.ndarray]:
    """Onsets and offsets (s) of every complex: qrs_on, qrs_off, t_off, kind; and of every P."""
    on = schedule.qrs_t
    kind = schedule.qrs_kind
    qrs_dur = phys.qrs_duration_s()
    qt_ref = phys.qt_ref_s()
    qt = qt_ref + 0.154 * (schedule.rr_prev - 1.0)
    off = on + qrs_dur
    t_off = on + qt
    if phys.pvc is not None and (kind == QRS_PVC).any():
        p_on, p_off = phys.pvc.onset_offset(PART_QRS)
        _, pt_off = phys.pvc.onset_offset(PART_T)
        pvc = kind == QRS_PVC
        off = np.where(pvc, on + (p_off - p_on), off)
        t_off = np.where(pvc, on + pt_off, t_off)
    return {"qrs_on": on, "qrs_off": off, "t_off": t_off, "kind": kind}


def segment_spans(
    code: str, segment: str, phys: Physiology, schedule: Schedule, duration_s: float
) -> list[tuple[float, float]]:
    """Time spans (s) of one segment kind for one condition, unmerged."""
    if segment == "record":
        return [(0.0, duration_s)]
    b = beat_times(phys, schedule)
    normal = b["kind"] != QRS_PVC
    if segment == "qrs":
        return list(zip(b["qrs_on"][normal], b["qrs_off"][normal]))
    if segment == "terminal_qrs":
        return list(zip(b["qrs_off"][normal] - 0.05, b["qrs_off"][normal]))
    if segment == "st_t":
        return list(zip(b["qrs_off"][normal], b["t_off"][normal]))
    if segment == "pre_excitation":
        delta = phys.notes.get("delta", (0.04,))[0]
        return list(zip(b["qrs_on"][normal] - 0.01, b["qrs_on"][normal] + delta + 0.01))
    if segment == "p_pr":
        conducted = schedule.p_conducted
        p_on = schedule.p_t[conducted]
        nxt = np.searchsorted(b["qrs_on"], p_on)
        ok = nxt < b["qrs_on"].size
        return list(zip(p_on[ok], b["qrs_on"][nxt[ok]]))
    if segment == "ectopic":
        if code == "PVC":
            pvc = b["kind"] == QRS_PVC
            return list(zip(b["qrs_on"][pvc], b["t_off"][pvc]))
        if code == "PAC":
            spans = []
            p_dur = 0.1
            if phys.pac_p is not None:
                on, off = phys.pac_p.onset_offset(PART_P)
                p_dur = off - on
            for p in schedule.p_t[schedule.p_kind == P_ECTOPIC]:
                k = np.searchsorted(b["qrs_on"], p)
                end = b["qrs_off"][k] if k < b["qrs_on"].size else p + p_dur
                spans.append((p, end))
            return spans
        return []
    raise ValueError(f"unknown mask segment {segment!r} for condition {code!r}")


def merge_spans(spans: list[tuple[float, float]], duration_s: float) -> list[tuple[float, float]]:
    """Clip spans to [0, duration_s], drop empty ones, merge overlapping or touching ones."""
    clipped = sorted((max(s, 0.0), min(e, duration_s)) for s, e in spans)
    out: list[list[float]] = []
    for s, e in clipped:
        if e <= s:
            continue
        if out and s <= out[-1][1] + 1e-9:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(float(s), float(e)) for s, e in out]


def condition_leads(code: str, phys: Physiology, dower: np.ndarray) -> tuple[str, ...]:
    """The leads of ``code``'s signature in this record."""
    spec = CATALOGUE[code].leads
    if not isinstance(spec, str):
        return tuple(spec)
    key = spec.split(":", 1)[1]
    if key == "t_vector":
        vector = t_vector(phys)
    elif key == "delta":
        vector = phys.notes["delta"][1]
    else:
        vector = phys.notes[key]
    proj = np.abs(twelve_lead_matrix(dower) @ np.asarray(vector, float))
    if proj.max() <= 0:
        return ()
    return tuple(LEADS[i] for i in np.flatnonzero(proj >= PROJECTED_FRACTION * proj.max()))


def signature_rows(
    codes: dict[str, float], phys: Physiology, schedule: Schedule, dower: np.ndarray, duration_s: float
) -> list[tuple[str, str, float, float]]:
    """Mask rows (code, lead, start_s, end_s) of every true condition of a record."""
    rows: list[tuple[str, str, float, float]] = []
    for code in sorted(codes):
        cond = CATALOGUE[code]
        if not cond.segments:
            continue
        segments = list(cond.segments)
        if code in ("IMI", "ASMI", "AMI") and phys.notes.get(f"{code}_t_inverted"):
            segments.append("st_t")
        if code == "LVH" and phys.notes.get("lvh_strain"):
            segments.append("st_t")
        if code == "RVH" and phys.notes.get("rvh_strain"):
            segments.append("st_t")
        spans: list[tuple[float, float]] = []
        for seg in segments:
            spans += segment_spans(code, seg, phys, schedule, duration_s)
        spans = merge_spans(spans, duration_s)
        for lead in condition_leads(code, phys, dower):
            rows += [(code, lead, s, e) for s, e in spans]
    return rows
