"""Compiled ActiveAx kernels (numba): signal with analytic Jacobian, grid search and LM.

Used by :class:`~microlearn.fitting.compiled.activeax_fast.ActiveAxMixEngine` for the single-fibre
ActiveAx model (CylinderGPD + tortuous zeppelin + ball, fixed d∥ and d_iso). The Van
Gelderen coefficient C(diameter) of every distinct pulse timing (δ, Δ) is tabulated with
its slope on a fine diameter grid and read back by cubic Hermite interpolation, so a
voxel's signal and Jacobian cost two exponentials per measurement.

Signal of one measurement (b, G, g) with c = g·μ and d⊥ = d∥ (1 - icvf)::

    E = (1 - fiso) [icvf exp(-b d∥ c² + C G² (1 - c²))
                    + (1 - icvf) exp(-b (d⊥ + (d∥ - d⊥) c²))] + fiso exp(-b d_iso)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...compartments.cylinder import N_ROOTS, bessel_roots
from ...units import GAMMA
from .kernel_tools import damped_trial, hold_active_bounds, rician_cost

N_PARAMS = 6  # theta, phi, diameter, icvf, fiso, s0


def van_gelderen_slope(diameter, d_intra, delta, Delta, n_roots: int = N_ROOTS):
    """dC/d(diameter) of :func:`~microlearn.compartments.cylinder.van_gelderen_coefficient`.

    Parameters
    ----------
    diameter : ndarray, shape (D,)
        Cylinder diameters in m.
    d_intra : float
        Intra-cylinder diffusivity in m²/s.
    delta, Delta : ndarray, shape (s,)
        Pulse duration and separation in s.

    Returns
    -------
    ndarray, shape (D, s)
        Slope in (m/T)² per m.
    """
    diameter = np.asarray(diameter, dtype=float)[:, None, None]
    delta = np.asarray(delta, dtype=float)[:, None]
    Delta = np.asarray(Delta, dtype=float)[:, None]
    roots = bessel_roots(n_roots)
    radius = np.maximum(diameter / 2.0, 1e-12)
    a = d_intra * (roots / radius) ** 2  # (D, 1, M)
    e1, e2 = np.exp(-a * delta), np.exp(-a * Delta)
    e3, e4 = np.exp(-a * (Delta - delta)), np.exp(-a * (Delta + delta))
    num = 2 * a * delta - 2 + 2 * e1 + 2 * e2 - e3 - e4
    dnum = 2 * delta - 2 * delta * e1 - 2 * Delta * e2 + (Delta - delta) * e3 + (
        Delta + delta) * e4
    # term = d num(a) / (a³ (r² - 1)); da/d(diameter) = -2 a / diameter
    dterm = d_intra / (roots**2 - 1.0) * (dnum / a**3 - 3.0 * num / a**4)
    return -2.0 * GAMMA**2 * np.sum(dterm * (-2.0 * a / diameter), axis=-1)


@njit(cache=True)
def _hermite(ktab, dktab, lo, step, diameter, t):
    """C and dC/d(diameter) of timing ``t`` at ``diameter`` (cubic Hermite in the table)."""
    pos = (diameter - lo) / step
    i = int(pos)
    if i < 0:
        i = 0
    if i > ktab.shape[0] - 2:
        i = ktab.shape[0] - 2
    u = pos - i
    u2 = u * u
    u3 = u2 * u
    f0, f1 = ktab[i, t], ktab[i + 1, t]
    m0, m1 = dktab[i, t] * step, dktab[i + 1, t] * step
    val = ((2 * u3 - 3 * u2 + 1) * f0 + (u3 - 2 * u2 + u) * m0 + (3 * u2 - 2 * u3) * f1
           + (u3 - u2) * m1)
    der = ((6 * u2 - 6 * u) * f0 + (3 * u2 - 4 * u + 1) * m0 + (6 * u - 6 * u2) * f1
           + (3 * u2 - 2 * u) * m1) / step
    return val, der


@njit(cache=True)
def _signal_jac(x, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso, want_jac,
                kv, dkv, out_s, out_j):
    """Signal ``s0 · E`` (and its Jacobian) of one voxel for parameters ``x`` (6,)."""
    theta, phi, diam, icvf, fiso, s0 = x[0], x[1], x[2], x[3], x[4], x[5]
    st, ct, sp, cp = np.sin(theta), np.cos(theta), np.sin(phi), np.cos(phi)
    mx, my, mz = st * cp, st * sp, ct
    tx, ty, tz = ct * cp, ct * sp, -st
    px, py = -st * sp, st * cp
    for t in range(ktab.shape[1]):
        kv[t], dkv[t] = _hermite(ktab, dktab, lo, step, diam, t)
    k0 = s0 * (1 - fiso)
    for n in range(bvals.shape[0]):
        b = bvals[n]
        gx, gy, gz = bvecs[n, 0], bvecs[n, 1], bvecs[n, 2]
        c = gx * mx + gy * my + gz * mz
        c2 = c * c
        kg = kv[tidx[n]] * G2[n]
        cyl = np.exp(-b * d * c2 + kg * (1 - c2))
        zep = np.exp(-b * d * (1 - icvf + icvf * c2))
        T = icvf * cyl + (1 - icvf) * zep
        E = (1 - fiso) * T + fiso * b_iso[n]
        out_s[n] = s0 * E
        if want_jac:
            dT_dc = 2 * c * (icvf * cyl * (-b * d - kg) - (1 - icvf) * zep * b * d * icvf)
            out_j[n, 0] = k0 * dT_dc * (gx * tx + gy * ty + gz * tz)
            out_j[n, 1] = k0 * dT_dc * (gx * px + gy * py)
            out_j[n, 2] = k0 * icvf * cyl * dkv[tidx[n]] * G2[n] * (1 - c2)
            out_j[n, 3] = k0 * (cyl - zep + (1 - icvf) * zep * b * d * (1 - c2))
            out_j[n, 4] = s0 * (b_iso[n] - T)
            out_j[n, 5] = E


@njit(cache=True)
def signals(X, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso):
    """Signals (V, N) and Jacobians (V, N, 6) for parameter rows ``X`` (V, 6)."""
    V, N = X.shape[0], bvals.shape[0]
    S = np.empty((V, N))
    J = np.empty((V, N, N_PARAMS))
    kv = np.empty(ktab.shape[1])
    dkv = np.empty(ktab.shape[1])
    for v in range(V):
        _signal_jac(X[v], bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso, True,
                    kv, dkv, S[v], J[v])
    return S, J


@njit(cache=True)
def _grid_search(y, sg, c2, bvals, G2, tidx, d, b_iso, diam_grid, kgrid, icvf_grid, out):
    """Stage 1: best (diameter, icvf) on the grid with NNLS tissue/ball amplitudes.

    The Rician floor is removed from the data first (sqrt(max(y² - σ², 0))). Writes
    diameter, icvf, fiso, s0 into ``out[2:6]``.
    """
    N, K, A = y.shape[0], diam_grid.shape[0], icvf_grid.shape[0]
    yd = np.empty(N)
    for n in range(N):
        yd[n] = np.sqrt(max(y[n] * y[n] - sg * sg, 0.0)) if sg > 0 else y[n]
    yy = bb = by = 0.0
    for n in range(N):
        yy += yd[n] * yd[n]
        bb += b_iso[n] * b_iso[n]
        by += b_iso[n] * yd[n]
    cyl = np.empty((K, N))
    cc, cy, cb = np.zeros(K), np.zeros(K), np.zeros(K)
    for k in range(K):
        for n in range(N):
            e = np.exp(-bvals[n] * d * c2[n] + kgrid[k, tidx[n]] * G2[n] * (1 - c2[n]))
            cyl[k, n] = e
            cc[k] += e * e
            cy[k] += e * yd[n]
            cb[k] += e * b_iso[n]
    zep = np.empty((A, N))
    zz, zy, zb = np.zeros(A), np.zeros(A), np.zeros(A)
    for j in range(A):
        f = icvf_grid[j]
        for n in range(N):
            e = np.exp(-bvals[n] * d * (1 - f + f * c2[n]))
            zep[j, n] = e
            zz[j] += e * e
            zy[j] += e * yd[n]
            zb[j] += e * b_iso[n]
    best = np.inf
    for k in range(K):
        for j in range(A):
            cz = 0.0
            for n in range(N):
                cz += cyl[k, n] * zep[j, n]
            f = icvf_grid[j]
            tt = f * f * cc[k] + 2 * f * (1 - f) * cz + (1 - f) * (1 - f) * zz[j]
            ty = f * cy[k] + (1 - f) * zy[j]
            tb = f * cb[k] + (1 - f) * zb[j]
            det = tt * bb - tb * tb
            al = (bb * ty - tb * by) / det if det > 1e-12 * tt * bb else -1.0
            be = (tt * by - tb * ty) / det if det > 1e-12 * tt * bb else -1.0
            if al < 0 or be < 0:
                a1 = max(ty / tt, 0.0)
                b1 = max(by / bb, 0.0)
                if yy - 2 * a1 * ty + a1 * a1 * tt <= yy - 2 * b1 * by + b1 * b1 * bb:
                    al, be = a1, 0.0
                else:
                    al, be = 0.0, b1
            sse = yy - 2 * (al * ty + be * by) + al * al * tt + 2 * al * be * tb + be * be * bb
            if sse < best:
                best = sse
                tot = al + be
                out[2], out[3] = diam_grid[k], f
                out[4] = be / tot if tot > 0 else 0.0
                out[5] = tot


@njit(cache=True)
def _levenberg_marquardt(x, y, sg, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso,
                         lower, upper, scales, max_iter, tol):
    """Bounded LM on the Rician-floor model, in place on ``x``.

    Returns (cost, iterations, converged), converged as in the NODDI kernel's LM (a cost
    decrease below ``tol`` or a stationary point, not the iteration limit).

    Steps are taken in scaled units (``x / scales``) with Marquardt damping; a parameter
    pushed against its bound is held there (active set), so voxels whose diameter is not
    identifiable stop at the lower diameter bound instead of stalling. Iteration stops
    when the relative decrease of the cost drops below ``tol``.
    """
    N, P = bvals.shape[0], N_PARAMS
    s, r, rn = np.empty(N), np.empty(N), np.empty(N)
    J = np.empty((N, P))
    kv, dkv = np.empty(ktab.shape[1]), np.empty(ktab.shape[1])
    xn = np.empty(P)
    jtj = np.empty((P, P))
    A = np.empty((P, P))
    dx = np.empty(P)
    g = np.empty(P)
    _signal_jac(x, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso, True, kv, dkv,
                s, J)
    cost = rician_cost(y, sg, s, r)
    lam = 1e-3
    it = 0
    improved = False
    rel = 0.0
    while it < max_iter:
        it += 1
        for n in range(N):  # Rician chain rule, then scaled units
            m = r[n] + y[n]
            f = s[n] / m if sg > 0 and m > 0 else 1.0
            for p in range(P):
                J[n, p] *= f * scales[p]
        for p in range(P):
            g[p] = 0.0
            for q in range(P):
                jtj[p, q] = 0.0
        for n in range(N):
            for p in range(P):
                g[p] -= J[n, p] * r[n]
                for q in range(p, P):
                    jtj[p, q] += J[n, p] * J[n, q]
        for p in range(P):
            for q in range(p):
                jtj[p, q] = jtj[q, p]
        hold_active_bounds(x, lower, upper, jtj, g)  # a parameter pushed against its bound
        improved = False
        rel = 0.0
        for _try in range(8):
            if not damped_trial(x, jtj, g, lam, scales, lower, upper, A, dx, xn):
                lam *= 4.0
                continue
            _signal_jac(xn, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso, False,
                        kv, dkv, s, J)
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
        _signal_jac(x, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso, True, kv,
                    dkv, s, J)
        rician_cost(y, sg, s, r)
    return cost, it, (not improved) or rel < tol


@njit(parallel=True, cache=True)
def fit_voxels(Y, sigma, theta0, phi0, bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d,
               b_iso, diam_grid, kgrid, icvf_grid, lower, upper, scales, max_iter, tol):
    """Grid search + Levenberg–Marquardt for every voxel (rows of ``Y``), in parallel.

    Search and refinement run from the given orientation, then again from the refined
    one; the pass with the lower cost is kept. ``sigma`` (V,) is the noise level of the
    normalised signals (0: no Rician floor).

    Returns
    -------
    X : ndarray, shape (V, 6)
        theta, phi, diameter (m), icvf, fiso, s0 (relative to the normalisation).
    cost : ndarray, shape (V,)
    converged : ndarray of bool, shape (V,)
        The kept pass's LM converged.
    """
    V, N = Y.shape
    X = np.empty((V, N_PARAMS))
    costs = np.empty(V)
    converged = np.zeros(V, np.bool_)
    for v in prange(V):
        x = np.empty(N_PARAMS)
        x2 = np.empty(N_PARAMS)
        c2 = np.empty(N)
        x[0], x[1] = theta0[v], phi0[v]
        best = np.inf
        for _pass in range(2):  # second pass: search again at the refined orientation
            x2[0], x2[1] = x[0], x[1]
            st, ct = np.sin(x2[0]), np.cos(x2[0])
            mx, my, mz = st * np.cos(x2[1]), st * np.sin(x2[1]), ct
            for n in range(N):
                cn = bvecs[n, 0] * mx + bvecs[n, 1] * my + bvecs[n, 2] * mz
                c2[n] = cn * cn
            _grid_search(Y[v], sigma[v], c2, bvals, G2, tidx, d, b_iso, diam_grid, kgrid,
                         icvf_grid, x2)
            cost, _it, conv = _levenberg_marquardt(
                x2, Y[v], sigma[v], bvals, G2, bvecs, tidx, ktab, dktab, lo, step, d, b_iso,
                lower, upper, scales, max_iter, tol)
            if cost < best:
                best = cost
                x[:] = x2
                converged[v] = conv
        costs[v] = best
        X[v] = x
    return X, costs, converged
