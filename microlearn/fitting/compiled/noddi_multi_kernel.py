"""Compiled kernels for NODDI with several fibre populations (numba).

Same tables and vectorised loops as :mod:`microlearn.fitting.compiled.noddi_kernel`, with the
signal written linearly in the compartment amplitudes,

    S = Σ_i a_i [icvf_i WS(odi_i, c_i) + (1 − icvf_i) WZ(odi_i, icvf_i, c_i)] + b B,

so S0 = Σ a_i + b, the fibre weights are a_i / Σ a and FISO = b / S0. Kernel parameter
layout per voxel: (θ_i, φ_i, odi_i, icvf_i, a_i) for each fibre i, then b; P = 5 n + 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernel_tools import (
    FAST,
    damped_trial,
    hold_active_bounds,
    normal_equations,
    rician_cost,
)
from .nnls import nnls_one
from .noddi_kernel import _fibre, _fibre_jacobian, _position, _series, exp_neg


@njit(cache=True, fastmath=FAST)
def _model(x, nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d,
           b_iso, n_square, want_jac, c, c2, ws, dws_c2, dws_odi, arg, wz, T, s, J):
    """Signal ``s`` (N,) and, if ``want_jac``, Jacobian ``J`` (5 nf + 1, N)."""
    N = bvals.shape[0]
    b = x[5 * nf]
    for n in range(N):
        s[n] = b * b_iso[n]
    if want_jac:
        for n in range(N):
            J[5 * nf, n] = b_iso[n]
    for f in range(nf):
        theta, phi, odi, icvf, amp = x[5 * f], x[5 * f + 1], x[5 * f + 2], x[5 * f + 3], \
            x[5 * f + 4]
        i, w, a0, a1 = _fibre(theta, phi, odi, icvf, bvals, bvecs, shell_start, qtab, dqtab,
                              tautab, lo, step, d, n_square, want_jac, c, c2, ws, dws_c2,
                              dws_odi, arg, wz, T)
        for n in range(N):
            s[n] += amp * T[n]
        if not want_jac:
            continue
        _fibre_jacobian(theta, phi, icvf, amp, i, w, a0, a1, bvals, bvecs, dtautab, d, c, c2,
                        ws, dws_c2, dws_odi, wz, J, 5 * f)
        for n in range(N):
            J[5 * f + 4, n] = T[n]


@njit(cache=True, fastmath=FAST)
def _grid_search(y, x, nf, bvals, bvecs, shell_start, qtab, tautab, lo, step, d, b_iso,
                 n_square, odi_grid, icvf_grid, c2, ws, arg, wz):
    """Shared (odi, icvf) for all fibres on the grid, NNLS amplitudes; fills ``x`` in place.

    Directions (x[5 i], x[5 i + 1]) are kept; ``icvf_grid`` must be uniform (the zeppelin
    exponentials of successive ICVF values are products, as in the single-fibre search).
    Scratch ``c2``, ``ws``, ``wz`` are (nf, N). Returns the best sum of squares.
    """
    N = y.shape[0]
    A = nf + 1
    atoms = np.empty((A, N))
    up = np.empty((nf, N))
    gram = np.empty((A, A))
    rhs = np.empty(A)
    delta = icvf_grid[1] - icvf_grid[0] if icvf_grid.shape[0] > 1 else 0.0
    for n in range(N):
        atoms[nf, n] = b_iso[n]
    yy = 0.0
    for n in range(N):
        yy += y[n] * y[n]
    for f in range(nf):
        st = np.sin(x[5 * f])
        mx, my, mz = st * np.cos(x[5 * f + 1]), st * np.sin(x[5 * f + 1]), np.cos(x[5 * f])
        for n in range(N):
            cn = bvecs[0, n] * mx + bvecs[1, n] * my + bvecs[2, n] * mz
            c2[f, n] = cn * cn
    best = np.inf
    for ko in range(odi_grid.shape[0]):
        i, w = _position(lo, step, qtab.shape[0], odi_grid[ko])
        tau = (1 - w) * tautab[i] + w * tautab[i + 1]
        a0 = 0.5 * (1 - tau)
        a1 = 0.5 * (3 * tau - 1)
        for f in range(nf):
            _series(qtab, i, w, shell_start, c2[f], ws[f])
            for n in range(N):
                arg[n] = bvals[n] * d * (1 - icvf_grid[0] * (1 - a0 - a1 * c2[f, n]))
            exp_neg(arg, wz[f], n_square)
            for n in range(N):
                arg[n] = bvals[n] * d * delta * (1 - a0 - a1 * c2[f, n])
            exp_neg(arg, up[f], n_square)
            for n in range(N):
                up[f, n] = 1.0 / up[f, n]
        for kc in range(icvf_grid.shape[0]):
            icvf = icvf_grid[kc]
            for f in range(nf):
                if kc > 0:
                    for n in range(N):
                        wz[f, n] *= up[f, n]
                for n in range(N):
                    atoms[f, n] = icvf * ws[f, n] + (1 - icvf) * wz[f, n]
            for p in range(A):
                acc = 0.0
                for n in range(N):
                    acc += atoms[p, n] * y[n]
                rhs[p] = acc
                for q in range(p, A):
                    acc = 0.0
                    for n in range(N):
                        acc += atoms[p, n] * atoms[q, n]
                    gram[p, q] = acc
                    gram[q, p] = acc
            amp = nnls_one(gram, rhs, 1e-12 * max(np.abs(rhs).max(), 1e-300), 3 * A)
            sse = yy
            for p in range(A):
                sse -= 2 * amp[p] * rhs[p]
                for q in range(A):
                    sse += amp[p] * gram[p, q] * amp[q]
            if sse < best:
                best = sse
                for f in range(nf):
                    x[5 * f + 2] = odi_grid[ko]
                    x[5 * f + 3] = icvf
                    x[5 * f + 4] = amp[f]
                x[5 * nf] = amp[nf]
    return best


@njit(parallel=True, cache=True)
def fit_voxels(Y, sigma, angles, nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab,
               lo, step, d, b_iso, n_square, odi_grid, icvf_grid, lower, upper, max_iter, tol,
               x0):
    """Grid search + Levenberg–Marquardt for ``nf``-fibre NODDI, in parallel over voxels.

    Parameters
    ----------
    Y : ndarray, shape (V, N)
        Normalised signals, measurements sorted by shell.
    sigma : ndarray, shape (V,)
        Noise level per voxel (0: Gaussian model).
    angles : ndarray, shape (V, nf, 2)
        Starting (θ, φ) of every fibre.
    lower, upper : ndarray, shape (5 nf + 1,)
        Bounds in the kernel layout.
    x0 : ndarray, shape (V, 5 nf + 1) or (0, 5 nf + 1)
        Starting points in the kernel layout that replace the grid search (rows whose first
        entry is NaN, and all voxels when ``x0`` has no rows, start from the grid at
        ``angles``).

    Returns
    -------
    X : ndarray, shape (V, 5 nf + 1)
        Kernel-layout parameters.
    cost : ndarray, shape (V,)
    converged : ndarray of bool, shape (V,)
        LM ended on a cost decrease below ``tol`` or a stationary point, not on
        ``max_iter``.
    """
    V, N = Y.shape
    P = 5 * nf + 1
    X = np.empty((V, P))
    costs = np.empty(V)
    converged = np.zeros(V, np.bool_)
    for v in prange(V):
        y = Y[v]
        sg = sigma[v]
        x = np.zeros(P)
        xn = np.empty(P)
        c = np.empty(N)
        c2 = np.empty(N)
        ws = np.empty(N)
        d1 = np.empty(N)
        d2 = np.empty(N)
        arg = np.empty(N)
        wz = np.empty(N)
        T = np.empty(N)
        s = np.empty(N)
        r = np.empty(N)
        rn = np.empty(N)
        J = np.empty((P, N))
        jtj = np.empty((P, P))
        A = np.empty((P, P))
        g = np.empty(P)
        dx = np.empty(P)
        unit = np.ones(P)
        gc2 = np.empty((nf, N))
        gws = np.empty((nf, N))
        gwz = np.empty((nf, N))
        if x0.shape[0] > 0 and not np.isnan(x0[v, 0]):
            for p in range(P):
                x[p] = min(max(x0[v, p], lower[p]), upper[p])
        else:
            for f in range(nf):
                x[5 * f] = angles[v, f, 0]
                x[5 * f + 1] = angles[v, f, 1]
            _grid_search(y, x, nf, bvals, bvecs, shell_start, qtab, tautab, lo, step, d,
                         b_iso, n_square, odi_grid, icvf_grid, gc2, gws, arg, gwz)
        _model(x, nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d,
               b_iso, n_square, True, c, c2, ws, d1, d2, arg, wz, T, s, J)
        cost = rician_cost(y, sg, s, r)
        lam = 1e-3
        it = 0
        improved = False
        rel = 0.0
        while it < max_iter:
            it += 1
            normal_equations(J, r, s, y, sg, jtj, g)
            hold_active_bounds(x, lower, upper, jtj, g)
            improved = False
            rel = 0.0
            for _try in range(8):
                if not damped_trial(x, jtj, g, lam, unit, lower, upper, A, dx, xn):
                    lam *= 4.0
                    continue
                _model(xn, nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo,
                       step, d, b_iso, n_square, False, c, c2, ws, d1, d2, arg, wz, T, s, J)
                cn = rician_cost(y, sg, s, rn)
                if cn < cost:
                    rel = (cost - cn) / max(cost, 1e-30)
                    x[:] = xn
                    cost = cn
                    lam = max(lam / 3.0, 1e-9)
                    improved = True
                    break
                lam *= 4.0
            if not improved or rel < tol:
                break
            _model(x, nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step,
                   d, b_iso, n_square, True, c, c2, ws, d1, d2, arg, wz, T, s, J)
            rician_cost(y, sg, s, r)
        X[v] = x
        costs[v] = cost
        converged[v] = (not improved) or rel < tol
    return X, costs, converged


@njit(parallel=True, cache=True)
def signals(X, nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d,
            b_iso, n_square, want_jac):
    """Signals (V, N) and Jacobians (V, P, N) for kernel-layout rows ``X`` (tests)."""
    V = X.shape[0]
    N = bvals.shape[0]
    P = 5 * nf + 1
    S = np.empty((V, N))
    JJ = np.zeros((V if want_jac else 0, P, N))
    for v in prange(V):
        c = np.empty(N)
        c2 = np.empty(N)
        ws = np.empty(N)
        d1 = np.empty(N)
        d2 = np.empty(N)
        arg = np.empty(N)
        wz = np.empty(N)
        T = np.empty(N)
        s = np.empty(N)
        J = np.empty((P, N))
        _model(X[v], nf, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step,
               d, b_iso, n_square, want_jac, c, c2, ws, d1, d2, arg, wz, T, s, J)
        S[v] = s
        if want_jac:
            JJ[v] = J
    return S, JJ
