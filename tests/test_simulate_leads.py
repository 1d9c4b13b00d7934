"""Lead projection, derived limb leads and quantisation of the simulator."""

import numpy as np
import pytest

from ecgstudy.simulate.leads import (
    DOWER,
    INVERSE_DOWER,
    LEADS,
    derive_limb_leads,
    expand_to_twelve,
    frontal_axis_deg,
    placement_matrix,
    rotation,
    twelve_lead_matrix,
)
from ecgstudy.simulate.writer import downsample, quantise


def test_inverse_dower_inverts_dower():
    # The two published matrices are each other's least-squares inverse: their product is the identity
    # to the published three decimals (a typo in either table would break this).
    assert np.allclose(INVERSE_DOWER @ DOWER, np.eye(3), atol=0.005)


def test_twelve_lead_matrix_obeys_einthoven_and_goldberger():
    m = twelve_lead_matrix(DOWER)
    i, ii, iii, avr, avl, avf = m[:6]
    assert np.allclose(iii, ii - i)
    assert np.allclose(avr, -(i + ii) / 2)
    assert np.allclose(avl, i - ii / 2)
    assert np.allclose(avf, ii - i / 2)


def test_expand_to_twelve_float_and_integer():
    rng = np.random.default_rng(0)
    eight = rng.normal(size=(8, 50))
    twelve = expand_to_twelve(eight)
    assert twelve.shape == (12, 50)
    assert np.allclose(twelve[LEADS.index("aVF")], eight[1] - eight[0] / 2)
    counts = 2 * rng.integers(-500, 500, size=(2, 50))
    derived = derive_limb_leads(counts[0], counts[1])
    assert derived.dtype.kind == "i"
    assert np.array_equal(2 * derived[1], -(counts[0] + counts[1]))


@pytest.mark.parametrize("lsb", [2, 4])
def test_quantise_keeps_identities_exactly(lsb):
    rng = np.random.default_rng(1)
    eight = rng.normal(0, 1.0, size=(8, 400))
    q = quantise(eight, lsb)
    i, ii = q[0].astype(int), q[1].astype(int)
    assert np.array_equal(q[2], ii - i)
    assert np.array_equal(2 * q[3], -(i + ii))
    assert np.array_equal(2 * q[4], 2 * i - ii)
    assert np.array_equal(2 * q[5], 2 * ii - i)
    assert np.all(q[[0, 1, 6, 7, 8, 9, 10, 11]] % lsb == 0)
    assert np.abs(q[0] / 1000.0 - eight[0]).max() <= lsb / 2000.0 + 1e-12
    low = downsample(q, 500, 100, lsb)
    assert low.shape == (12, 80)
    assert np.array_equal(low[2], low[1] - low[0])


def test_quantise_rejects_odd_resolution():
    with pytest.raises(ValueError, match="even"):
        quantise(np.zeros((8, 3)), 3)


def test_frontal_axis_of_pure_directions():
    # A dipole along +X reads mostly in lead I (axis near 0), along +Y (feet) near +90.
    assert abs(frontal_axis_deg(np.array([1.0, 0.0, 0.0]))) < 25
    assert 60 < frontal_axis_deg(np.array([0.0, 1.0, 0.0])) < 110
    assert frontal_axis_deg(np.array([0.0, -1.0, 0.0])) < -60


def test_rotation_is_orthonormal_and_placement_is_close_to_dower():
    r = rotation("z", 30.0) @ rotation("y", -20.0)
    assert np.allclose(r @ r.T, np.eye(3))
    m = placement_matrix(np.random.default_rng(2), 0.1, 0.02)
    assert m.shape == (8, 3)
    rel = np.linalg.norm(m - DOWER, axis=1) / np.linalg.norm(DOWER, axis=1)
    assert rel[:2].max() < 0.1 and rel.max() < 0.6
    with pytest.raises(ValueError):
        rotation("w", 1.0)
