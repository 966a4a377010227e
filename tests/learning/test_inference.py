"""Fast prediction paths give the same numbers as the reference paths."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.learning import (
    DeepEnsembleRegressor,
    DNNRegressor,
    FeatureSpec,
    GaussianDNNRegressor,
    WideDeepRegressor,
    normalise_by_b0,
    rotation_invariant_features,
)


@pytest.fixture(scope="module")
def small_xy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = np.stack([np.tanh(X[:, 0]) + 0.1 * X[:, 1], X[:, 2] ** 2], axis=1)
    return X, y


@pytest.mark.parametrize("est", [
    DNNRegressor(hidden_units=(16, 8), epochs=2, random_state=0),
    DNNRegressor(hidden_units=(16,), optimizer="ftrl", activation="tanh", epochs=2,
                 random_state=0),
    DNNRegressor(hidden_units=(16,), activation="gelu", epochs=2, random_state=0),
    WideDeepRegressor(hidden_units=(16,), epochs=2, random_state=0),
    WideDeepRegressor(hidden_units=(16,), wide_optimizer="sdca", sdca_rounds=2, epochs=2,
                      random_state=0),
    GaussianDNNRegressor(hidden_units=(16,), epochs=2, random_state=0),
    DeepEnsembleRegressor(n_members=3, hidden_units=(16, 8), epochs=2, random_state=0),
], ids=["dnn", "dnn-ftrl-centred-tanh", "dnn-gelu", "wide-deep", "wide-deep-sdca",
        "gaussian", "ensemble"])
def test_numpy_forward_equals_keras(est, small_xy):
    X, y = small_xy
    est.fit(X, y)
    forward = est._numpy_forward()
    assert forward is not None  # every microlearn network runs without Keras calls
    Xs = est._scaled_X(X[:50]).astype("float32")
    ref = np.asarray(est.model_(Xs, training=False))
    np.testing.assert_allclose(forward(Xs), ref, rtol=1e-4, atol=1e-5)


def test_numpy_forward_is_rebuilt_after_refit(small_xy):
    X, y = small_xy
    est = DNNRegressor(hidden_units=(8,), epochs=1, random_state=0).fit(X, y)
    first = est.predict(X[:5])
    est.set_params(random_state=1).fit(X, 3 * y)
    Xs = est._scaled_X(X[:5]).astype("float32")
    ref = np.asarray(est.model_(Xs, training=False)) * est.y_scale_ + est.y_mean_
    np.testing.assert_allclose(est.predict(X[:5]), ref, rtol=1e-4, atol=1e-5)
    assert not np.allclose(first, ref)


@pytest.mark.parametrize("scheme", ["hcp", "activeax", "ivim"])
@pytest.mark.parametrize("lmax", [0, 2, 6])
def test_fused_rotation_invariants_equal_normalise_then_project(scheme, lmax):
    acq = Acquisition.scheme(scheme)
    rng = np.random.default_rng(1)
    data = np.abs(rng.normal(1.0, 0.3, (300, acq.n_measurements))) * 700
    data[3, 5] = np.nan
    data[4, acq.b0_mask] = 0.0
    data[7, 0] = np.inf
    norm, bad = normalise_by_b0(data, acq)
    ref = rotation_invariant_features(norm, acq, lmax=lmax)
    bad = bad | ~np.all(np.isfinite(ref), axis=1)
    got, got_bad = FeatureSpec(lmax=lmax).compute(data, acq)
    np.testing.assert_array_equal(got_bad, bad)
    assert set(np.flatnonzero(bad)) == {3, 4, 7}
    np.testing.assert_allclose(got[~bad], ref[~bad], rtol=1e-12, atol=1e-12)
    assert np.all(np.isnan(got[bad]))


def test_coverage_curve_is_the_diagonal_for_a_right_std():
    from microlearn.learning.uncertainty import coverage_curve

    rng = np.random.default_rng(2)
    std = rng.uniform(0.01, 0.1, 20_000)
    truth = rng.uniform(0, 1, std.size)
    mean = truth + std * rng.normal(size=std.size)
    levels, cover = coverage_curve(mean, std, truth)
    np.testing.assert_allclose(cover, levels, atol=0.015)
    _, narrow = coverage_curve(mean, std / 2, truth)
    assert np.all(narrow[levels >= 0.5] < levels[levels >= 0.5] - 0.1)
    mean[:10] = np.nan  # left out, not counted as misses
    np.testing.assert_allclose(coverage_curve(mean, std, truth)[1], cover, atol=0.002)
    with pytest.raises(ValueError, match="levels"):
        coverage_curve(mean, std, truth, levels=[0.5, 1.0])
