"""The compiled core against the NumPy models: signals, Jacobians and fits.

The core (:mod:`microlearn.fitting.compiled.assembly` over the pieces of
:mod:`microlearn.compartments.kernels`) must give the signal of the NumPy model it was
assembled from, for built-in, freed, tied, tortuous and composed models, on short and long
Watson series (any b), restricted compartments and several echo times; its analytic
Jacobian must match finite differences; and its fits must recover the truth.
"""

import numpy as np
import pytest

import microlearn as ml
from microlearn.compartments import Ball, Stick, Zeppelin
from microlearn.fitting.compiled.assembly import build_plan, signals
from microlearn.fitting.compiled.engines import CompiledMixEngine, compile_reason
from microlearn.models.builtin import activeax, noddi, zcd
from microlearn.models.registry import default_scheme, family_names, get_model
from microlearn.schemes import with_echo_times


def _high_b(factor):
    """The HCP scheme with every b multiplied (long Watson series)."""
    acq = ml.Acquisition.scheme("hcp")
    return ml.Acquisition(acq.bvals * factor, acq.bvecs, acq.delta, acq.Delta,
                          name=f"hcp-x{factor}")


def _composed():
    return ml.compose([Stick(), Zeppelin(), Ball()]).tie("zeppelin_mu", "stick_mu").fix(
        "ball_d_iso", 3e-9)


def _tortuous():
    return _composed().tortuosity("zeppelin_d_perp", d_par="stick.d_par", intra="stick",
                                  extra="zeppelin").tie("zeppelin_d_par", "stick_d_par")


CASES = {
    "noddi hcp": (noddi, lambda: ml.Acquisition.scheme("hcp")),
    "noddi free d_par": (lambda: noddi().free("d_par"), lambda: ml.Acquisition.scheme("hcp")),
    "noddi b x15": (noddi, lambda: _high_b(15)),
    "noddi free d_par b x8": (lambda: noddi().free("d_par"), lambda: _high_b(8)),
    "noddi(2)": (lambda: noddi(2), lambda: ml.Acquisition.scheme("hcp")),
    "noddi + T2": (lambda: noddi().free("t2_stick").free("t2_zeppelin").set("t2_ball", 2.0),
                   lambda: with_echo_times(ml.Acquisition.scheme("hcp"), [0.06, 0.09])),
    "activeax": (activeax, lambda: ml.Acquisition.scheme("activeax")),
    "zcd": (zcd, lambda: ml.Acquisition.scheme("activeax")),
    "composed": (_composed, lambda: ml.Acquisition.scheme("hcp")),
    "composed tortuous": (_tortuous, lambda: ml.Acquisition.scheme("hcp")),
}
for _family in family_names():
    CASES[f"family {_family}"] = (
        lambda f=_family: get_model(f),
        lambda f=_family: ml.Acquisition.scheme(default_scheme(get_model(f))))


def _rows(model, n, seed=0):
    """Random parameter rows inside the priors, S0 = 1 appended (V, P + 1)."""
    params = ml.sample_parameters(model, n, random_state=seed)
    return np.ascontiguousarray(np.concatenate([params, np.ones((n, 1))], 1)), params


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_signal_matches_the_numpy_model(case):
    make_model, make_acq = CASES[case]
    model, acq = make_model(), make_acq()
    reason = compile_reason(model, acq)
    if reason is not None:
        assert "no compiled" in reason  # names the part without a compiled form
        pytest.skip(reason)
    plan = build_plan(model, acq)
    X, params = _rows(model, 40)
    compiled, _ = signals(X, plan.arrays, False, 2, 2)
    expected = model.signal(acq, params)[:, plan.tabs.order]
    np.testing.assert_allclose(compiled, expected, atol=2e-6, rtol=1e-5, err_msg=case)


@pytest.mark.parametrize("case", ["noddi hcp", "noddi free d_par", "noddi b x15",
                                  "noddi free d_par b x8", "noddi + T2", "activeax", "zcd",
                                  "composed tortuous", "family ivim", "family smt",
                                  "family mcsmt"])
