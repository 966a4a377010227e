"""Analytic limits and independent implementations for every compartment."""

import numpy as np
import pytest
from numpy.polynomial import legendre
from scipy.special import erf

from microlearn.compartments import Ball, CylinderGPD, Dot, Stick, Zeppelin
from microlearn.compartments.dispersion import (
    kappa_to_odi,
    odi_to_kappa,
    watson_stick_signal,
    watson_stick_signal_legendre,
    watson_zeppelin_signal,
)
from microlearn.compartments.gaussian import stick_signal


def test_b0_gives_one(hcp, unit_vectors):
    b0 = hcp.b0_mask
    mu = unit_vectors[:5]
    sigs = [Stick().signal(hcp, mu=mu, d_par=1.7e-9),
            Zeppelin().signal(hcp, mu=mu, d_par=1.7e-9, d_perp=0.5e-9),
            Ball().signal(hcp, d_iso=3e-9), Dot().signal(hcp, batch_shape=(5,)),
            CylinderGPD().signal(hcp, mu=mu, d_par=1.7e-9, diameter=5e-6),
            watson_stick_signal(hcp, mu, 1.7e-9, 3.0)]
    for s in sigs:
        assert np.allclose(s[..., b0], 1.0)


def test_cylinder_small_diameter_is_stick(activeax_acq, unit_vectors):
    mu = unit_vectors[:10]
    cyl = CylinderGPD().signal(activeax_acq, mu=mu, d_par=1.7e-9, diameter=1e-9)
    stick = Stick().signal(activeax_acq, mu=mu, d_par=1.7e-9)
    assert np.abs(cyl - stick).max() < 1e-6
    big = CylinderGPD().signal(activeax_acq, mu=mu, d_par=1.7e-9, diameter=8e-6)
    assert np.abs(big - stick).max() > 0.05  # restriction matters at 8 µm
    assert np.all(big <= stick + 1e-12)


def test_watson_limits(hcp, unit_vectors):
    mu = unit_vectors[:5]
    stick = stick_signal(hcp.bvals, hcp.bvecs, mu, 1.7e-9)
    errs = [np.abs(watson_stick_signal(hcp, mu, 1.7e-9, k) - stick).max()
            for k in (16.0, 64.0, 256.0, 600.0)]
    assert np.all(np.diff(errs) < 0) and errs[-1] < 0.03
    x = hcp.bvals * 1.7e-9
    mean = np.where(x > 0, np.sqrt(np.pi / (4 * np.maximum(x, 1e-12))) * erf(np.sqrt(x)), 1.0)
    iso = watson_stick_signal(hcp, mu, 1.7e-9, 0.0)
    assert np.abs(iso - mean).max() < 1e-8


def _watson_quadrature(acq, mu, d, kappa, n_t=200, n_phi=256):
    """Direct quadrature in the frame of μ: Gauss–Legendre in t, trapezoid in φ."""
    t, wt = legendre.leggauss(n_t)
    phi = np.arange(n_phi) * 2 * np.pi / n_phi
    helper = np.array([1.0, 0, 0]) if abs(mu[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(mu, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(mu, e1)
    st = np.sqrt(1 - t**2)
    n = (t[:, None, None] * mu + st[:, None, None] * (np.cos(phi)[None, :, None] * e1
                                                      + np.sin(phi)[None, :, None] * e2))
    w = wt[:, None] * np.exp(kappa * (t**2 - 1))[:, None] * np.ones_like(phi)
    w = w / w.sum()
    sig = np.exp(-acq.bvals * d * (n.reshape(-1, 3) @ acq.bvecs.T) ** 2)
    return w.ravel() @ sig


@pytest.mark.parametrize("kappa", [0.5, 4.0, 20.0])
def test_noddi_intra_matches_quadrature(hcp, unit_vectors, kappa):
    mu = unit_vectors[3]
    ref = _watson_quadrature(hcp, mu, 1.7e-9, kappa)
    got = watson_stick_signal(hcp, mu[None], 1.7e-9, kappa)[0]
    assert np.abs(got - ref).max() < 1e-6
    assert np.abs(watson_stick_signal_legendre(hcp, mu[None], 1.7e-9, kappa)[0] - ref).max() < 1e-6


def test_watson_zeppelin_is_averaged_tensor(hcp, unit_vectors):
    mu = unit_vectors[0]
    # κ→0: isotropic tensor with mean diffusivity (d∥ + 2 d⊥)/3
    s = watson_zeppelin_signal(hcp, mu[None], 1.7e-9, 0.5e-9, 1e-8)[0]
    assert np.allclose(s, np.exp(-hcp.bvals * (1.7e-9 + 1e-9) / 3), atol=1e-6)


def test_odi_kappa_inverse():
    odi = np.linspace(0.02, 0.98, 7)
    assert np.allclose(kappa_to_odi(odi_to_kappa(odi)), odi)


def test_zeppelin_equals_dipy_tensor(hcp, unit_vectors):
    from dipy.sims.voxel import single_tensor

    mu = unit_vectors[7]
    helper = np.array([1.0, 0, 0]) if abs(mu[0]) < 0.9 else np.array([0, 1.0, 0])
    e2 = np.cross(mu, helper)
    e2 /= np.linalg.norm(e2)
    e3 = np.cross(mu, e2)
    evecs = np.stack([mu, e2, e3], 1)
    ref = single_tensor(hcp.to_dipy(), S0=1.0, evals=np.array([1.7e-3, 0.4e-3, 0.4e-3]),
                        evecs=evecs)
    got = Zeppelin().signal(hcp, mu=mu[None], d_par=1.7e-9, d_perp=0.4e-9)[0]
    assert np.allclose(got, ref, atol=1e-10)
