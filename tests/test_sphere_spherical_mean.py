"""SphereGPD and the spherical-mean compartments against analytic limits."""

import numpy as np
import pytest
from scipy.integrate import quad

from microlearn import Acquisition
from microlearn.compartments import Ball, SphereGPD, SphericalMeanStick, SphericalMeanZeppelin
from microlearn.compartments.sphere import sphere_gpd_coefficient, sphere_roots
from microlearn.compartments.spherical_mean import erf_mean
from microlearn.units import GAMMA, MS, S_PER_MM2


@pytest.fixture(scope="module")
def sandi_like():
    """b0 + 5 shells to b = 10,000 s/mm², δ/Δ = 10/30 ms, 3 directions each."""
    dirs = np.eye(3)
    b = np.concatenate([[0.0], np.repeat([1000, 2500, 5000, 7500, 10000], 3)]) * S_PER_MM2
    v = np.concatenate([[[0, 0, 0]], np.tile(dirs, (5, 1))])
    return Acquisition(b, v, 10 * MS, 30 * MS, TE=80 * MS)


def test_sphere_roots_solve_the_boundary_condition():
    from scipy.special import jv, jvp

    x = sphere_roots(40)
    assert x[0] == pytest.approx(2.0815759778, abs=1e-9)
    # x J'_{3/2}(x) - J_{3/2}(x) / 2 = 0 is the same condition as j1'(x) = 0
    assert np.abs(x * jvp(1.5, x) - 0.5 * jv(1.5, x)).max() < 1e-10
    assert np.all(np.diff(x) > 2.5) and np.all(np.diff(x) < 4.0)


def test_sphere_b0_one_and_small_diameter_one(sandi_like):
    s = SphereGPD().signal(sandi_like, diameter=np.array([1e-9, 1e-7, 8e-6, 20e-6]),
                           d_intra=3e-9)
    assert s.shape == (4, sandi_like.n_measurements)
    assert np.allclose(s[:, 0], 1.0)
    assert np.abs(s[0] - 1).max() < 1e-9
    assert np.abs(s[1] - 1).max() < 1e-5
    # a bigger sphere attenuates more, monotonically in b
    assert np.all(s[3, 1:] < s[2, 1:]) and np.all(np.diff(s[3, 1::3]) < 0)


def test_sphere_narrow_pulse_long_time_limit():
    """δ → 0, Δ ≫ R²/D: ln E = -(γGδ)² R²/5 (the second moment of a uniform sphere)."""
    for radius in (2e-6, 5e-6, 10e-6):
        d = 2e-9
        delta, Delta = np.array([1e-8]), np.array([200 * radius**2 / d])
        c = sphere_gpd_coefficient(2 * radius, d, delta, Delta)[0]
        assert c == pytest.approx(-(GAMMA * delta[0]) ** 2 * radius**2 / 5, rel=1e-4)


def test_sphere_long_pulse_motional_narrowing_limit():
    """δ, Δ - δ ≫ R²/D: ln E = -2γ²G²δ ∫<x(0)x(t)>dt with the integral 8R⁴/(175 D).

    The integral is <x u(x)> where D ∇²u = -x with a no-flux wall, solved in closed form
    (u = x (3R² - r²) / (10 D)), independently of the root series.
    """
    for radius in (2e-6, 4e-6, 8e-6):
        d = 3e-9
        tau = radius**2 / d
        delta, Delta = np.array([2000 * tau]), np.array([4000 * tau])
        c = sphere_gpd_coefficient(2 * radius, d, delta, Delta)[0]
        ref = -2 * GAMMA**2 * delta[0] * 8 * radius**4 / (175 * d)
        assert c == pytest.approx(ref, rel=3e-4)


def test_sphere_series_converged_for_soma_sizes():
    delta, Delta = np.array([10 * MS, 5 * MS]), np.array([30 * MS, 60 * MS])
    diam = np.array([2e-6, 10e-6, 24e-6, 40e-6])
    c = sphere_gpd_coefficient(diam, 3e-9, delta, Delta)
    ref = sphere_gpd_coefficient(diam, 3e-9, delta, Delta, n_roots=3000)
    assert np.abs(c / ref - 1).max() < 3e-5


def test_large_sphere_tends_to_free_diffusion():
    """R ≫ √(DΔ): ln E → -b D (within the short-time surface correction, < 1 %)."""
    delta, Delta = np.array([10 * MS]), np.array([30 * MS])
    b = GAMMA**2 * delta**2 * (Delta - delta / 3)
    ratios = [sphere_gpd_coefficient(2 * r, 2e-9, delta, Delta, n_roots=4000)[0] / (-b[0] * 2e-9)
              for r in (2e-5, 1e-4, 1e-3)]
    assert np.all(np.diff(ratios) > 0) and 0.99 < ratios[-1] < 1.0


def test_erf_mean_matches_quadrature_through_zero():
    for x in (-8.0, -0.3, -2e-3, -5e-4, 0.0, 5e-4, 2e-3, 0.7, 12.0, 60.0):
        ref = quad(lambda t, x=x: np.exp(-x * t * t), 0, 1, epsabs=1e-15, epsrel=1e-13)[0]
        assert erf_mean(x) == pytest.approx(ref, rel=1e-12, abs=1e-14)


def test_spherical_mean_stick_and_zeppelin_limits(sandi_like):
    stick = SphericalMeanStick().signal(sandi_like, d_par=np.array([1e-9, 2.5e-9]))
    assert stick.shape == (2, sandi_like.n_measurements)
    assert np.allclose(stick[:, 0], 1.0)
    x = sandi_like.bvals[1:] * 2.5e-9
    assert np.allclose(stick[1, 1:], np.sqrt(np.pi / (4 * x)) * __import__("scipy").special.erf(
        np.sqrt(x)), rtol=1e-13)
    zep = SphericalMeanZeppelin()
    ball = Ball().signal(sandi_like, d_iso=1.3e-9)
    for gap in (0.0, 1e-22, -1e-22):
        z = zep.signal(sandi_like, d_par=1.3e-9 + gap, d_perp=1.3e-9)
        assert np.abs(z - ball).max() < 1e-12
    z0 = zep.signal(sandi_like, d_par=2e-9, d_perp=0.0)
    assert np.abs(z0 - SphericalMeanStick().signal(sandi_like, d_par=2e-9)).max() < 1e-14
    # oblate (d_perp > d_par) joins prolate smoothly: monotone, no kink at d_par = d_perp
    near = np.array([zep.signal(sandi_like, d_par=1.3e-9 + e, d_perp=1.3e-9)[1:]
                     for e in (-2e-13, -1e-13, 0.0, 1e-13, 2e-13)])
    assert np.all(np.diff(near, axis=0) < 0)
    second = np.diff(near, 2, axis=0)
    assert np.abs(second).max() < 1e-3 * np.abs(np.diff(near, axis=0)).max()
