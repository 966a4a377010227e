"""A small NODDI training/test split shared by the learning tests."""

from __future__ import annotations

import pytest

from microlearn.learning import FeatureSpec, make_training_set, train


@pytest.fixture(scope="session")
def noddi_split(hcp):
    spec = FeatureSpec()
    train = make_training_set("noddi", hcp, 6000, n_fibres=1, snr=30, random_state=0)
    test = make_training_set("noddi", hcp, 1500, n_fibres=1, snr=30, random_state=1)
    X, _ = spec.compute(train.signal, hcp)
    Xt, _ = spec.compute(test.signal, hcp)
    return X, train.targets, Xt, test.targets


@pytest.fixture(scope="session")
def poly(hcp, tmp_path_factory):
    """A saved polynomial NODDI estimator: (TrainedEstimator, folder)."""
    est = train("noddi", hcp, estimator="polynomial", n_samples=3000)
    path = tmp_path_factory.mktemp("est") / "poly"
    est.save(path)
    return est, path
