"""Gamma-distributed cylinders (AxCaliber) against analytic limits and direct quadrature."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import gamma

from microlearn import Acquisition
from microlearn.compartments import CylinderGPD, GammaCylinders, Stick
from microlearn.compartments.distributed import gamma_nodes


@pytest.fixture(scope="module")
def activeax():
    return Acquisition.scheme("activeax")


@pytest.fixture
def mu(rng):
    v = rng.normal(size=(6, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_b0_gives_one_and_shapes_broadcast(activeax, mu):
    s = GammaCylinders().signal(activeax, mu=mu, d_par=0.6e-9,
                                diameter_mean=np.linspace(1e-6, 8e-6, 6), diameter_shape=4.0)
    assert s.shape == (6, activeax.n_measurements)
    assert np.allclose(s[:, activeax.b0_mask], 1.0)
    assert np.all((s > 0) & (s <= 1 + 1e-12))


def test_narrow_distribution_is_one_cylinder(activeax, mu):
    d = np.array([2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 8e-6])
    dist = GammaCylinders().signal(activeax, mu=mu, d_par=1.7e-9, diameter_mean=d,
                                   diameter_shape=1e6)
    one = CylinderGPD().signal(activeax, mu=mu, d_par=1.7e-9, diameter=d)
    assert np.abs(dist - one).max() < 1e-3


def test_small_diameters_are_a_stick(activeax, mu):
    dist = GammaCylinders().signal(activeax, mu=mu, d_par=1.7e-9, diameter_mean=1e-9,
                                   diameter_shape=3.0)
    stick = Stick().signal(activeax, mu=mu, d_par=1.7e-9)
    assert np.abs(dist - stick).max() < 1e-6


def test_equals_the_area_weighted_integral_over_the_gamma_density(activeax):
    """Direct quadrature of ∫ d² p(d) E_cyl(d) dd / ∫ d² p(d) dd (scipy's gamma pdf)."""
    mean, k = 4e-6, 3.0
    mu = np.array([1.0, 0.0, 0.0])  # measurements at every angle to it
    sig = GammaCylinders().signal(activeax, mu=mu, d_par=0.6e-9, diameter_mean=mean,
                                  diameter_shape=k)
    pdf = gamma(k, scale=mean / k).pdf
    rows = np.flatnonzero(~activeax.b0_mask)[::37]

    def cyl(d, i):
        return CylinderGPD().signal(activeax, mu=mu, d_par=0.6e-9, diameter=d)[i]

    norm = quad(lambda d: d**2 * pdf(d), 0, 60e-6, points=[mean], limit=200)[0]
    for i in rows:
        ref = quad(lambda d, i=i: d**2 * pdf(d) * cyl(d, i), 0, 60e-6, points=[mean],
                   limit=200)[0] / norm
        assert sig[i] == pytest.approx(ref, abs=2e-3), i


def test_nodes_follow_the_area_weighted_gamma():
    nodes = gamma_nodes(np.array([2e-6, 5e-6]), np.array([4.0, 10.0]), 400)
    # the d²-weighted gamma(k, θ) is gamma(k + 2, θ): mean (k + 2) θ
    assert nodes.mean(1) == pytest.approx([2e-6 * 6 / 4, 5e-6 * 12 / 10], rel=1e-3)


def test_tabulated_coefficient_matches_the_series(activeax):
    from microlearn.compartments.cylinder import van_gelderen_coefficient
    from microlearn.compartments.distributed import _tabulated

    d = np.geomspace(0.05e-6, 40e-6, 300)
    shells = activeax.shell_index
    first = np.array([np.flatnonzero(shells == k)[0] for k in range(shells.max() + 1)])
    args = (activeax.delta[first], activeax.Delta[first])
    exact = van_gelderen_coefficient(d, 0.6e-9, *args)
    assert np.abs(_tabulated(d, 0.6e-9, *args) / exact - 1).max() < 1e-4
