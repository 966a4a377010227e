"""Batched nonlinear least squares: Levenberg–Marquardt and a log-barrier interior point.

Both work on a whole block of voxels at once: residuals ``r(x)`` of shape (V, N) for
parameters ``x`` of shape (V, P), Jacobians by batched forward differences, a small
(P x P) linear solve per voxel with ``numpy.linalg.solve`` on the stacked systems, and
per-voxel convergence (voxels that have converged drop out of the active set).
"""

from __future__ import annotations

import numpy as np


def jacobian(residual, x, r0, steps, active=None):
    """Forward-difference Jacobian, shape (V, N, P).

    Parameters
    ----------
    residual : callable
        ``residual(x, rows)`` -> (len(rows), N) residuals for parameter rows ``x``.
    x : ndarray, shape (V, P)
    r0 : ndarray, shape (V, N)
        Residuals at ``x``.
    steps : ndarray, shape (V, P)
        Finite-difference steps (sign already chosen to stay inside bounds).
    """
    V, P = x.shape
    xs = np.repeat(x[:, None, :], P, axis=1)  # (V, P, P)
    idx = np.arange(P)
    xs[:, idx, idx] += steps
    rows = np.repeat(np.arange(V) if active is None else active, P)
    r = residual(xs.reshape(V * P, P), rows).reshape(V, P, -1)
    return np.moveaxis((r - r0[:, None, :]) / steps[:, :, None], 1, 2)


def _fd_steps(x, lower, upper, scales):
    h = 1e-5 * scales
    step = np.broadcast_to(h, x.shape).copy()
    flip = x + step > upper
    step[flip] *= -1.0
    return step


