"""Stochastic dual coordinate ascent (SDCA) for ridge regression.

Primal: ``P(w) = (1/n) Σ_i ½ (x_i·w - y_i)² + (λ/2) ‖w‖²``.
Dual:   ``D(α) = (1/n) Σ_i (α_i y_i - α_i²/2) - (λ/2) ‖w(α)‖²`` with
``w(α) = (1/(λn)) Σ_i α_i x_i``.

For the squared loss the maximisation over one dual coordinate has a closed form
(Shalev-Shwartz & Zhang, JMLR 2013):
``Δα_i = (y_i - x_i·w - α_i) / (1 + ‖x_i‖² / (λn))``, then ``w += Δα_i x_i / (λn)``.
Each epoch visits the samples in a fresh random order (compiled with numba); the duality
gap ``P(w) - D(α) >= 0`` certifies convergence. Several targets are solved at once
(one dual variable per sample and target).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _epoch(X, Y, alpha, W, sq_norms, lam_n, order):
    n_targets = Y.shape[1]
    d = X.shape[1]
    for i in order:
        denom = 1.0 + sq_norms[i] / lam_n
        for t in range(n_targets):
            pred = 0.0
            for k in range(d):
                pred += X[i, k] * W[k, t]
            delta = (Y[i, t] - pred - alpha[i, t]) / denom
            alpha[i, t] += delta
            step = delta / lam_n
            for k in range(d):
                W[k, t] += step * X[i, k]


def duality_gap(X, Y, alpha, W, lam) -> tuple[float, float]:
    """Primal and dual objectives (summed over targets)."""
    n = X.shape[0]
    resid = X @ W - Y
    reg = 0.5 * lam * float(np.sum(W * W))
    primal = 0.5 * float(np.sum(resid * resid)) / n + reg
    dual = float(np.sum(alpha * Y - 0.5 * alpha * alpha)) / n - reg
    return primal, dual


def sdca_ridge(X, Y, lam, *, max_epochs=50, tol=1e-6, random_state=None, alpha0=None,
               return_dual=False):
    """Ridge weights by SDCA.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    Y : ndarray, shape (n, T)
    lam : float
        Ridge penalty λ > 0.
    max_epochs : int
    tol : float
        Stop when ``(P - D) / max(P, 1e-12) < tol``.
    random_state : int, optional
    alpha0 : ndarray, shape (n, T), optional
        Warm-start dual variables.

    Returns
    -------
    W : ndarray, shape (d, T)
    gaps : list of float
        Relative duality gap after each epoch (non-increasing in expectation).
    alpha : ndarray, shape (n, T)
        Dual variables (only with ``return_dual``, for warm starts).
    """
    if not lam > 0:
        raise ValueError(f"l2 (λ) must be positive for SDCA, not {lam}.")
    X = np.ascontiguousarray(X, dtype=float)
    Y = np.ascontiguousarray(np.reshape(Y, (len(Y), -1)), dtype=float)
    n = X.shape[0]
    lam_n = lam * n
    alpha = np.zeros_like(Y) if alpha0 is None else np.array(alpha0, dtype=float)
    W = X.T @ alpha / lam_n
    sq_norms = np.einsum("ij,ij->i", X, X)
    rng = np.random.default_rng(random_state)
    gaps = []
    for _ in range(int(max_epochs)):
        _epoch(X, Y, alpha, W, sq_norms, lam_n, rng.permutation(n))
        primal, dual = duality_gap(X, Y, alpha, W, lam)
        gaps.append((primal - dual) / max(abs(primal), 1e-12))
        if gaps[-1] < tol:
            break
    return (W, gaps, alpha) if return_dual else (W, gaps)
