"""Compiled NODDI kernels (numba): signal with analytic Jacobian, grid search and LM.

Used by :class:`~microlearn.fitting.compiled.noddi_fast.NoddiMixEngine` for the single-fibre NODDI
model with fixed d∥ and d_iso. The Watson-stick series is tabulated on a fine ODI grid per
distinct b-value (power basis in c² = (g·μ)²), so a voxel's signal and its derivatives are
a table lookup, a Horner evaluation and one exponential per measurement.

Layout for speed: the measurements are sorted by shell (``shell_start[u]`` to
``shell_start[u + 1]``), so every inner loop runs over a contiguous range of measurements
with shell-constant coefficients, and the Jacobian is stored parameter-major ``(P, N)``;
LLVM then vectorises the loops over measurements (SIMD). The exponential of the zeppelin,
whose argument is bounded (0 ≤ b·A ≤ b_max·d∥), is :func:`exp_neg`: a polynomial after
scaling by 2^-m and m squarings, which vectorises where a libm call does not.
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
    solve_spd,
)

N_PARAMS = 6  # theta, phi, odi, icvf, fiso, s0
#: A first pass ending at FISO >= this is not redone from its orientation (a voxel without
#: tissue has none: the second pass cost as much as the first for nothing).
REDO_FISO_MAX = 0.95
#: Taylor degree of :func:`exp_neg` on [0, EXP_REDUCED_MAX].
EXP_DEGREE = 12
#: Largest reduced argument of :func:`exp_neg` (relative error < 1e-14 there).
EXP_REDUCED_MAX = 0.35


def exp_squarings(x_max: float) -> int:
    """Number of squarings m so that ``x_max / 2**m <= EXP_REDUCED_MAX``."""
    return max(0, int(np.ceil(np.log2(max(x_max, 1e-300) / EXP_REDUCED_MAX))))


@njit(cache=True, fastmath=FAST)
def exp_neg(x, out, n_square):
    """``out[n] = exp(-x[n])`` for 0 ≤ x[n] ≤ EXP_REDUCED_MAX · 2**n_square (vectorisable).

    exp(-x) = (exp(-x / 2^m))^(2^m) with a degree-12 Taylor polynomial for the reduced
    argument; the relative error stays below ~1e-13 on the stated range.
    """
    scale = 0.5 ** n_square
    N = x.shape[0]
    for n in range(N):
        t = -x[n] * scale
        p = 1.0 / 479001600.0  # 1/12!
        p = p * t + 1.0 / 39916800.0
        p = p * t + 1.0 / 3628800.0
        p = p * t + 1.0 / 362880.0
        p = p * t + 1.0 / 40320.0
        p = p * t + 1.0 / 5040.0
        p = p * t + 1.0 / 720.0
        p = p * t + 1.0 / 120.0
        p = p * t + 1.0 / 24.0
        p = p * t + 1.0 / 6.0
        p = p * t + 0.5
        p = p * t + 1.0
        out[n] = p * t + 1.0
    for _ in range(n_square):
        for n in range(N):
            out[n] = out[n] * out[n]


@njit(cache=True)
def _position(lo, step, g, odi):
    """Table row ``i`` and weight ``w`` of ``odi`` on a table of ``g`` rows."""
    pos = (odi - lo) / step
    i = int(pos)
    if i < 0:
        i = 0
    if i > g - 2:
        i = g - 2
    return i, pos - i


@njit(cache=True, fastmath=FAST)
def _series(qtab, i, w, shell_start, c2, out):
    """Watson-stick signal by Horner in c² for every measurement, at table position (i, w)."""
    K = qtab.shape[2]
    for u in range(shell_start.shape[0] - 1):
        # views indexed from 0: numba then drops the negative-index checks and vectorises
        o = out[shell_start[u]:shell_start[u + 1]]
        z = c2[shell_start[u]:shell_start[u + 1]]
        top = (1 - w) * qtab[i, u, K - 1] + w * qtab[i + 1, u, K - 1]
        for n in range(o.shape[0]):
            o[n] = top
        for k in range(K - 2, -1, -1):
            q = (1 - w) * qtab[i, u, k] + w * qtab[i + 1, u, k]
            for n in range(o.shape[0]):
                o[n] = o[n] * z[n] + q


@njit(cache=True, fastmath=FAST)
def _series_derivatives(qtab, dqtab, i, w, shell_start, c2, ws, dws_c2, dws_odi):
    """Series value, its c² derivative and its ODI derivative (three Horner chains)."""
    K = qtab.shape[2]
    for u in range(shell_start.shape[0] - 1):
        a, b = shell_start[u], shell_start[u + 1]
        o, d1, d2, z = ws[a:b], dws_c2[a:b], dws_odi[a:b], c2[a:b]
        for n in range(o.shape[0]):
            o[n] = 0.0
            d1[n] = 0.0
            d2[n] = 0.0
        for k in range(K - 1, -1, -1):
            q = (1 - w) * qtab[i, u, k] + w * qtab[i + 1, u, k]
            dq = (1 - w) * dqtab[i, u, k] + w * dqtab[i + 1, u, k]
            for n in range(o.shape[0]):
                d1[n] = d1[n] * z[n] + o[n]
                o[n] = o[n] * z[n] + q
                d2[n] = d2[n] * z[n] + dq


@njit(cache=True, fastmath=FAST)
def _fibre(theta, phi, odi, icvf, bvals, bvecs, shell_start, qtab, dqtab, tautab, lo, step,
           d, n_square, want_jac, c, c2, ws, dws_c2, dws_odi, arg, wz, T):
    """One fibre's signal ``T`` (N,) at unit amplitude: icvf·WS + (1 − icvf)·WZ.

    Fills ``c``, ``c2``, ``ws`` (and the series derivatives if ``want_jac``) and ``wz``
    for :func:`_fibre_jacobian`; ``T`` may be ``arg``. Returns (i, w, a0, a1): the table
    position and the zeppelin's h = a0 + a1 c².
    """
    st, ct = np.sin(theta), np.cos(theta)
    mx, my, mz = st * np.cos(phi), st * np.sin(phi), ct
    N = bvals.shape[0]
    for n in range(N):
        c[n] = bvecs[0, n] * mx + bvecs[1, n] * my + bvecs[2, n] * mz
        c2[n] = c[n] * c[n]
    i, w = _position(lo, step, qtab.shape[0], odi)
    tau = (1 - w) * tautab[i] + w * tautab[i + 1]
    if want_jac:
        _series_derivatives(qtab, dqtab, i, w, shell_start, c2, ws, dws_c2, dws_odi)
    else:
        _series(qtab, i, w, shell_start, c2, ws)
    a0 = 0.5 * (1 - tau)
    a1 = 0.5 * (3 * tau - 1)
    for n in range(N):
        arg[n] = bvals[n] * d * (1 - icvf + icvf * (a0 + a1 * c2[n]))
    exp_neg(arg, wz, n_square)
    for n in range(N):
        T[n] = icvf * ws[n] + (1 - icvf) * wz[n]
    return i, w, a0, a1


@njit(cache=True, fastmath=FAST)
def _fibre_jacobian(theta, phi, icvf, k0, i, w, a0, a1, bvals, bvecs, dtautab, d, c, c2, ws,
                    dws_c2, dws_odi, wz, J, row):
    """Rows ``row``..``row + 3`` of J: k0 · dT/d(θ, φ, odi, icvf) after :func:`_fibre`."""
    dtau = (1 - w) * dtautab[i] + w * dtautab[i + 1]
    st, ct, sp, cp = np.sin(theta), np.cos(theta), np.sin(phi), np.cos(phi)
    tx, ty, tz = ct * cp, ct * sp, -st
    px, py = -st * sp, st * cp
    for n in range(bvals.shape[0]):
        b = bvals[n]
        gx, gy, gz = bvecs[0, n], bvecs[1, n], bvecs[2, n]
        bwz = b * wz[n] * d * icvf
        dT_dc = 2 * c[n] * (icvf * dws_c2[n] - (1 - icvf) * bwz * a1)
        J[row, n] = k0 * dT_dc * (gx * tx + gy * ty + gz * tz)
        J[row + 1, n] = k0 * dT_dc * (gx * px + gy * py)
        J[row + 2, n] = k0 * (icvf * dws_odi[n]
                              - (1 - icvf) * bwz * (-0.5 + 1.5 * c2[n]) * dtau)
        h = a0 + a1 * c2[n]
        J[row + 3, n] = k0 * (ws[n] - wz[n] - (1 - icvf) * b * wz[n] * d * (h - 1))


@njit(cache=True, fastmath=FAST)
def _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
           n_square, want_jac, c, c2, ws, dws_c2, dws_odi, arg, wz, s, J):
    """Signal ``s`` (N,) and, if ``want_jac``, Jacobian ``J`` (6, N) of one voxel."""
    theta, phi, odi, icvf, fiso, s0 = x[0], x[1], x[2], x[3], x[4], x[5]
    T = arg  # the fibre signal replaces the exponent once it is used
    i, w, a0, a1 = _fibre(theta, phi, odi, icvf, bvals, bvecs, shell_start, qtab, dqtab,
                          tautab, lo, step, d, n_square, want_jac, c, c2, ws, dws_c2,
                          dws_odi, arg, wz, T)
    one_f = 1 - fiso
    N = bvals.shape[0]
    for n in range(N):
        s[n] = s0 * (one_f * T[n] + fiso * b_iso[n])
    if not want_jac:
        return
    _fibre_jacobian(theta, phi, icvf, s0 * one_f, i, w, a0, a1, bvals, bvecs, dtautab, d, c,
                    c2, ws, dws_c2, dws_odi, wz, J, 0)
    for n in range(N):
        J[4, n] = s0 * (b_iso[n] - T[n])
        J[5, n] = one_f * T[n] + fiso * b_iso[n]


@njit(cache=True, fastmath=FAST)
def _grid_search(y, c2, bvals, shell_start, qtab, tautab, lo, step, d, b_iso, n_square,
                 odi_grid, icvf_grid, ws, arg, wz, out):
    """Best (odi, icvf) of the grid with NNLS tissue/ball amplitudes; writes out[2:6].

    ``icvf_grid`` must be uniformly spaced.
    """
    N = y.shape[0]
    delta = icvf_grid[1] - icvf_grid[0] if icvf_grid.shape[0] > 1 else 0.0
    step_up = np.empty(N)
    yy = 0.0
    bb = 0.0
    by = 0.0
    for n in range(N):
        yy += y[n] * y[n]
        bb += b_iso[n] * b_iso[n]
        by += b_iso[n] * y[n]
    best = np.inf
    for a in range(odi_grid.shape[0]):
        i, w = _position(lo, step, qtab.shape[0], odi_grid[a])
        _series(qtab, i, w, shell_start, c2, ws)
        tau = (1 - w) * tautab[i] + w * tautab[i + 1]
        a0 = 0.5 * (1 - tau)
        a1 = 0.5 * (3 * tau - 1)
        # zeppelin exp(-b d∥ (1 - f (1 - h))) on a uniform f grid: the first value, then
        # one product per step with exp(+b d∥ Δf (1 - h)) (two exponentials per ODI)
        for n in range(N):
            arg[n] = bvals[n] * d * (1 - icvf_grid[0] * (1 - a0 - a1 * c2[n]))
        exp_neg(arg, wz, n_square)
        for n in range(N):
            arg[n] = bvals[n] * d * delta * (1 - a0 - a1 * c2[n])
        exp_neg(arg, step_up, n_square)
        for n in range(N):
            step_up[n] = 1.0 / step_up[n]
        for cc in range(icvf_grid.shape[0]):
            icvf = icvf_grid[cc]
            if cc > 0:
                for n in range(N):
                    wz[n] = wz[n] * step_up[n]
            tt = 0.0
            tb = 0.0
            ty = 0.0
            for n in range(N):
                t = icvf * ws[n] + (1 - icvf) * wz[n]
                tt += t * t
                tb += t * b_iso[n]
                ty += t * y[n]
            det = tt * bb - tb * tb
            al = (bb * ty - tb * by) / det if det > 1e-12 else -1.0
            be = (tt * by - tb * ty) / det if det > 1e-12 else -1.0
            if al < 0 or be < 0:
                a_only = max(ty / tt, 0.0)
                b_only = max(by / bb, 0.0)
                if yy - 2 * a_only * ty + a_only * a_only * tt <= (yy - 2 * b_only * by
                                                                   + b_only * b_only * bb):
                    al, be = a_only, 0.0
                else:
                    al, be = 0.0, b_only
            sse = yy - 2 * (al * ty + be * by) + al * al * tt + 2 * al * be * tb + be * be * bb
            if sse < best:
                best = sse
                tot = al + be
                out[2], out[3] = odi_grid[a], icvf
                out[4] = be / tot if tot > 0 else 0.0
                out[5] = tot


@njit(cache=True)
def _levenberg_marquardt(x, y, sg, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab,
                         lo, step, d, b_iso, n_square, lower, upper, max_iter, tol, c, c2, ws,
                         dws_c2, dws_odi, arg, wz, s, r, rn, J):
    """Bounded LM on the Rician-floor model from ``x`` (in place).

    Returns (cost, iterations, converged): converged when an iteration lowered the cost by
    less than ``tol`` (relative) or no damped step lowered it at all (a stationary point),
    not when ``max_iter`` iterations ended while the cost still fell.
    """
    P = x.shape[0]
    _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
           n_square, True, c, c2, ws, dws_c2, dws_odi, arg, wz, s, J)
    cost = rician_cost(y, sg, s, r)
    lam = 1e-3
    xn = np.empty(P)
    jtj = np.empty((P, P))
    A = np.empty((P, P))
    g = np.empty(P)
    dx = np.empty(P)
    unit = np.ones(P)
    it = 0
    improved = False
    rel = 0.0
    while it < max_iter:
        it += 1
        normal_equations(J, r, s, y, sg, jtj, g)
        hold_active_bounds(x, lower, upper, jtj, g)
        improved = False
        rel = 0.0
        for _try in range(6):
            if not damped_trial(x, jtj, g, lam, unit, lower, upper, A, dx, xn):
                lam *= 4.0
                continue
            _model(xn, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d,
                   b_iso, n_square, False, c, c2, ws, dws_c2, dws_odi, arg, wz, s, J)
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
        _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
               n_square, True, c, c2, ws, dws_c2, dws_odi, arg, wz, s, J)
        rician_cost(y, sg, s, r)
    return cost, it, (not improved) or rel < tol


@njit(cache=True)
def _unit(theta, phi):
    st = np.sin(theta)
    return st * np.cos(phi), st * np.sin(phi), np.cos(theta)


@njit(cache=True, fastmath=FAST)
def _grid_start(y, theta, phi, x, bvals, bvecs, shell_start, qtab, tautab, lo, step, d,
                b_iso, n_square, odi_grid, icvf_grid, c2, ws, arg, wz):
    """Stage 1 at orientation (θ, φ): fills ``x`` (direction and the best grid point)."""
    x[0], x[1] = theta, phi
    mx, my, mz = _unit(theta, phi)
    for n in range(y.shape[0]):
        cn = bvecs[0, n] * mx + bvecs[1, n] * my + bvecs[2, n] * mz
        c2[n] = cn * cn
    _grid_search(y, c2, bvals, shell_start, qtab, tautab, lo, step, d, b_iso, n_square,
                 odi_grid, icvf_grid, ws, arg, wz, x)


@njit(parallel=True, cache=True)
def fit_voxels(Y, sigma, dirs_theta, dirs_phi, bvals, bvecs, shell_start, qtab, dqtab,
               tautab, dtautab, lo, step, d, b_iso, n_square, odi_grid, icvf_grid, lower,
               upper, max_iter, tol, redo_deg=8.0):
    """Grid search + Levenberg–Marquardt for every voxel (rows of ``Y``), in parallel.

    When the refinement turns the orientation by more than ``redo_deg`` from the start
    (a poor DTI start, e.g. in dispersed voxels), the grid search and refinement run once
    more from the refined orientation and the better of the two fits is kept: the first
    grid then often sat in the wrong ODI basin. A first pass ending at FISO >=
    :data:`REDO_FISO_MAX` (no tissue, no orientation) is kept as it is: on CSF voxels of the
    HCP-size phantom the second pass doubled their cost (12 % of the voxels, a quarter of
    the time) and its lower costs came from spurious tissue (FISO error vs the truth 0.019
    with it, 0.017 without).

    Parameters
    ----------
    Y : ndarray, shape (V, N)
        Normalised signals, measurements sorted by shell (see ``shell_start``).
    sigma : ndarray, shape (V,)
        Noise level per voxel (same units as ``Y``); 0 fits the Gaussian model.
    bvals : ndarray, shape (N,)
        b-values in s/m², sorted like ``Y``'s columns.
    bvecs : ndarray, shape (3, N)
        Unit gradient directions (transposed: one contiguous row per axis).
    shell_start : ndarray of int, shape (U + 1,)
        Measurements of shell u are ``shell_start[u]:shell_start[u + 1]``.
    n_square : int
        Squarings of :func:`exp_neg` (see :func:`exp_squarings` of b_max·d∥).

    Returns
    -------
    X : ndarray, shape (V, 6)
        theta, phi, odi, icvf, fiso, s0 (s0 relative to the normalisation).
    cost : ndarray, shape (V,)
    converged : ndarray of bool, shape (V,)
        The kept pass's LM converged (see :func:`_levenberg_marquardt`).
    """
    V, N = Y.shape
    X = np.empty((V, N_PARAMS))
    costs = np.empty(V)
    converged = np.zeros(V, np.bool_)
    cos_redo = np.cos(np.deg2rad(redo_deg))
    for v in prange(V):
        y = Y[v]
        sg = sigma[v]
        x = np.empty(N_PARAMS)
        c = np.empty(N)
        c2 = np.empty(N)
        ws = np.empty(N)
        dws_c2 = np.empty(N)
        dws_odi = np.empty(N)
        arg = np.empty(N)
        wz = np.empty(N)
        s = np.empty(N)
        r = np.empty(N)
        rn = np.empty(N)
        J = np.empty((N_PARAMS, N))
        theta, phi = dirs_theta[v], dirs_phi[v]
        best = np.inf
        for _pass in range(2):
            # ---- stage 1: grid over (odi, icvf) at the start direction
            _grid_start(y, theta, phi, x, bvals, bvecs, shell_start, qtab, tautab, lo, step,
                        d, b_iso, n_square, odi_grid, icvf_grid, c2, ws, arg, wz)
            mx, my, mz = _unit(theta, phi)
            # ---- stage 2: Levenberg–Marquardt with the analytic Jacobian
            cost, _it, conv = _levenberg_marquardt(
                x, y, sg, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step,
                d, b_iso, n_square, lower, upper, max_iter, tol, c, c2, ws, dws_c2, dws_odi,
                arg, wz, s, r, rn, J)
            if cost < best:
                best = cost
                X[v] = x
                converged[v] = conv
            if x[4] >= REDO_FISO_MAX:
                break  # free water: no orientation to look for again
            nx, ny, nz = _unit(x[0], x[1])
            if abs(mx * nx + my * ny + mz * nz) >= cos_redo:
                break  # the start direction held: one pass
            theta, phi = x[0], x[1]
        costs[v] = best
    return X, costs, converged


@njit(parallel=True, cache=True)
def signals(X, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
            n_square, want_jac):
    """Signals (V, N) and Jacobians (V, 6, N) of the kernel for parameter rows ``X``.

    For tests and diagnostics: the exact functions the fitter evaluates.
    """
    V = X.shape[0]
    N = bvals.shape[0]
    S = np.empty((V, N))
    JJ = np.zeros((V if want_jac else 0, N_PARAMS, N))
    for v in prange(V):
        c = np.empty(N)
        c2 = np.empty(N)
        ws = np.empty(N)
        d1 = np.empty(N)
        d2 = np.empty(N)
        arg = np.empty(N)
        wz = np.empty(N)
        s = np.empty(N)
        J = np.empty((N_PARAMS, N))
        _model(X[v], bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d,
               b_iso, n_square, want_jac, c, c2, ws, d1, d2, arg, wz, s, J)
        S[v] = s
        if want_jac:
            JJ[v] = J
    return S, JJ


@njit(cache=True)
def _barrier(x, lower, upper, bounded, mu):
    """−μ Σ [log((x−l)/w) + log((u−x)/w)] over the ``bounded`` entries (inf outside)."""
    total = 0.0
    for p in range(x.shape[0]):
        if bounded[p]:
            w = upper[p] - lower[p]
            a = (x[p] - lower[p]) / w
            b = (upper[p] - x[p]) / w
            if a <= 0 or b <= 0:
                return np.inf
            total -= mu * (np.log(a) + np.log(b))
    return total


@njit(parallel=True, cache=True)
def fit_voxels_barrier(Y, sigma, dirs_theta, dirs_phi, bvals, bvecs, shell_start, qtab,
                       dqtab, tautab, dtautab, lo, step, d, b_iso, n_square, odi_grid,
                       icvf_grid, lower, upper, bounded, mu_levels, inner, tol):
    """Grid search + log-barrier interior point (Gauss–Newton) for every voxel, in parallel.

    Minimises ½ Σ r² − μ Σ_j [log(x_j − l_j) + log(u_j − x_j)] over the ``bounded``
    entries for each μ in ``mu_levels`` (relative to the start's cost), with the Rician-
    floor residual r, Gauss–Newton Hessian plus the barrier's, a fraction-to-boundary
    rule (τ = 0.995) and backtracking on the barrier merit; iterates stay strictly
    inside the bounds. Arguments as :func:`fit_voxels`.

    Returns
    -------
    X : ndarray, shape (V, 6)
    cost : ndarray, shape (V,)
        Σ r² at the solution (without the barrier).
    converged : ndarray of bool, shape (V,)
        The last μ level ended with a step below ``tol``, a relative merit decrease below
        1e-6, or no step that lowers the merit (a stationary point), not at its ``inner``
        step limit or on a singular system.
    """
    V, N = Y.shape
    X = np.empty((V, N_PARAMS))
    costs = np.empty(V)
    converged = np.zeros(V, np.bool_)
    for v in prange(V):
        y = Y[v]
        sg = sigma[v]
        x = np.empty(N_PARAMS)
        xn = np.empty(N_PARAMS)
        c = np.empty(N)
        c2 = np.empty(N)
        ws = np.empty(N)
        dws_c2 = np.empty(N)
        dws_odi = np.empty(N)
        arg = np.empty(N)
        wz = np.empty(N)
        s = np.empty(N)
        r = np.empty(N)
        rn = np.empty(N)
        J = np.empty((N_PARAMS, N))
        jtj = np.empty((N_PARAMS, N_PARAMS))
        H = np.empty((N_PARAMS, N_PARAMS))
        g = np.empty(N_PARAMS)
        rhs = np.empty(N_PARAMS)
        dx = np.empty(N_PARAMS)
        _grid_start(y, dirs_theta[v], dirs_phi[v], x, bvals, bvecs, shell_start, qtab, tautab,
                    lo, step, d, b_iso, n_square, odi_grid, icvf_grid, c2, ws, arg, wz)
        for p in range(N_PARAMS):  # strictly inside the bounds
            if bounded[p]:
                inset = 1e-3 * (upper[p] - lower[p])
                x[p] = min(max(x[p], lower[p] + inset), upper[p] - inset)
        _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
               n_square, True, c, c2, ws, dws_c2, dws_odi, arg, wz, s, J)
        cost = rician_cost(y, sg, s, r)
        scale = max(cost, 1e-12)
        settled = False
        for level in range(mu_levels.shape[0]):
            mu = mu_levels[level] * scale
            merit = 0.5 * cost + _barrier(x, lower, upper, bounded, mu)
            settled = False
            for _ in range(inner):
                normal_equations(J, r, s, y, sg, jtj, g)  # g = −Jᵀr
                for p in range(N_PARAMS):
                    for q in range(N_PARAMS):
                        H[p, q] = jtj[p, q]
                    H[p, p] += 1e-10 * (jtj[p, p] + 1e-12)
                    rhs[p] = g[p]
                    if bounded[p]:
                        dl = x[p] - lower[p]
                        du = upper[p] - x[p]
                        H[p, p] += mu * (1 / (dl * dl) + 1 / (du * du))
                        rhs[p] += mu * (1 / dl - 1 / du)
                if not solve_spd(H, rhs, dx):
                    break
                alpha = 1.0
                for p in range(N_PARAMS):  # fraction to the boundary
                    if bounded[p]:
                        if dx[p] < 0:
                            alpha = min(alpha, -0.995 * (x[p] - lower[p]) / dx[p])
                        elif dx[p] > 0:
                            alpha = min(alpha, 0.995 * (upper[p] - x[p]) / dx[p])
                accepted = False
                for _bt in range(8):
                    for p in range(N_PARAMS):
                        xn[p] = x[p] + alpha * dx[p]
                    _model(xn, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo,
                           step, d, b_iso, n_square, False, c, c2, ws, dws_c2, dws_odi, arg,
                           wz, s, J)
                    cn = rician_cost(y, sg, s, rn)
                    mn = 0.5 * cn + _barrier(xn, lower, upper, bounded, mu)
                    if mn <= merit:
                        accepted = True
                        break
                    alpha *= 0.5
                if not accepted:
                    settled = True
                    _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo,
                           step, d, b_iso, n_square, True, c, c2, ws, dws_c2, dws_odi, arg,
                           wz, s, J)
                    rician_cost(y, sg, s, r)
                    break
                small = merit - mn <= 1e-6 * abs(merit)  # relative merit change, or
                tiny = True  # a step below tol
                for p in range(N_PARAMS):
                    if abs(alpha * dx[p]) > tol:
                        tiny = False
                    x[p] = xn[p]
                small = small or tiny
                cost = cn
                merit = mn
                _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step,
                       d, b_iso, n_square, True, c, c2, ws, dws_c2, dws_odi, arg, wz, s, J)
                rician_cost(y, sg, s, r)
                if small:
                    settled = True
                    break
        X[v] = x
        costs[v] = cost
        converged[v] = settled
    return X, costs, converged
