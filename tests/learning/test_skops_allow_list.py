"""Saved scikit-learn estimators load only the types microlearn writes (an explicit list)."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn.learning import load_estimator, train
from microlearn.learning.persistence import _schema_types, written_types


def _forge(est, path, **attrs):
    """Save ``est`` with some fitted attributes replaced (as an attacker would)."""
    import copy

    import skops.io

    evil = copy.deepcopy(est.estimator)
    for k, v in attrs.items():
        setattr(evil, k, v)
    est.save(path)
    skops.io.dump(evil, path / "estimator.skops")


def test_function_transformer_with_a_numpy_function_is_refused(poly, tmp_path):
    """numpy/scipy/sklearn types were all trusted before: a FunctionTransformer holding any
    numpy function (here one that writes files) would have been built and run at predict."""
    from sklearn.preprocessing import FunctionTransformer

    est, _ = poly
    marker = tmp_path / "pwned.txt"
    _forge(est, tmp_path / "evil",
           poly_=FunctionTransformer(np.savetxt, kw_args={"fname": str(marker)}))
    with pytest.raises(ValueError, match="refusing to load types.*numpy.savetxt"):
        load_estimator(tmp_path / "evil")
    assert not marker.exists()


@pytest.mark.parametrize("replacement", ["scaler", "linalg"])
def test_other_numpy_and_sklearn_types_are_refused(poly, tmp_path, replacement):
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    est, _ = poly
    obj = (StandardScaler().fit(np.ones((3, 2))) if replacement == "scaler"
           else FunctionTransformer(np.linalg.inv))
    _forge(est, tmp_path / "evil", poly_=obj)
    with pytest.raises(ValueError, match="refusing to load types"):
        load_estimator(tmp_path / "evil")


@pytest.mark.parametrize("name, options", [("polynomial", {}), ("bayesian", {}),
                                           ("linear-sdca", {}),
                                           ("boosted-trees", {"max_iter": 5}),
                                           ("polynomial", {"uncertainty": True})])
def test_every_written_type_is_on_the_list(hcp, tmp_path, name, options):
    est = train("noddi", hcp, estimator=name, n_samples=800, **options)
    est.save(tmp_path / name)
    nodes = {t for t, _ in _schema_types(tmp_path / name / "estimator.skops")}
    assert nodes <= written_types()
    again = load_estimator(tmp_path / name)
    assert type(again.estimator) is type(est.estimator)
    signal = np.abs(np.random.default_rng(0).normal(1.0, 0.05, (20, hcp.n_measurements)))
    a, b = est.predict_block(signal), again.predict_block(signal)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
