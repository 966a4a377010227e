"""Estimators beat the prior mean; uncertainty is calibrated; optimizers do what they say."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from microlearn.learning import (
    BayesianPolynomialRegressor,
    BoostedTreesRegressor,
    DNNRegressor,
    GaussianDNNRegressor,
    PolynomialRegressor,
    SDCARegressor,
    WideDeepRegressor,
    proximal_adagrad_class,
)
from microlearn.learning.sdca import sdca_ridge


def rmse(pred, truth):
    return np.sqrt(np.mean((pred - truth) ** 2, axis=0))


def relative_error(est, split):
    X, y, Xt, yt = split
    pred = est.fit(X, y).predict(Xt)
    return rmse(pred, yt) / rmse(np.broadcast_to(y.mean(0), yt.shape), yt)


@pytest.mark.parametrize("est, limit", [
    (PolynomialRegressor(), (0.45, 0.2, 0.3)),
    (BoostedTreesRegressor(max_iter=100, random_state=0), (0.45, 0.2, 0.3)),
    (BayesianPolynomialRegressor(), (0.45, 0.2, 0.3)),
    (SDCARegressor(random_state=0), (0.7, 0.45, 0.5)),
], ids=["polynomial", "boosted-trees", "bayesian", "linear-sdca"])
def test_sklearn_estimators_beat_prior_mean(est, limit, noddi_split):
    # columns: odi, icvf, fiso; error relative to predicting the training mean
    assert np.all(relative_error(est, noddi_split) < limit)


@pytest.mark.parametrize("est", [
    DNNRegressor(optimizer="adam", epochs=25, random_state=0),
    # default learning rates: at Adam's 1e-3 these two stay near the prior mean (0.9)
    DNNRegressor(optimizer="ftrl", epochs=25, random_state=0),
    DNNRegressor(optimizer="proximal-adagrad", epochs=25, random_state=0),
    WideDeepRegressor(epochs=25, random_state=0),
    WideDeepRegressor(wide_optimizer="sdca", epochs=24, random_state=0),
    GaussianDNNRegressor(epochs=25, random_state=0),
], ids=["dnn-adam", "dnn-ftrl", "dnn-proximal-adagrad", "wide-deep-ftrl", "wide-deep-sdca",
        "gaussian-dnn"])
def test_networks_beat_prior_mean(est, noddi_split):
    assert np.all(relative_error(est, noddi_split) < (0.5, 0.25, 0.35))


@pytest.mark.parametrize("est", [BayesianPolynomialRegressor(),
                                 GaussianDNNRegressor(epochs=25, random_state=0)],
                         ids=["bayesian-ridge", "gaussian-dnn"])
def test_uncertainty_is_calibrated(est, noddi_split):
    X, y, Xt, yt = noddi_split
    mean, std = est.fit(X, y).predict(Xt, return_std=True)
    assert np.all(std > 0)
    coverage = np.mean(np.abs(mean - yt) < 1.645 * std, axis=0)  # 90 % intervals
    assert np.all((coverage >= 0.85) & (coverage <= 0.95)), coverage


def test_sdca_reaches_the_ridge_solution_with_a_shrinking_gap(rng):
    X = rng.normal(size=(2000, 8))
    Y = X @ rng.normal(size=(8, 2)) + 0.3 * rng.normal(size=(2000, 2))
    lam = 1e-2
    W, gaps = sdca_ridge(X, Y, lam, max_epochs=200, tol=1e-12, random_state=0)
    closed = np.linalg.solve(X.T @ X / len(X) + lam * np.eye(8), X.T @ Y / len(X))
    np.testing.assert_allclose(W, closed, atol=1e-6)
    assert gaps[0] > 100 * gaps[-1] >= 0
    assert np.all(np.diff(np.log(np.maximum(gaps, 1e-300)))[:10] < 0)


def test_proximal_adagrad_step_and_exact_zeros():
    import keras

    opt_cls = proximal_adagrad_class()
    # one step against the closed form of TensorFlow's ApplyProximalAdagrad
    w = keras.Variable(np.array([1.0, -0.02, 0.5], dtype="float32"))
    g = np.array([0.3, -0.06, -0.2], dtype="float32")
    opt = opt_cls(learning_rate=0.1, initial_accumulator_value=0.1,
                  l1_regularization_strength=0.05, l2_regularization_strength=0.2)
    opt.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
    acc = 0.1 + g**2
    eta = 0.1 / np.sqrt(acc)
    v = np.array([1.0, -0.02, 0.5]) - eta * g
    expected = np.sign(v) * np.maximum(np.abs(v) - eta * 0.05, 0) / (1 + eta * 0.2)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5)
    assert np.asarray(w)[1] == 0.0  # shrunk to an exact zero

    # L1 on a linear model: irrelevant inputs end exactly at zero, relevant ones do not
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 10)).astype("float32")
    y = (X[:, :3] @ np.array([1.0, -2.0, 0.5]))[:, None].astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=opt_cls(learning_rate=0.5, l1_regularization_strength=0.05),
                  loss="mse")
    model.fit(X, y, epochs=20, batch_size=100, verbose=0)
    kernel = np.asarray(model.layers[0].kernel)[:, 0]
    assert np.all(kernel[3:] == 0.0)
    assert np.all(np.abs(kernel[:3]) > 0.3)


@pytest.mark.parametrize("est", [PolynomialRegressor(degree=2),
                                 BoostedTreesRegressor(max_iter=10),
                                 BayesianPolynomialRegressor(degree=2),
                                 SDCARegressor(max_epochs=5)],
                         ids=["polynomial", "boosted-trees", "bayesian", "linear-sdca"])
def test_sklearn_contract(est):
    check_estimator(est)
