"""Estimators validate their parameters in ``fit``; learning rates default per optimizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microlearn.cli import main
from microlearn.learning import (
    BayesianPolynomialRegressor,
    BoostedTreesRegressor,
    DNNRegressor,
    GaussianDNNRegressor,
    PolynomialRegressor,
    SDCARegressor,
    WideDeepRegressor,
    make_estimator,
)
from microlearn.learning.optimizers import DEFAULT_LEARNING_RATES, make_optimizer


@pytest.mark.parametrize("est, name", [
    (PolynomialRegressor(degree=0), "degree"),
    (PolynomialRegressor(alpha=-1.0), "alpha"),
    (BayesianPolynomialRegressor(degree=1.5), "degree"),
    (BoostedTreesRegressor(max_iter=0), "max_iter"),
    (BoostedTreesRegressor(learning_rate=0.0), "learning_rate"),
    (SDCARegressor(l2=0.0), "l2"),
    (DNNRegressor(optimizer="sgd"), "optimizer"),
    (DNNRegressor(learning_rate=-0.1), "learning_rate"),
    (DNNRegressor(validation_fraction=1.0), "validation_fraction"),
    (DNNRegressor(hidden_units=(64, 0)), "hidden_units"),
    (DNNRegressor(hidden_units=()), "hidden_units"),
    (DNNRegressor(activation="relux"), "activation"),
    (WideDeepRegressor(wide_optimizer="sgd"), "wide_optimizer"),
    (WideDeepRegressor(wide_learning_rate=0.0), "wide_learning_rate"),
    (GaussianDNNRegressor(epochs=0), "epochs"),
])
def test_bad_parameters_fail_in_fit_naming_the_parameter(est, name):
    X, y = np.random.default_rng(0).normal(size=(30, 3)), np.zeros(30)
    with pytest.raises(ValueError, match=name):
        est.fit(X, y)
    assert not hasattr(est, "x_mean_")  # nothing learned


def test_each_optimizer_gets_its_own_default_learning_rate():
    assert DEFAULT_LEARNING_RATES == {"adam": 1e-3, "ftrl": 0.05, "proximal-adagrad": 0.05}
    for name, lr in DEFAULT_LEARNING_RATES.items():
        assert float(make_optimizer(name).learning_rate) == pytest.approx(lr)
    assert float(make_optimizer("ftrl", 0.2).learning_rate) == pytest.approx(0.2)


def test_make_estimator_learning_rate_goes_to_the_named_optimizer():
    assert make_estimator("dnn", "ftrl", learning_rate=0.02).learning_rate == 0.02
    wd = make_estimator("wide-deep", "proximal-adagrad", learning_rate=0.1)
    assert wd.wide_learning_rate == 0.1 and wd.learning_rate is None
    assert make_estimator("wide-deep", learning_rate=0.003).learning_rate == 0.003
    assert make_estimator("boosted-trees", learning_rate=0.2).learning_rate == 0.2
    with pytest.raises(ValueError, match="no learning rate"):
        make_estimator("polynomial", learning_rate=0.1)
    with pytest.raises(ValueError, match="positive"):
        make_estimator("dnn", learning_rate=0.0)


def test_learn_cli_learning_rate(tmp_path, capsys):
    out = tmp_path / "est"
    code = main(["learn", "--scheme", "hcp", "--estimator", "dnn", "--optimizer", "ftrl",
                 "--learning-rate", "0.02", "--n-samples", "600", "--epochs", "1",
                 "--n-fibres", "1", "--out", str(out)])
    assert code == 0
    meta = json.loads((out / "estimator.json").read_text())
    assert meta["estimator_params"]["learning_rate"] == 0.02
    assert meta["optimizer"] == "ftrl"
    capsys.readouterr()
    code = main(["learn", "--scheme", "hcp", "--estimator", "polynomial", "--learning-rate",
                 "0.1", "--n-samples", "600", "--out", str(tmp_path / "poly")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "learning rate" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "poly").exists()
