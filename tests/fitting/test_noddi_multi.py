"""The compiled multi-fibre NODDI kernel evaluates the model it fits, and fits it."""

import numpy as np
import pytest

from microlearn import Acquisition, noddi
from microlearn.fitting import fit
from microlearn.fitting.api import FITTERS
from microlearn.fitting.compiled.noddi_multi import NoddiMultiMixEngine
from microlearn.fitting.compiled.noddi_multi_kernel import signals
from microlearn.parameters import angles_to_cartesian


def _kernel_rows(n, nf, seed=0):
    rng = np.random.default_rng(seed)
    cols = []
    for _ in range(nf):
        cols += [rng.uniform(0, np.pi, n), rng.uniform(-np.pi, np.pi, n),
                 rng.uniform(0.05, 0.9, n), rng.uniform(0.05, 0.95, n), rng.uniform(0.1, 1, n)]
    cols.append(rng.uniform(0, 0.5, n))
    return np.column_stack(cols)


def _kernel(e, X, want_jac):
    S, J = signals(X, e.model.n_fibres, e.bvals, e.bvecs, e.shell_start, e.qtab, e.dqtab,
                   e.tautab, e.dtautab, e.odi_nodes[0], e.step, e.d, e.b_iso, e.n_square,
                   want_jac)
    inverse = np.argsort(e.order)
    return S[:, inverse], J[:, :, inverse]


@pytest.mark.parametrize("nf", [2, 3])
def test_multi_kernel_signal_equals_model(nf):
    acq, m = Acquisition.scheme("hcp"), noddi(nf)
    e = NoddiMultiMixEngine(m, acq)
    X = _kernel_rows(100, nf)
    S, _ = _kernel(e, X, False)
    packed = e.pack_kernel(X)
    expected = packed[:, -1:] * m.signal(acq, packed[:, :-1])
    np.testing.assert_allclose(S, expected, atol=2e-6 * np.abs(expected).max())


def test_multi_kernel_jacobian_matches_finite_differences():
    acq = Acquisition.scheme("hcp")
    e = NoddiMultiMixEngine(noddi(2), acq)
    X = _kernel_rows(30, 2, seed=1)
    _, J = _kernel(e, X, True)
    for p in range(X.shape[1]):
        h = 1e-4 if p % 5 == 2 else 1e-6
        up, down = X.copy(), X.copy()
        up[:, p] += h
        down[:, p] -= h
        fd = (_kernel(e, up, False)[0] - _kernel(e, down, False)[0]) / (2 * h)
        tol = 2e-3 if p % 5 == 2 else 1e-6
        np.testing.assert_allclose(J[:, p], fd, atol=tol * np.abs(fd).max() + 1e-7,
                                   err_msg=f"parameter {p}")


@pytest.mark.parametrize("nf", [2, 3])
def test_multi_fibre_fit_recovers_crossings(nf):
    """Noise-free crossings at 60-90 degrees from perturbed directions: exact recovery."""
    acq, m = Acquisition.scheme("hcp"), noddi(nf)
    assert isinstance(FITTERS["mix"](m, acq), NoddiMultiMixEngine)
    rng = np.random.default_rng(nf)
    V = 60
    base = np.eye(3)[:nf]
    rot = np.linalg.qr(rng.normal(size=(V, 3, 3)))[0]
    dirs = np.einsum("vij,fj->vfi", rot, base)  # orthogonal fibres, random frame
    values = {"fiso": rng.uniform(0, 0.3, V)}
    for i in range(nf):
        from microlearn.parameters import cartesian_to_angles

        values[f"mu_{i + 1}"] = cartesian_to_angles(dirs[:, i])
        values[f"odi_{i + 1}"] = rng.uniform(0.05, 0.3, V)
        values[f"icvf_{i + 1}"] = rng.uniform(0.4, 0.8, V)
        values[f"ffib_{i + 1}"] = rng.uniform(0.3, 1.0, V)
    p = m.parameters.pack(values)
    y = 1000 * m.signal(acq, p)
    start = dirs + 0.08 * rng.normal(size=dirs.shape)
    start /= np.linalg.norm(start, axis=-1, keepdims=True)
    r = fit(m, acq, y, directions=start, sigma=0, workers=1)
    truth = m.maps(p)
    for i in range(1, nf + 1):
        got = angles_to_cartesian(r.params[:, m.parameters.slice(f"mu_{i}")])
        cos = np.abs(np.sum(got * dirs[:, i - 1], axis=1))
        assert np.median(np.degrees(np.arccos(np.clip(cos, 0, 1)))) < 0.5
        assert np.median(np.abs(r[f"odi_{i}"] - truth[f"odi_{i}"])) < 0.01
        assert np.median(np.abs(r[f"icvf_{i}"] - truth[f"icvf_{i}"])) < 0.01
    assert np.median(np.abs(r["fiso"] - truth["fiso"])) < 0.01