def _solve(jtj, g):
    try:
        return np.linalg.solve(jtj, g[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(jtj) @ g[..., None])[..., 0]


def levenberg_marquardt(residual, x0, lower, upper, scales, *, max_iter=40, tol=1e-7):
    """Bounded Levenberg–Marquardt (projected steps) on a block of voxels.

    Parameters
    ----------
    residual : callable
        ``residual(x, rows)`` -> residuals (len(rows), N).
    x0 : ndarray, shape (V, P)
    lower, upper : ndarray, shape (P,)
        Bounds (use ±inf for unbounded entries such as orientation angles).
    scales : ndarray, shape (P,)
        Typical magnitudes (the damping acts on scaled parameters).

    Returns
    -------
    x : ndarray, shape (V, P)
    cost : ndarray, shape (V,)
        Sum of squared residuals.
    converged : ndarray of bool, shape (V,)
        The relative cost decrease of an accepted step fell below ``tol``, or no damped
        step lowered the cost (a stationary point); False for voxels still improving when
        ``max_iter`` iterations ended.
    """
    x = np.clip(np.array(x0, dtype=float), lower, upper)
    V = x.shape[0]
    rows = np.arange(V)
    r = residual(x, rows)
    cost = np.einsum("vn,vn->v", r, r)
    lam = np.full(V, 1e-3)
    converged = np.zeros(V, bool)
    active = np.arange(V)
    for _ in range(max_iter):
        if active.size == 0:
            break
        xa, ra = x[active], r[active]
        steps = _fd_steps(xa, lower, upper, scales)
        J = jacobian(residual, xa, ra, steps, active) * scales  # scaled
        jtj = np.einsum("vnp,vnq->vpq", J, J)
        g = -np.einsum("vnp,vn->vp", J, ra)
        diag = np.einsum("vpp->vp", jtj)
        improved = np.zeros(active.size, bool)
        for _try in range(4):
            todo = np.flatnonzero(~improved)
            if todo.size == 0:
                break
            A = jtj[todo] + (lam[active[todo], None, None]
                             * (np.eye(x.shape[1]) * (diag[todo, :, None] + 1e-12)))
            dz = _solve(A, g[todo])
            xn = np.clip(xa[todo] + dz * scales, lower, upper)
            rn = residual(xn, active[todo])
            cn = np.einsum("vn,vn->v", rn, rn)
            better = cn < cost[active[todo]]
            sel = active[todo[better]]
            rel = (cost[sel] - cn[better]) / np.maximum(cost[sel], 1e-30)
            x[sel], r[sel], cost[sel] = xn[better], rn[better], cn[better]
            lam[sel] = np.maximum(lam[sel] / 3.0, 1e-9)
            lam[active[todo[~better]]] *= 4.0
            improved[todo[better]] = True
            small = np.zeros(active.size, bool)
            small[todo[better]] = rel < tol
            converged[active[small]] = True
        converged[active[~improved]] = True  # no descent even with heavy damping
        active = active[~converged[active]]
    return x, cost, converged


def interior_point(residual, x0, lower, upper, scales, *, bounded, mu0=1e-3, mu_min=1e-9,
                   shrink=0.1, inner=6):
    """Log-barrier interior-point method for bound-constrained least squares.

    Minimises ½‖r(x)‖² − μ Σ_j [log(x_j − l_j) + log(u_j − x_j)] over the ``bounded``
    entries, with Gauss–Newton Newton steps, a fraction-to-boundary rule (τ = 0.995) and
    μ decreased geometrically; the iterates stay strictly inside the bounds.

    Parameters
    ----------
    bounded : ndarray of bool, shape (P,)
        Entries that carry a barrier (others are free, e.g. orientation angles).

    Returns
    -------
    x, cost : as :func:`levenberg_marquardt`.
    converged : ndarray of bool, shape (V,)
        The last Newton step of the smallest μ moved the scaled parameters by less than
        1e-6 or lowered the barrier merit by less than 1e-6 (relative), or no step
        lowered it.
    """
    lo = np.where(bounded, lower, -np.inf)
    hi = np.where(bounded, upper, np.inf)
    width = np.where(bounded, hi - lo, 1.0)
    x = np.array(x0, dtype=float)
    inset = 1e-3 * width
    x = np.where(bounded, np.clip(x, lo + inset, hi - inset), x)
    V, P = x.shape
    rows = np.arange(V)
    r = residual(x, rows)

    def merit(xv, rv, mu):
        with np.errstate(invalid="ignore", divide="ignore"):
            bar = np.where(bounded, np.log((xv - lo) / width) + np.log((hi - xv) / width), 0.0)
        return 0.5 * np.einsum("vn,vn->v", rv, rv) - mu * bar.sum(1)

    mu = mu0
    converged = np.zeros(V, bool)
    while mu >= mu_min:
        for _ in range(inner):
            steps = _fd_steps(x, lo, hi, scales)
            J = jacobian(residual, x, r, steps) * scales
            dl = np.where(bounded, (x - lo) / scales, np.inf)
            du = np.where(bounded, (hi - x) / scales, np.inf)
            grad = np.einsum("vnp,vn->vp", J, r) - mu * np.where(bounded, 1 / dl - 1 / du, 0.0)
            hess = np.einsum("vnp,vnq->vpq", J, J)
            hb = np.where(bounded, mu * (1 / dl**2 + 1 / du**2), 0.0)
            hess = hess + np.einsum("vp,pq->vpq", hb + 1e-10, np.eye(P))
            dz = _solve(hess, -grad)
            # fraction to boundary
            with np.errstate(invalid="ignore", divide="ignore"):
                to_lo = np.where(dz < 0, -0.995 * dl / dz, np.inf)
                to_hi = np.where(dz > 0, 0.995 * du / dz, np.inf)
            alpha = np.minimum(1.0, np.minimum(to_lo, to_hi).min(1))
            m0 = merit(x, r, mu)
            moved = np.zeros(V)  # largest scaled change of the accepted step
            for _bt in range(5):  # backtracking on the barrier merit
                xn = x + alpha[:, None] * dz * scales
                rn = residual(xn, rows)
                mn = merit(xn, rn, mu)
                ok = mn <= m0
                x[ok], r[ok] = xn[ok], rn[ok]
                moved[ok] = np.maximum(moved[ok], np.abs(alpha[ok, None] * dz[ok]).max(1))
                if ok.all():
                    break
                alpha = np.where(ok, 0.0, alpha * 0.3)
            # a step below 1e-6 (scaled), a relative merit decrease below 1e-6, or no
            # step that lowers the merit (a stationary point)
            mf = merit(x, r, mu)
            converged = (moved < 1e-6) | (m0 - mf <= 1e-6 * np.abs(m0))
        mu *= shrink
    cost = np.einsum("vn,vn->v", r, r)
    return x, cost, converged & np.isfinite(cost)
