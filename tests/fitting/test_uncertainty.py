"""Cramér–Rao std against the empirical spread of fits over simulated noise repeats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import i0e, i1e

from microlearn.fitting import fit
from microlearn.fitting import uncertainty as unc
from microlearn.models import get_model


def test_rician_factor_matches_the_score_variance():
    rng = np.random.default_rng(0)
    for s in (0.0, 1.0, 2.5, 8.0, 40.0):
        u = np.abs(s + rng.normal(size=400_000) + 1j * rng.normal(size=400_000))
        score = -s + u * i1e(u * s) / i0e(u * s)  # d log p / dA at σ = 1
        assert unc.rician_fisher_factor(s) == pytest.approx(np.var(score), abs=0.01)
    assert unc.rician_fisher_factor(0.0) == 0.0


def test_analytic_and_finite_difference_jacobians_agree(hcp, rng, monkeypatch):
    model = get_model("noddi")
    p = model.parameters.pack({"mu": rng.normal(size=(20, 3)), "odi": rng.uniform(.1, .8, 20),
                               "icvf": rng.uniform(.2, .8, 20), "fiso": rng.uniform(.05, .5, 20)})
    fast = unc.cramer_rao_std(model, hcp, p, 0.02)
    assert unc._analytic_jacobian(model, hcp) is not None
    monkeypatch.setattr(unc, "_analytic_jacobian", lambda m, a: None)  # finite differences
    slow = unc.cramer_rao_std(model, hcp, p, 0.02)
    for k in ("odi", "icvf", "fiso", "mu", "s0"):
        np.testing.assert_allclose(slow[k], fast[k], rtol=1e-3)


@pytest.mark.parametrize("method", ["mix", "interior-point"])
def test_crb_std_within_20_percent_of_the_spread_of_repeated_fits(hcp, method):
    model = get_model("noddi")
    truth = {"mu": np.array([0.6, 0.3, np.sqrt(0.55)]), "odi": 0.3, "icvf": 0.6, "fiso": 0.2}
    p = model.parameters.pack({k: np.asarray(v) for k, v in truth.items()})
    sigma, n = 0.02, 400  # SNR 50
    rng = np.random.default_rng(3)
    clean = model.signal(hcp, p)
    noisy = np.abs(clean + sigma * (rng.normal(size=(n, clean.size))
                                    + 1j * rng.normal(size=(n, clean.size))))
    res = fit(model, hcp, noisy, method=method, sigma=sigma, workers=1)
    maps = res.maps()
    crb = unc.cramer_rao_std(model, hcp, p[None], sigma)
    for k in ("odi", "icvf", "fiso"):
        assert np.std(maps[k]) == pytest.approx(crb[k][0], rel=0.2), k
    # the maps fit() writes are the bound at each voxel's own solution
    for k in ("odi", "icvf", "fiso"):
        assert np.median(maps[f"{k}_std"]) == pytest.approx(crb[k][0], rel=0.1), k


def test_packaged_rician_factor_table_is_the_quadrature():
    from microlearn.fitting import uncertainty

    s, f = uncertainty.compute_factor_table()
    stored = np.load(uncertainty.FACTOR_TABLE_FILE, allow_pickle=False)
    np.testing.assert_allclose(stored, f, rtol=0, atol=1e-12)
    uncertainty._factor_table.cache_clear()
    np.testing.assert_array_equal(uncertainty._factor_table()[1], stored)


@pytest.mark.parametrize("per_measurement", [False, True])
@pytest.mark.parametrize("fit_s0", [True, False])
def test_numpy_and_compiled_fisher_agree(per_measurement, fit_s0):
    from microlearn.fitting import uncertainty

    rng = np.random.default_rng(1)
    V, P, N = 40, 4, 21
    S, J = rng.uniform(0.05, 1, (V, N)), rng.normal(size=(V, P, N))
    amp = rng.uniform(0.5, 2, V)
    sig = rng.uniform(0.01, 0.2, (V, N if per_measurement else 1))
    compiled = uncertainty._fisher(S, J, amp, sig, fit_s0, uncertainty._factor_table()[1],
                                   uncertainty.SNR_TABLE_MAX)
    np.testing.assert_allclose(uncertainty._fisher_numpy(S, J, amp, sig, fit_s0), compiled,
                               rtol=1e-12, atol=1e-12 * np.abs(compiled).max())
