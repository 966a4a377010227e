"""Per-sample standard deviations for any scaled regressor: a calibrated residual head.

A point estimator (polynomial ridge, boosted trees, SDCA, Bayesian ridge) says nothing
about which of its predictions are wrong. :func:`fit_residual_head` learns that from the
training set itself, in three steps that never score a sample with a model that saw it:

1. **Cross-fitted residuals.** The training samples are split in ``n_folds``; a clone of
   the estimator fitted on the other folds predicts each fold, giving honest residuals
   ``r`` (an estimator's own training residuals are too small, most of all for trees).
2. **A heteroscedastic head.** Per target, gradient-boosted trees regress ``log |r|`` on
   the features: ``exp`` of the prediction is proportional to the local error scale
   (for Gaussian errors ``E log|r| = log σ - 0.635``; the constant is absorbed in step 3).
3. **Split-conformal calibration.** On residuals the head did not see, the scale is set so
   that ``|r| <= 1.645 σ`` for 90 % of them, i.e. σ is the std of a Gaussian whose 90 %
   interval has the right coverage.

The result ranks errors (large σ where the features are ambiguous: free water, dispersed
or crossing fibres, low signal) and is calibrated on held-out data
(``tests/learning/test_uncertainty.py``).
"""

from __future__ import annotations

import numpy as np

#: z of a two-sided 90 % Gaussian interval.
Z90 = 1.6448536269514722
#: Smallest σ relative to the target scale (a zero would claim certainty).
MIN_STD = 1e-4


def _head(random_state):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=150, learning_rate=0.1, max_leaf_nodes=15,
                                         min_samples_leaf=40, early_stopping=False,
                                         random_state=random_state)


def cross_fitted_residuals(make, X, y, n_folds: int, rng) -> np.ndarray:
    """Residuals ``y - f(X)`` where each sample is predicted by a model not fitted on it.

    Parameters
    ----------
    make : callable
        ``make()`` returns a fresh object with ``fit(X, y)`` and ``predict(X) -> (n, T)``.
    X : ndarray, shape (n, F)
    y : ndarray, shape (n, T)
    n_folds : int
    rng : numpy.random.Generator
    """
    fold = rng.permutation(len(X)) % n_folds
    out = np.empty_like(y)
    for k in range(n_folds):
        test = fold == k
        model = make()
        model.fit(X[~test], y[~test])
        out[test] = y[test] - np.reshape(model.predict(X[test]), (-1, y.shape[1]))
    return out


def fit_residual_head(X, residuals, *, calibration_fraction=0.25, random_state=None):
    """Per-target heads predicting the error scale, and their conformal scales.

    Parameters
    ----------
    X : ndarray, shape (n, F)
        (Standardised) features.
    residuals : ndarray, shape (n, T)
        Held-out residuals (:func:`cross_fitted_residuals`).
    calibration_fraction : float
        Share of the residuals kept apart to calibrate the scale.

    Returns
    -------
    heads : list of fitted regressors (one per target)
    scale : ndarray, shape (T,)
        Multiplier turning ``exp(head(X))`` into a Gaussian-equivalent std.
    """
    rng = np.random.default_rng(random_state)
    n, T = residuals.shape
    cal = rng.permutation(n) < int(round(calibration_fraction * n))
    mag = np.abs(residuals)
    floor = np.maximum(np.median(mag, axis=0) * 1e-3, 1e-12)
    heads, scale = [], np.ones(T)
    for j in range(T):
        log_r = np.log(np.maximum(mag[:, j], floor[j]))
        head = _head(random_state).fit(X[~cal], log_r[~cal])
        heads.append(head)
        sigma = np.exp(head.predict(X[cal]))
        scale[j] = np.quantile(mag[cal, j] / sigma, 0.9) / Z90
    return heads, scale


def head_std(heads, scale, X) -> np.ndarray:
    """σ of every sample, shape (n, T), in the residuals' units."""
    if len(X) == 0:
        return np.empty((0, len(heads)))
    return np.maximum(np.stack([np.exp(h.predict(X)) for h in heads], axis=1) * scale,
                      MIN_STD)


def coverage_curve(mean, std, truth, levels=None):
    """Share of truths inside the central Gaussian intervals ``mean ± z(level) std``.

    A calibrated std gives the diagonal (coverage = level at every level); a std that is
    right on average but wrong voxel by voxel bends away from it at the extremes.

    Parameters
    ----------
    mean, std, truth : ndarray, shape (n,)
        Estimates, their std and the true values (same units); non-finite entries are
        left out.
    levels : ndarray, shape (L,), optional
        Nominal coverages in (0, 1) (default 0.1, 0.2, ..., 0.9, 0.95, 0.99).

    Returns
    -------
    levels : ndarray, shape (L,)
    coverage : ndarray, shape (L,)
        NaN when no voxel is usable.
    """
    from scipy.stats import norm

    levels = np.asarray(levels if levels is not None else
                        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99], float)
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"levels must lie in (0, 1), not {levels}.")
    mean, std, truth = (np.asarray(a, float).ravel() for a in (mean, std, truth))
    ok = np.isfinite(mean) & np.isfinite(std) & np.isfinite(truth) & (std > 0)
    if not ok.any():
        return levels, np.full(levels.shape, np.nan)
    z = np.abs(mean[ok] - truth[ok]) / std[ok]
    return levels, np.mean(z[:, None] <= norm.ppf(0.5 + levels / 2)[None, :], axis=0)
