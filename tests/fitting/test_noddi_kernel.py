"""The compiled NODDI kernel evaluates exactly the model it claims to fit."""

import numpy as np
import pytest

from microlearn import Acquisition, noddi
from microlearn.fitting.compiled.noddi_fast import NoddiMixEngine
from microlearn.fitting.compiled.noddi_kernel import exp_neg, exp_squarings, signals


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


def test_interior_point_agrees_with_mix_and_stays_inside():
    from microlearn import simulate_dataset
    from microlearn.fitting import fit

    acq, m = Acquisition.scheme("hcp"), noddi()
    p, _, y = simulate_dataset(m, acq, 400, snr=30, random_state=11,
                               ranges={"odi": (0.05, 0.7), "icvf": (0.2, 0.8),
                                       "fiso": (0.0, 0.3)})
    mix = fit(m, acq, 1000 * y, method="mix", workers=1)
    ip = fit(m, acq, 1000 * y, method="interior-point", workers=1)
    from microlearn.fitting.api import FITTERS

    assert type(FITTERS["interior-point"](m, acq)).__name__ == "NoddiInteriorPointEngine"
    for k in ("odi", "icvf", "fiso"):
        # the same problem: the solutions agree far below the noise (RMSE ~0.02-0.03)
        assert np.median(np.abs(ip[k] - mix[k])) < 1e-3, k
    lo, hi = m.parameters["odi"].bounds
    assert np.all((ip["odi"] > lo) & (ip["odi"] < hi))
    assert np.all((ip["fiso"] > 0) & (ip["fiso"] < 1)) and np.all(ip["icvf"] > 0)


def test_tensor_directions_equal_dipy_ols():
    from microlearn import simulate_dataset
    from microlearn.crossings.dipy_tools import tensor_fit
    from microlearn.fitting.engines.search import tensor_directions

    acq = Acquisition.scheme("hcp")
    _, _, y = simulate_dataset(noddi(), acq, 500, snr=30, random_state=3)
    ours = tensor_directions(acq, y)
    dipy_e1 = np.asarray(tensor_fit(acq, y).evecs)[..., 0]
    cos = np.abs(np.sum(ours * dipy_e1, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-12)


def test_second_pass_from_the_refined_orientation_only_lowers_costs(engine):
    """Voxels whose orientation moved by > 8° are searched again; the better fit is kept."""
    from microlearn import simulate_dataset
    from microlearn.fitting.compiled.noddi_kernel import fit_voxels
    from microlearn.fitting.engines.search import tensor_directions
    from microlearn.parameters import cartesian_to_angles

    acq = engine.acq
    _, _, y = simulate_dataset(engine.model, acq, 1500, snr=30, random_state=4,
                               ranges={"odi": (0.4, 0.7), "icvf": (0.2, 0.5)})
    y = y / y[:, acq.b0_mask].mean(1, keepdims=True)
    ang = cartesian_to_angles(tensor_directions(acq, y))
    args = (np.ascontiguousarray(y[:, engine.order]), np.full(len(y), 1 / 30), ang[:, 0].copy(),
            ang[:, 1].copy(), *engine._tables(), 50, 1e-5)
    _, one_pass, it1 = fit_voxels(*args, 180.0)
    _, two_pass, it2 = fit_voxels(*args, 8.0)
    assert np.all(two_pass <= one_pass + 1e-12)
    assert np.mean(two_pass < one_pass - 1e-3 / 900) > 0.005  # some voxels left a worse basin
    assert np.all(it2 >= it1)


def test_fit_runs_when_numba_is_limited_to_one_thread():
    """NUMBA_NUM_THREADS=1 (cluster jobs often set it) must not break the compiled fits."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from microlearn import Acquisition, noddi, simulate_dataset;"
            "from microlearn.fitting import fit; acq = Acquisition.scheme('hcp');"
            "_, _, y = simulate_dataset(noddi(), acq, 50, snr=30, random_state=0);"
            "r = fit(noddi(), acq, 1000 * y); assert np.isfinite(r['odi']).all(); print('ok')")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
