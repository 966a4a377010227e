"""ActiveAx on the compiled core (the hand-written ActiveAx kernel is gone: the core fits it
faster and as accurately): dispatch, exact noise-free fits, the diameter bound."""

import numpy as np

from microlearn import activeax, simulate_dataset
from microlearn.fitting.compiled.engines import CompiledMixEngine
from microlearn.fitting.engines.mix import MixEngine
from microlearn.fitting.registry import choose


def test_activeax_runs_on_the_core(activeax_acq):
    assert choose("mix", activeax(), activeax_acq) is CompiledMixEngine
    assert choose("mix", activeax(2), activeax_acq) is CompiledMixEngine
    assert choose("mix", activeax(), activeax_acq, fast=False) is MixEngine


def test_noise_free_fit_is_exact(activeax_acq):
    m = activeax()
    p, _, _ = simulate_dataset(m, activeax_acq, 30, snr=50, random_state=2,
                               ranges={"diameter": (3e-6, 15e-6)})
    y = 1.3 * m.signal(activeax_acq, p)
    params, s0, ok = CompiledMixEngine(m, activeax_acq).fit_block(y)
    assert ok.all() and np.allclose(s0, 1.3, rtol=1e-5)
    d = m.parameters.slice("diameter").start
    assert np.allclose(params[:, d], p[:, d], rtol=1e-3)
    for name in ("icvf", "fiso"):
        s = m.parameters.slice(name).start
        assert np.allclose(params[:, s], p[:, s], atol=1e-4), name


def test_small_diameters_do_not_stick_at_the_bound(activeax_acq):
    """A refinement that reaches the lower diameter bound (where the signal is flat) is
    redone from inside the range: identifiable diameters are not left at the bound."""
    m = activeax()
    p, _, y = simulate_dataset(m, activeax_acq, 200, snr=30, random_state=4,
                               ranges={"diameter": (5e-6, 9e-6)})
    params, _, _ = CompiledMixEngine(m, activeax_acq).fit_block(y, np.full(200, 1 / 30))
    d = m.parameters.slice("diameter").start
    assert np.mean(params[:, d] <= 1.01e-6) < 0.03
    assert np.sqrt(np.mean((params[:, d] - p[:, d]) ** 2)) < 1.2e-6


def test_min_diameter_bounds_the_fit(activeax_acq):
    m = activeax()
    _, _, y = simulate_dataset(m, activeax_acq, 50, snr=50, random_state=9,
                               ranges={"diameter": (0.2e-6, 1.0e-6)})
    d = m.parameters.slice("diameter").start
    bound = CompiledMixEngine(m, activeax_acq, min_diameter=1e-6)
    assert bound.fit_block(y, np.full(50, 0.02))[0][:, d].min() >= 1e-6 - 1e-15
    low = CompiledMixEngine(m, activeax_acq, min_diameter=0.1e-6)
    assert low.fit_block(y, np.full(50, 0.02))[0][:, d].min() < 1e-6