def test_compiled_jacobian_matches_finite_differences(case):
    make_model, make_acq = CASES[case]
    model, acq = make_model(), make_acq()
    plan = build_plan(model, acq)
    X, _ = _rows(model, 6, seed=1)
    X[:, -1] = 1.3  # S0 ≠ 1 so its column is tested too
    lower, upper = (np.append(bound, extra) for bound, extra in
                    zip(model.parameters.bounds(), (0.0, np.inf)))
    _, J = signals(X, plan.arrays, True, 1, 1)
    for p in range(X.shape[1]):
        step = 1e-6 * max(abs(X[:, p]).max(), 1e-12)
        if np.isfinite(upper[p] - lower[p]):
            step = 1e-6 * (upper[p] - lower[p])
        hi, lo = X.copy(), X.copy()
        hi[:, p] = np.minimum(X[:, p] + step, upper[p])
        lo[:, p] = np.maximum(X[:, p] - step, lower[p])
        up, down = (signals(row, plan.arrays, False, 1, 1)[0] for row in (hi, lo))
        fd = (up - down) / (hi[:, p] - lo[:, p])[:, None]
        scale = np.abs(fd).max() + 1e-3 * np.abs(J[:, p]).max() + 1e-9
        err = np.abs(J[:, p] - fd).max() / scale
        assert err < 2e-3, f"{case}: column {p} relative error {err:.2e}"


RANGES = {"odi": (0.05, 0.6), "icvf": (0.3, 0.8), "fiso": (0.0, 0.3), "f_stick": (0.3, 0.7),
          "f_ball": (0.0, 0.3), "d_par": (1.2e-9, 2.5e-9), "stick_d_par": (1.2e-9, 2.5e-9)}


@pytest.mark.parametrize("case,names,limits", [
    ("composed tortuous", ["stick_d_par"], [0.1e-9]),
    ("noddi free d_par", ["odi", "icvf", "fiso", "d_par"], [0.03, 0.04, 0.09, 0.25e-9]),
    ("noddi b x15", ["odi"], [0.045]),  # at b ≤ 45 ms/µm² only the sticks remain
])
def test_compiled_fit_recovers_the_truth(case, names, limits):
    """Identifiable parameters (the generic engine reaches the same RMSE within 2 %)."""
    make_model, make_acq = CASES[case]
    model, acq = make_model(), make_acq()
    ranges = {k: v for k, v in RANGES.items() if k in model.parameters.names}
    truth, _, noisy = ml.simulate_dataset(model, acq, 300, snr=50, random_state=3,
                                          ranges=ranges)
    params, _, ok = CompiledMixEngine(model, acq).fit_block(noisy, np.full(len(noisy), 1 / 50))
    assert ok.mean() > 0.95
    space = model.parameters
    for name, limit in zip(names, limits):
        s = space.slice(name).start
        rmse = np.sqrt(np.nanmean((params[:, s] - truth[:, s]) ** 2))
        assert rmse < limit, f"{case}: {name} RMSE {rmse:.3g} ≥ {limit}"


def test_compiled_fit_is_as_likely_as_the_generic_engine():
    """Over the whole prior (degenerate voxels included) the core's optimum is as good as
    the generic NumPy engine's: the Rician likelihood of its fit is rarely lower."""
    from scipy.stats import rice

    from microlearn.fitting.engines.mix import MixEngine

    model, acq = _tortuous(), ml.Acquisition.scheme("hcp")
    _, _, noisy = ml.simulate_dataset(model, acq, 100, snr=50, random_state=3)
    nll = []
    for engine in (CompiledMixEngine, MixEngine):
        params, s0, _ = engine(model, acq).fit_block(noisy, np.full(len(noisy), 1 / 50))
        fitted = model.signal(acq, params) * s0[:, None]
        nll.append(-rice.logpdf(noisy * 50, fitted * 50).sum(1))
    worse = nll[0] - nll[1]
    assert np.median(worse) < 1e-3
    assert np.mean(worse > 1.0) <= 0.08, np.sort(worse)[-10:]


def test_crossing_bounds_are_finite_and_agree_with_the_numpy_bound():
    """Fibre weights act only through their ratios (a null direction of the Fisher matrix);
    the bound is taken without it, so crossing models get finite std maps, the same from
    the core's compiled pass and from the NumPy :func:`cramer_rao_std`."""
    from microlearn.fitting.uncertainty import cramer_rao_std

    model, acq = noddi(2), ml.Acquisition.scheme("hcp")
    _, _, noisy = ml.simulate_dataset(model, acq, 60, snr=30, random_state=2)
    engine = CompiledMixEngine(model, acq)
    params, s0, _ = engine.fit_block(noisy, np.full(len(noisy), 1 / 30))
    _, std = engine.quality_arrays(params, s0, noisy, np.full((len(noisy), 1), 1 / 30))
    reference = cramer_rao_std(model, acq, params, np.full(len(noisy), 1 / 30), s0=s0)
    for name in ("odi_1", "icvf_2", "ffib_1", "ffib_2", "fiso"):
        finite = np.isfinite(std[name])
        assert finite.mean() > 0.5, name
        np.testing.assert_allclose(std[name][finite], reference[name][finite], rtol=0.02,
                                   err_msg=name)
