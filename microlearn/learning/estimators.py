"""scikit-learn estimators mapping features to microstructure parameters.

Every estimator follows the scikit-learn contract (parameters stored unchanged by
``__init__``, ``fit`` returns ``self``, learned state ends in ``_``) and scales its
features and targets inside, so raw features and SI targets can be passed directly.

* :class:`PolynomialRegressor` — ``PolynomialFeatures`` + ridge.
* :class:`BoostedTreesRegressor` — one ``HistGradientBoostingRegressor`` per target.
* :class:`BayesianPolynomialRegressor` — ``BayesianRidge`` per target on polynomial
  features; ``predict(X, return_std=True)`` gives the posterior predictive std.
* :class:`SDCARegressor` — a ridge-regularised linear model trained by stochastic dual
  coordinate ascent (:mod:`microlearn.learning.sdca`).

The Keras networks (DNN, wide & deep, heteroscedastic) live in
:mod:`microlearn.learning.networks`.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, check_X_y, validate_data

#: Reusable parameter constraints (scikit-learn's declarative validation).
POSITIVE_INT = Interval(Integral, 1, None, closed="left")
POSITIVE = Interval(Real, 0, None, closed="neither")
NON_NEGATIVE = Interval(Real, 0, None, closed="left")


class ScaledRegressor(RegressorMixin, BaseEstimator):
    """Base: standardise X and y, fit ``_fit_scaled``, undo the target scaling.

    Subclasses declare ``_parameter_constraints``; ``fit`` checks every parameter against
    them first and raises ``ValueError`` naming the parameter, the allowed values and the
    value given.
    """

    _parameter_constraints: dict = {}

    def fit(self, X, y):
        """Fit on features ``X`` (n, F) and targets ``y`` (n,) or (n, T)."""
        self._validate_params()
        self._check_params()
        X, y = check_X_y(X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        validate_data(self, X, reset=True, skip_check_array=True)
        self.single_target_ = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        self.x_mean_, self.x_scale_ = X.mean(0), _safe_std(X)
        self.y_mean_, self.y_scale_ = y2.mean(0), _safe_std(y2)
        Xs, ys = (X - self.x_mean_) / self.x_scale_, (y2 - self.y_mean_) / self.y_scale_
        self._fit_scaled(Xs, ys)
        if getattr(self, "uncertainty", False):
            self._fit_std_head(Xs, ys)
        return self

    def _fit_std_head(self, Xs, ys):
        """Cross-fitted residuals -> calibrated heteroscedastic σ (:mod:`.uncertainty`)."""
        from sklearn.base import clone

        from .uncertainty import cross_fitted_residuals, fit_residual_head

        if len(Xs) < 40:
            import warnings

            warnings.warn(f"{type(self).__name__}: {len(Xs)} training samples are too few "
                          "to learn a std (40 or more); predict(return_std=True) falls back "
                          "to the model's own std where it has one.", UserWarning,
                          stacklevel=3)
            return
        seed = getattr(self, "random_state", None)
        rng = np.random.default_rng(seed if isinstance(seed, Integral) else 0)
        resid = cross_fitted_residuals(
            lambda: _OnScaled(clone(self).set_params(uncertainty=False)), Xs, ys, 2, rng)
        self.std_heads_, self.std_scale_ = fit_residual_head(
            Xs, resid, random_state=int(rng.integers(2**31)))

    def _scaled_X(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return (X - self.x_mean_) / self.x_scale_

    def predict(self, X, return_std=False):
        """Predicted targets, shape (n,) or (n, T) as in ``fit``.

        With ``return_std`` (estimators fitted with ``uncertainty=True``) also the
        per-sample standard deviation, calibrated so that ``mean ± 1.645 std`` holds 90 %
        of held-out truths.
        """
        if return_std:
            return self._predict_mean_std(X)
        out = self._predict_scaled(self._scaled_X(X)) * self.y_scale_ + self.y_mean_
        return out[:, 0] if self.single_target_ else out

    def _std_scaled(self, Xs):
        from .uncertainty import head_std

        if not hasattr(self, "std_heads_"):
            raise ValueError(f"{type(self).__name__}: fitted without uncertainty; set "
                             "uncertainty=True (learn --uncertainty) to get a std.")
        return head_std(self.std_heads_, self.std_scale_, Xs)

    def _predict_mean_std(self, X):
        """Mean and std in target units."""
        Xs = self._scaled_X(X)
        mean = np.reshape(self._predict_scaled(Xs), (len(Xs), -1))
        std = self._std_scaled(Xs)
        mean, std = mean * self.y_scale_ + self.y_mean_, std * self.y_scale_
        if self.single_target_:
            return mean[:, 0], std[:, 0]
        return mean, std

    def _check_params(self):
        """Checks beyond ``_parameter_constraints`` (subclasses)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class _OnScaled:
    """An unfitted ScaledRegressor working on already standardised X and y."""

    def __init__(self, est):
        self.est = est

    def fit(self, X, y):
        self.est._fit_scaled(X, y)
        return self

    def predict(self, X):
        return self.est._predict_scaled(X)


