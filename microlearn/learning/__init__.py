"""Learned estimators: trained on signals the model simulates, applied to whole brains.

>>> from microlearn.learning import train, load_estimator          # doctest: +SKIP
>>> est = train("noddi", acq, estimator="dnn", optimizer="adam")    # doctest: +SKIP
>>> maps = est.predict_maps(data, mask, acq=acq)                    # doctest: +SKIP
"""

from .datasets import TrainingSet, default_targets, make_training_set
from .estimators import (
    BayesianPolynomialRegressor,
    BoostedTreesRegressor,
    PolynomialRegressor,
    SDCARegressor,
)
from .features import FeatureSpec, normalise_by_b0, rotation_invariant_features
from .networks import (
    DeepEnsembleRegressor,
    DNNRegressor,
    GaussianDNNRegressor,
    WideDeepRegressor,
)
from .optimizers import OPTIMIZERS, make_optimizer, proximal_adagrad_class
from .persistence import load_estimator, save_estimator
from .trained import ESTIMATOR_NAMES, TrainedEstimator, make_estimator, train

__all__ = [
    "BayesianPolynomialRegressor", "BoostedTreesRegressor", "DeepEnsembleRegressor",
    "DNNRegressor", "ESTIMATOR_NAMES",
    "FeatureSpec", "GaussianDNNRegressor", "OPTIMIZERS", "PolynomialRegressor",
    "SDCARegressor", "TrainedEstimator", "TrainingSet", "WideDeepRegressor",
    "default_targets", "load_estimator", "make_estimator", "make_optimizer",
    "make_training_set", "normalise_by_b0", "proximal_adagrad_class",
    "rotation_invariant_features", "save_estimator", "train",
]
