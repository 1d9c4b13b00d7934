"""Non-dipolar (lead-specific) ventricular content of every recording.

A single fixed dipole explains most, but not all, of the body-surface ECG: multipolar analyses of body
surface potentials find quadrupolar and octapolar components throughout the QRS (quadrupolar strength about
half the dipole's; Horan et al. 1976), and the 12-lead T wave keeps components beyond the first three
principal components ("T-wave residuum", Acar et al. 1999; Zabel et al. 2000), larger in disease. The
precordial electrodes, close to the heart, see the near wall more strongly than a dipole lead vector
predicts (proximity effects), so the non-dipolar part is modelled on V1-V6 only: each QRS and T lobe with
dipole amplitude ``v`` (3,) gets local amplitudes ``P E_k v`` on V1..V6, with ``E_k`` (6 x 3) the patient's
own spatially smooth "proximity" matrix for the part of the wave where the lobe peaks (neighbouring
electrodes alike) and ``P`` the projector onto the precordial patterns that no dipole produces through the
recording's lead matrix (so a dipole fit leaves exactly this content unexplained instead of absorbing it
as a slightly different dipole). The limb leads stay pure dipole projections, so Einthoven's and Goldberger's relations stay exact.

The size is set per patient as the fraction of the template's energy in the eight independent leads
(I, II, V1-V6) that the local part carries: QRS 5-20 %, T 2-10 % (the dipole explains 80-95 % of the QRS;
the T wave is smoother and more dipolar). The pattern comes from :func:`~ecgstudy.simulate.physiology.trait_rng`
so a patient's records share it (a stable individual trait, like torso and heart geometry).
"""

from __future__ import annotations

import numpy as np

from ecgstudy.simulate.leads import DOWER
from ecgstudy.simulate.physiology import TRAIT_NONDIPOLAR, Physiology, trait_rng
from ecgstudy.simulate.waves import PART_QRS, PART_T, Waves, render

QRS_FRACTION = (0.05, 0.20)  # share of QRS energy (I, II, V1-V6) that is non-dipolar, per patient
T_FRACTION = (0.02, 0.10)  # share of T energy that is non-dipolar, per patient
N_PATTERNS = 8  # proximity matrices per wave (lobes beyond this reuse them in turn)
_NEIGHBOUR = 0.6  # correlation of adjacent precordial electrodes' local potentials
_ENERGY_FS = 500.0  # rendering rate of the energy bookkeeping, Hz


def _smoothing() -> np.ndarray:
    """(6, 6) factor giving adjacent electrodes correlation about ``_NEIGHBOUR``."""
    idx = np.arange(6)
    cov = _NEIGHBOUR ** np.abs(idx[:, None] - idx[None, :])
    return np.linalg.cholesky(cov)


def patient_pattern(shape_seed: int) -> dict[str, object]:
    """A patient's non-dipolar traits: proximity matrices (N_PATTERNS, 6, 3) per wave and target fractions."""
    rng = trait_rng(shape_seed, TRAIT_NONDIPOLAR)
    chol = _smoothing()
    return {
        "qrs": np.einsum("ij,kjl->kil", chol, rng.standard_normal((N_PATTERNS, 6, 3))),
        "t": np.einsum("ij,kjl->kil", chol, rng.standard_normal((N_PATTERNS, 6, 3))),
        "qrs_fraction": float(rng.uniform(*QRS_FRACTION)),
        "t_fraction": float(rng.uniform(*T_FRACTION)),
    }


def _non_dipolar_projector(dower: np.ndarray) -> np.ndarray:
    """(6, 6) projector onto the precordial patterns no dipole can produce through ``dower`` (8 x 3).

    A pattern u on V1..V6 (zero on the limb leads) is non-dipolar when it is orthogonal to every column
    of the precordial rows of the lead matrix; what remains after this projection is left unexplained by
    a least-squares dipole fit, as body-surface multipolar content is.
    """
    q, _ = np.linalg.qr(np.asarray(dower, float)[2:])  # (6, 3) orthonormal basis of the dipolar patterns
    return np.eye(6) - q @ q.T


def energies(waves: Waves, part: int, dower: np.ndarray = DOWER) -> tuple[float, float]:
    """(dipolar, local) energy of ``part`` in the eight independent leads (mV^2 s), at 500 Hz."""
    sel = waves.of(part)
    if not len(sel):
        return 0.0, 0.0
    on, off = sel.onset_offset(part)
    n = int(np.ceil((off - on + 0.04) * _ENERGY_FS)) + 1
    chans = render(sel, on - 0.02, _ENERGY_FS, n)
    dip = dower @ chans[:3]
    return float((dip**2).sum() / _ENERGY_FS), float((chans[3:] ** 2).sum() / _ENERGY_FS)


def _add(waves: Waves, part: int, matrices: np.ndarray, fraction: float, dower: np.ndarray) -> None:
    """Give every dipolar lobe of ``part`` its local amplitudes, scaled so the local energy is ``fraction``
    of the part's energy, and shrink its dipole by ``sqrt(1 - fraction)`` so the total energy stays (the
    non-dipolar part is a share of the potentials, not an addition to them). In place."""
    sel = np.flatnonzero((waves.part == part) & ~waves.plateau & np.any(waves.amp[:, :3] != 0.0, axis=1))
    if not sel.size:
        return
    order = sel[np.argsort(waves.t[sel], kind="stable")]
    on, off = waves.onset_offset(part)
    # a lobe's proximity matrix depends on when it peaks within the wave (which wall is active), so a
    # condition that adds or removes a lobe leaves the other lobes' local content in place
    when = np.clip((waves.t[order] - on) / max(off - on, 1e-6), 0.0, 0.999)
    raw = np.stack([matrices[int(w * len(matrices))] @ waves.amp[k, :3] for w, k in zip(when, order)])  # (K, 6)
    raw = raw @ _non_dipolar_projector(dower)
    probe = waves.copy()
    probe.amp[:, 3:] = 0.0
    probe.amp[order, 3:] = raw
    dip_e, loc_e = energies(probe, part, dower)
    if loc_e <= 0.0 or dip_e <= 0.0:
        return
    scale = np.sqrt(fraction * dip_e / loc_e)
    dipolar = (waves.part == part) & ~waves.plateau
    waves.amp[dipolar, :3] *= np.sqrt(1.0 - fraction)
    waves.amp[order, 3:] += scale * raw


def add_non_dipolar(phys: Physiology, shape_seed: int) -> None:
    """Add the patient's non-dipolar QRS and T content to the recording's templates (beat and PVC), in place.

    Runs after every condition has shaped the beat, so conduction changes (bundle branch block, pacing,
    ectopy) carry it too.
    """
    pattern = patient_pattern(shape_seed)
    dower = DOWER if phys.dower is None else phys.dower
    _add(phys.qrs, PART_QRS, pattern["qrs"], pattern["qrs_fraction"], dower)
    _add(phys.t, PART_T, pattern["t"], pattern["t_fraction"], dower)
    if phys.pvc is not None:
        _add(phys.pvc, PART_QRS, pattern["qrs"], pattern["qrs_fraction"], dower)
        _add(phys.pvc, PART_T, pattern["t"], pattern["t_fraction"], dower)
    phys.notes["non_dipolar"] = (pattern["qrs_fraction"], pattern["t_fraction"])