def _safe_std(a):
    s = a.std(0)
    return np.where(s > 0, s, 1.0)


class PolynomialRegressor(ScaledRegressor):
    """Ridge regression on polynomial features of the (standardised) inputs.

    Parameters
    ----------
    degree : int
        Polynomial degree.
    alpha : float
        Ridge penalty on the standardised problem.
    uncertainty : bool
        Also learn a calibrated per-sample std (:mod:`microlearn.learning.uncertainty`);
        ``predict(X, return_std=True)``.
    """

    _parameter_constraints = {"degree": [POSITIVE_INT], "alpha": [NON_NEGATIVE],
                              "uncertainty": ["boolean"]}

    def __init__(self, degree=3, alpha=1e-3, uncertainty=False):
        self.degree = degree
        self.alpha = alpha
        self.uncertainty = uncertainty

    def _fit_scaled(self, X, y):
        from sklearn.linear_model import Ridge
        from sklearn.preprocessing import PolynomialFeatures

        self.poly_ = PolynomialFeatures(self.degree, include_bias=False).fit(X)
        self.ridge_ = Ridge(alpha=self.alpha).fit(self.poly_.transform(X), y)

    def _predict_scaled(self, X):
        return self.ridge_.predict(self.poly_.transform(X)).reshape(len(X), -1)


class BoostedTreesRegressor(ScaledRegressor):
    """Gradient-boosted trees (``HistGradientBoostingRegressor``), one per target.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, l2_regularization
        Passed to every ``HistGradientBoostingRegressor``.
    random_state : int, optional
    uncertainty : bool
        As :class:`PolynomialRegressor`.
    """

    _parameter_constraints = {
        "max_iter": [POSITIVE_INT], "learning_rate": [POSITIVE],
        "max_leaf_nodes": [Interval(Integral, 2, None, closed="left")],
        "l2_regularization": [NON_NEGATIVE], "random_state": ["random_state"],
        "uncertainty": ["boolean"],
    }

    def __init__(self, max_iter=300, learning_rate=0.1, max_leaf_nodes=31,
                 l2_regularization=0.0, random_state=None, uncertainty=False):
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.random_state = random_state
        self.uncertainty = uncertainty

    def _fit_scaled(self, X, y):
        from sklearn.ensemble import HistGradientBoostingRegressor

        self.trees_ = [
            HistGradientBoostingRegressor(
                max_iter=self.max_iter, learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes, early_stopping=False,
                l2_regularization=self.l2_regularization, random_state=self.random_state,
            ).fit(X, y[:, j])
            for j in range(y.shape[1])
        ]
        self.n_iter_ = max(t.n_iter_ for t in self.trees_)

    def _predict_scaled(self, X):
        return np.stack([t.predict(X) for t in self.trees_], axis=1)


