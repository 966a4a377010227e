"""Powder averaging: grouping, the averaged acquisition, and the spherical-mean limit."""

import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.compartments import SphericalMeanStick, SphericalMeanZeppelin, Zeppelin
from microlearn.compartments.dispersion import watson_stick_signal
from microlearn.data.powder import powder_average, powder_groups, spherical_mean_acquisition
from microlearn.units import MS, S_PER_MM2


def _dense(n_dirs=400, shells=(1000, 3000, 6000, 10000)):
    """Full-sphere Fibonacci directions (a dense, near-uniform set) on every shell."""
    i = np.arange(n_dirs) + 0.5
    z = 1 - 2 * i / n_dirs
    phi = np.pi * (3 - np.sqrt(5)) * i
    r = np.sqrt(1 - z**2)
    dirs = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    b = np.concatenate([np.zeros(3)] + [np.full(n_dirs, s) for s in shells]) * S_PER_MM2
    v = np.concatenate([np.zeros((3, 3))] + [dirs] * len(shells))
    return Acquisition(b, v, 10 * MS, 30 * MS, TE=80 * MS)


def test_hcp_groups_and_acquisition(hcp):
    index, n = powder_groups(hcp)
    assert n == 4 and np.bincount(index).tolist() == [18, 90, 90, 90]
    sm = spherical_mean_acquisition(hcp)
    assert sm.n_measurements == 4 and sm.n_b0 == 1
    assert np.allclose(sm.bvals / S_PER_MM2, [0, 1000, 2000, 3000], atol=1)
    assert np.allclose(sm.delta, hcp.delta[0]) and np.allclose(sm.Delta, hcp.Delta[0])
    assert np.allclose(sm.TE, hcp.TE[0])
    # G stays consistent with b, δ, Δ
    from microlearn.acquisition import b_value

    assert np.allclose(b_value(sm.G, sm.delta, sm.Delta), sm.bvals, rtol=1e-9)


def test_multi_te_and_timings_form_separate_groups():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0.0],
                  [1, 0, 0], [0, 1, 0]])
    b = np.array([0, 1000, 1000, 0, 1000, 1000, 1000, 1000]) * S_PER_MM2
    te = np.array([60, 60, 60, 90, 90, 90, 60, 60]) * MS
    Delta = np.array([30, 30, 30, 30, 30, 30, 40, 40]) * MS
    acq = Acquisition(b, v, 10 * MS, Delta, TE=te)
    sm = spherical_mean_acquisition(acq)
    assert sm.n_measurements == 5 and sm.n_b0 == 2
    sm.check_te_groups()  # every TE group keeps its own b0
    x = np.arange(8.0)
    avg = powder_average(acq, x)
    # groups: TE 60 b0, TE 60 b1000 Δ30, TE 60 b1000 Δ40, TE 90 b0, TE 90 b1000
    assert np.allclose(sorted(avg.tolist()), sorted([0, 1.5, 6.5, 3, 4.5]))
    assert np.allclose(avg[sm.b0_mask], [0, 3]) and np.allclose(sm.TE[sm.b0_mask], [0.06, 0.09])


def test_powder_average_batch_shapes_and_errors(hcp, rng):
    y = rng.random((2, 3, hcp.n_measurements)).astype(np.float32)
    avg = powder_average(hcp, y)
    assert avg.shape == (2, 3, 4) and avg.dtype == np.float32
    index, _ = powder_groups(hcp)
    assert np.allclose(avg[1, 2, 2], y[1, 2, index == 2].mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="measurements"):
        powder_average(hcp, y[..., :-1])


def test_powder_average_of_dispersed_stick_is_spherical_mean_stick(rng):
    acq = _dense()
    sm = spherical_mean_acquisition(acq)
    mu = rng.normal(size=(6, 3))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    kappa = np.array([0.0, 0.5, 2.0, 8.0, 32.0, 128.0])
    d = np.array([1.0, 1.7, 2.2, 2.5, 3.0, 2.0]) * 1e-9
    full = watson_stick_signal(acq, mu, d, kappa)
    avg = powder_average(acq, full)
    ref = SphericalMeanStick().signal(sm, d_par=d)
    assert np.abs(avg / ref - 1).max() < 0.03
    assert np.allclose(avg[:, 0], 1.0)
    # (NODDI's Watson zeppelin averages the tensor, not the signal: use plain zeppelins)
    zep = Zeppelin().signal(acq, mu=mu, d_par=d, d_perp=0.6e-9)
    ref_z = SphericalMeanZeppelin().signal(sm, d_par=d, d_perp=0.6e-9)
    assert np.abs(powder_average(acq, zep) / ref_z - 1).max() < 0.03
