"""The compiled ActiveAx MIX engine: kernel against the model, Jacobian, dispatch."""

import numpy as np
import pytest

from microlearn import activeax, noddi, simulate_dataset, zcd
from microlearn.compartments.cylinder import van_gelderen_coefficient
from microlearn.fitting.compiled.activeax_fast import ActiveAxMixEngine, timing_index
from microlearn.fitting.compiled.activeax_kernel import signals, van_gelderen_slope
from microlearn.fitting.engines.mix import MixEngine
from microlearn.fitting.registry import choose


@pytest.fixture(scope="module")
def rows(activeax_acq):
    """Parameter rows (theta, phi, diameter, icvf, fiso, s0) over the whole diameter range."""
    m = activeax()
    p, _, _ = simulate_dataset(m, activeax_acq, 40, snr=50, random_state=2,
                               ranges={"diameter": (0.1e-6, 20e-6)})
    s0 = np.random.default_rng(2).uniform(0.5, 2.0, (40, 1))
    return m, p, np.concatenate([p, s0], 1)


@pytest.mark.parametrize("d_par", [1.7e-9, 2.1e-9])
def test_compiled_signal_equals_model(activeax_acq, rows, d_par):
    _, p, X = rows
    m = activeax(d_par=d_par)
    engine = ActiveAxMixEngine(m, activeax_acq)
    S, _ = signals(X, *engine.kernel_args())
    ref = X[:, -1:] * m.signal(activeax_acq, p)
    assert np.max(np.abs(S - ref)) < 1e-10


def test_jacobian_matches_finite_differences(activeax_acq, rows):
    m, _, X = rows
    engine = ActiveAxMixEngine(m, activeax_acq)
    args = engine.kernel_args()
    _, J = signals(X, *args)
    steps = [1e-6, 1e-6, 1e-10, 1e-6, 1e-6, 1e-6]
    for k, h in enumerate(steps):
        up, down = X.copy(), X.copy()
        up[:, k] += h
        down[:, k] -= h
        fd = (signals(up, *args)[0] - signals(down, *args)[0]) / (2 * h)
        scale = max(np.abs(fd).max(), 1.0)
        assert np.max(np.abs(J[:, :, k] - fd)) < 1e-6 * scale, k


def test_van_gelderen_slope(activeax_acq):
    delta, Delta, index = timing_index(activeax_acq)
    assert len(delta) == 2 and index.shape == (activeax_acq.n_measurements,)
    diam = np.array([0.3e-6, 1e-6, 3e-6, 8e-6, 19e-6])
    h = 1e-11
    fd = (van_gelderen_coefficient(diam + h, 1.7e-9, delta, Delta)
          - van_gelderen_coefficient(diam - h, 1.7e-9, delta, Delta)) / (2 * h)
    assert np.allclose(van_gelderen_slope(diam, 1.7e-9, delta, Delta), fd, rtol=1e-6)


def test_applies_only_to_single_fibre_activeax(activeax_acq):
    assert ActiveAxMixEngine.applies(activeax(), activeax_acq)
    assert choose("mix", activeax(), activeax_acq) is ActiveAxMixEngine
    assert choose("mix", activeax(), activeax_acq, fast=False) is MixEngine
    for other in (activeax(2), zcd(), noddi(), activeax().fix("diameter", 3e-6)):
        assert not ActiveAxMixEngine.applies(other, activeax_acq)


def test_noise_free_fit_is_exact(activeax_acq, rows):
    m, p, X = rows
    keep = p[:, 2] >= 3e-6  # identifiable diameters (packed: theta, phi, diameter, ...)
    y = m.signal(activeax_acq, p[keep])
    engine = ActiveAxMixEngine(m, activeax_acq)
    params, s0, ok = engine.fit_block(y)
    assert ok.all() and np.allclose(s0, 1.0, atol=1e-6)
    assert np.allclose(params[:, 2], p[keep, 2], rtol=1e-4)
    assert np.allclose(params[:, 3:], p[keep, 3:], atol=1e-5)


def test_min_diameter_bounds_the_fit(activeax_acq):
    m = activeax()
    p, _, y = simulate_dataset(m, activeax_acq, 50, snr=50, random_state=9,
                               ranges={"diameter": (0.2e-6, 1.0e-6)})
    engine = ActiveAxMixEngine(m, activeax_acq)
    assert engine.min_diameter == m.parameters["diameter"].prior_bounds[0]
    params, _, _ = engine.fit_block(y, np.full(50, 0.02))
    assert params[:, 2].min() >= engine.min_diameter
    low = ActiveAxMixEngine(m, activeax_acq, min_diameter=0.1e-6)
    assert low.fit_block(y, np.full(50, 0.02))[0][:, 2].min() < engine.min_diameter