class BayesianPolynomialRegressor(ScaledRegressor):
    """Bayesian ridge regression on polynomial features, with predictive uncertainty.

    The evidence-maximised weight posterior gives the epistemic part of the std
    (``x^T Σ x``: large far from the training samples). ``BayesianRidge`` assumes one noise
    level for every sample, so its own predictive std is nearly constant and does not rank
    errors; the aleatoric part is therefore a heteroscedastic, conformally calibrated head
    on cross-fitted residuals (:mod:`microlearn.learning.uncertainty`). The two add in
    variance; ``predict(X, return_std=True)`` returns mean and std.

    Parameters
    ----------
    degree : int
        Polynomial degree.
    uncertainty : bool
        Learn the heteroscedastic part (default); without it the std is the plain
        ``BayesianRidge`` posterior predictive.
    random_state : int, optional
        Seed of the cross-fitting folds.
    """

    _parameter_constraints = {"degree": [POSITIVE_INT], "uncertainty": ["boolean"],
                              "random_state": [Interval(Integral, 0, None, closed="left"),
                                               None]}

    def __init__(self, degree=3, uncertainty=True, random_state=None):
        self.degree = degree
        self.uncertainty = uncertainty
        self.random_state = random_state

    def _fit_scaled(self, X, y):
        from sklearn.linear_model import BayesianRidge
        from sklearn.preprocessing import PolynomialFeatures

        self.poly_ = PolynomialFeatures(self.degree, include_bias=False).fit(X)
        P = self.poly_.transform(X)
        self.models_ = [BayesianRidge().fit(P, y[:, j]) for j in range(y.shape[1])]

    def _predict_scaled(self, X, return_std=False):
        P = self.poly_.transform(X)
        pairs = [m.predict(P, return_std=True) for m in self.models_]
        mean = np.stack([p[0] for p in pairs], axis=1)
        if not return_std:
            return mean
        return mean, np.stack([p[1] for p in pairs], axis=1)

    def _std_scaled(self, Xs):
        _, posterior = self._predict_scaled(Xs, return_std=True)
        if not hasattr(self, "std_heads_"):
            return posterior
        noise = np.array([1.0 / m.alpha_ for m in self.models_])
        epistemic = np.maximum(posterior ** 2 - noise, 0.0)
        return np.sqrt(super()._std_scaled(Xs) ** 2 + epistemic)


class SDCARegressor(ScaledRegressor):
    """Linear ridge regression trained by stochastic dual coordinate ascent.

    Minimises ``(1/n) Σ ½ (w·x_i - y_i)² + (λ/2) ‖w‖²`` (Shalev-Shwartz & Zhang 2013)
    on the standardised problem; one dual variable per sample and target, each updated
    in closed form for the squared loss. Training stops when the duality gap falls
    below ``tol`` (relative to the primal objective) or after ``max_epochs``.

    Parameters
    ----------
    l2 : float
        λ, the ridge penalty.
    max_epochs : int
    tol : float
        Relative duality gap at which to stop.
    random_state : int, optional
        Seed of the sample order.
    uncertainty : bool
        As :class:`PolynomialRegressor`.
    """

    _parameter_constraints = {"l2": [POSITIVE], "max_epochs": [POSITIVE_INT],
                              "tol": [NON_NEGATIVE],
                              "random_state": [Interval(Integral, 0, None, closed="left"),
                                               None],
                              "uncertainty": ["boolean"]}

    def __init__(self, l2=1e-4, max_epochs=50, tol=1e-6, random_state=None,
                 uncertainty=False):
        self.l2 = l2
        self.max_epochs = max_epochs
        self.tol = tol
        self.random_state = random_state
        self.uncertainty = uncertainty

    def _fit_scaled(self, X, y):
        from .sdca import sdca_ridge

        self.coef_, self.gaps_ = sdca_ridge(X, y, self.l2, max_epochs=self.max_epochs,
                                            tol=self.tol, random_state=self.random_state)
        self.n_epochs_ = len(self.gaps_)

    def _predict_scaled(self, X):
        return X @ self.coef_


ESTIMATORS = {
    "polynomial": PolynomialRegressor,
    "boosted-trees": BoostedTreesRegressor,
    "bayesian": BayesianPolynomialRegressor,
    "linear-sdca": SDCARegressor,
}
