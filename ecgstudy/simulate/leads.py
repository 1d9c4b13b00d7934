"""From the cardiac dipole to the 12 standard leads.

The heart's electrical activity is modelled as a time-varying dipole (the vectorcardiogram, VCG) in the
Frank coordinate system: X points to the patient's left, Y to the feet (inferior), Z to the back
(posterior), in mV. The eight independent leads (I, II, V1-V6) are linear projections of the dipole
through the Dower transfer matrix; the four remaining limb leads are then derived from I and II by
Einthoven's and Goldberger's definitions, so that

    III = II - I,  aVR = -(I + II) / 2,  aVL = I - II / 2,  aVF = II - I / 2

hold exactly (on the quantised records as well; see :mod:`ecgstudy.simulate.writer`).

Sources (see SOURCES.md): the forward matrix (VCG -> I, II, V1-V6) is Dower et al. 1980 as tabulated by
Edenbrandt & Pahlm 1988, who also published the inverse Dower matrix (12-lead -> VCG) kept here for
checking the pair (``INVERSE_DOWER @ DOWER`` is close to the 3x3 identity).
"""

from __future__ import annotations

import numpy as np

from ecgstudy.data.leads import LEADS, WFDB_NAMES  # noqa: F401  (the study's lead order, re-exported)

#: The eight independent leads, in the row order of :data:`DOWER`.
INDEPENDENT: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: Row of each independent lead inside the 12-lead order.
INDEPENDENT_ROWS: tuple[int, ...] = (0, 1, 6, 7, 8, 9, 10, 11)

#: Dower transfer matrix, VCG (X, Y, Z) -> leads I, II, V1-V6 (Dower et al. 1980; Edenbrandt & Pahlm 1988).
DOWER: np.ndarray = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ]
)
DOWER.setflags(write=False)

#: Inverse Dower matrix, leads I, II, V1-V6 -> VCG (Edenbrandt & Pahlm 1988), columns in INDEPENDENT order.
INVERSE_DOWER: np.ndarray = np.array(
    [
        [0.156, -0.010, -0.172, -0.074, 0.122, 0.231, 0.239, 0.194],  # X
        [-0.227, 0.887, 0.057, -0.019, -0.106, -0.022, 0.041, 0.048],  # Y
        [0.022, 0.102, -0.229, -0.310, -0.246, -0.063, 0.055, 0.108],  # Z
    ]
)
INVERSE_DOWER.setflags(write=False)

#: Projection rows of the derived limb leads (III, aVR, aVL, aVF) in terms of (I, II).
LIMB_FROM_I_II: np.ndarray = np.array([[-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])
LIMB_FROM_I_II.setflags(write=False)


def twelve_lead_matrix(dower: np.ndarray = DOWER) -> np.ndarray:
    """The full 12 x 3 transfer matrix (rows in :data:`LEADS` order) built from an 8 x 3 one."""
    full = np.empty((12, 3))
    full[list(INDEPENDENT_ROWS)] = dower
    full[2:6] = LIMB_FROM_I_II @ dower[:2]
    return full


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> np.ndarray:
    """III, aVR, aVL, aVF from leads I and II (same shape as the inputs, stacked first).

    Works on floats and on integer ADC counts; with even integer counts in I and II every derived
    lead is an exact integer as well (the halves are exact).
    """
    if np.issubdtype(np.asarray(lead_i).dtype, np.integer):
        return np.stack([lead_ii - lead_i, -(lead_i + lead_ii) // 2, lead_i - lead_ii // 2, lead_ii - lead_i // 2])
    return np.stack([lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2])


def expand_to_twelve(eight: np.ndarray) -> np.ndarray:
    """12 leads from the 8 independent ones.

    Parameters
    ----------
    eight : array of shape (8, n) in :data:`INDEPENDENT` order (I, II, V1-V6).

    Returns
    -------
    array of shape (12, n) in :data:`LEADS` order, the limb leads derived exactly from I and II.
    """
    out = np.empty((12, eight.shape[1]), dtype=eight.dtype)
    out[list(INDEPENDENT_ROWS)] = eight
    out[2:6] = derive_limb_leads(eight[0], eight[1])
    return out


def placement_matrix(rng: np.random.Generator, precordial_sd: float, limb_sd: float) -> np.ndarray:
    """A Dower matrix perturbed for one recording's electrode placement and torso.

    Each row is scaled by ``1 + N(0, sd)`` and gets an added random vector of relative size ``sd``:
    precordial electrodes are placed one intercostal space or a few cm off in routine practice, which
    changes their lead vectors by 10-20 %; limb electrodes (far from the heart) barely matter.

    Returns
    -------
    array of shape (8, 3), rows I, II, V1-V6.
    """
    sd = np.array([limb_sd, limb_sd] + [precordial_sd] * 6)[:, None]
    norms = np.linalg.norm(DOWER, axis=1, keepdims=True)
    scale = 1.0 + sd * rng.standard_normal((8, 1))
    return DOWER * scale + sd * norms * rng.standard_normal((8, 3)) / np.sqrt(3.0)


def frontal_axis_deg(vector: np.ndarray, dower: np.ndarray = DOWER) -> float:
    """Frontal-plane axis (degrees, -180..180] of a net QRS vector, the hexaxial way (leads I and aVF).

    Parameters
    ----------
    vector : array of shape (3,), a net (time-integrated) dipole (X, Y, Z).
    """
    lead_i = float(dower[0] @ vector)
    lead_avf = float(dower[1] @ vector) - lead_i / 2.0
    return float(np.degrees(np.arctan2(lead_avf, lead_i)))


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3 x 3 rotation about the Frank ``"x"``, ``"y"`` or ``"z"`` axis by ``degrees``.

    About z (the frontal plane) a positive angle turns +X (left) toward +Y (feet), i.e. increases the
    frontal axis. About y (the horizontal plane) a positive angle turns +Z (posterior) toward +X (left).
    """
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    if axis == "z":
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if axis == "y":
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    if axis == "x":
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    raise ValueError(f"rotation axis must be 'x', 'y' or 'z', got {axis!r}")
