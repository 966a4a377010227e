"""The compiled NODDI kernel evaluates exactly the model it claims to fit."""

import numpy as np
import pytest

from microlearn import Acquisition, noddi
from microlearn.fitting.noddi_fast import NoddiMixEngine
from microlearn.fitting.noddi_kernel import exp_neg, exp_squarings, signals


@pytest.fixture(scope="module")
def engine():
    return NoddiMixEngine(noddi(), Acquisition.scheme("hcp"))


def _params(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, np.pi, n), rng.uniform(-np.pi, np.pi, n),
                            rng.uniform(0.02, 0.95, n), rng.uniform(0, 1, n),
                            rng.uniform(0, 1, n), rng.uniform(0.5, 2, n)])


def _kernel(engine, X, want_jac):
    S, J = signals(X, engine.bvals, engine.bvecs, engine.shell_start, engine.qtab,
                   engine.dqtab, engine.tautab, engine.dtautab, engine.odi_nodes[0],
                   engine.step, engine.d, engine.b_iso, engine.n_square, want_jac)
    inverse = np.argsort(engine.order)  # back to the acquisition's measurement order
    return S[:, inverse], J[:, :, inverse]


def test_exp_neg_matches_numpy():
    m = exp_squarings(9.0)
    x = np.linspace(0.0, 9.0, 100001)
    out = np.empty_like(x)
    exp_neg(x, out, m)
    np.testing.assert_allclose(out, np.exp(-x), rtol=1e-12, atol=0)


def test_kernel_signal_equals_model(engine):
    X = _params(200)
    S, _ = _kernel(engine, X, False)
    expected = X[:, 5:] * engine.model.signal(engine.acq, X[:, :5])
    # the only approximation is linear interpolation of the series table in ODI
    np.testing.assert_allclose(S, expected, atol=2e-6)


def test_kernel_jacobian_matches_finite_differences(engine):
    X = _params(50, seed=1)
    X[:, 2] = np.clip(X[:, 2], 0.05, 0.9)
    X[:, 3:5] = np.clip(X[:, 3:5], 0.05, 0.95)
    _, J = _kernel(engine, X, True)
    for p, h in enumerate([1e-6, 1e-6, 1e-4, 1e-6, 1e-6, 1e-6]):
        up, down = X.copy(), X.copy()
        up[:, p] += h
        down[:, p] -= h
        fd = (_kernel(engine, up, False)[0] - _kernel(engine, down, False)[0]) / (2 * h)
        # ODI: the table is piecewise linear in ODI with tabulated slopes
        tol = 2e-3 if p == 2 else 1e-6
        np.testing.assert_allclose(J[:, p], fd, atol=tol * np.abs(fd).max() + 1e-7,
                                   err_msg=f"parameter {p}")
