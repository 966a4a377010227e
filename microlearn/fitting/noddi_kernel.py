"""Compiled NODDI kernels (numba): signal with analytic Jacobian, grid search and LM.

Used by :class:`~microlearn.fitting.noddi_fast.NoddiMixEngine` for the single-fibre NODDI
model with fixed d∥ and d_iso. The Watson-stick series is tabulated on a fine ODI grid per
distinct b-value (power basis in c² = (g·μ)²), so a voxel's signal and its derivatives are
a table lookup, a Horner evaluation and one exponential per measurement.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

N_PARAMS = 6  # theta, phi, odi, icvf, fiso, s0


@njit(cache=True, fastmath=False)
def _lookup(table, lo, step, odi, u):
    """Interpolated row ``table[:, u, :]`` at ``odi`` and its slope."""
    g = table.shape[0]
    pos = (odi - lo) / step
    i = int(pos)
    if i < 0:
        i = 0
    if i > g - 2:
        i = g - 2
    w = pos - i
    return i, w


@njit(cache=True)
def _coefficients(qtab, dqtab, i, w, qv, dqv):
    """Series coefficients (and ODI slopes) per distinct b at table position (i, w)."""
    for u in range(qtab.shape[1]):
        for k in range(qtab.shape[2]):
            qv[u, k] = (1 - w) * qtab[i, u, k] + w * qtab[i + 1, u, k]
            dqv[u, k] = (1 - w) * dqtab[i, u, k] + w * dqtab[i + 1, u, k]


@njit(cache=True)
def _signal_jac(x, bvals, bvecs, uidx, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
                want_jac, out_s, out_j):
    """Normalised signal (and Jacobian) of one voxel for parameters ``x`` (6,)."""
    theta, phi, odi, icvf, fiso, s0 = x[0], x[1], x[2], x[3], x[4], x[5]
    st, ct, sp, cp = np.sin(theta), np.cos(theta), np.sin(phi), np.cos(phi)
    mx, my, mz = st * cp, st * sp, ct
    tx, ty, tz = ct * cp, ct * sp, -st
    px, py = -st * sp, st * cp
    i, w = _lookup(qtab, lo, step, odi, 0)
    tau = (1 - w) * tautab[i] + w * tautab[i + 1]
    dtau = (1 - w) * dtautab[i] + w * dtautab[i + 1]
    K = qtab.shape[2]
    qv = np.empty((qtab.shape[1], K))
    dqv = np.empty((qtab.shape[1], K))
    _coefficients(qtab, dqtab, i, w, qv, dqv)
    for n in range(bvals.shape[0]):
        b = bvals[n]
        gx, gy, gz = bvecs[n, 0], bvecs[n, 1], bvecs[n, 2]
        c = gx * mx + gy * my + gz * mz
        c2 = c * c
        u = uidx[n]
        # Horner for WS, dWS/dc2 and dWS/dodi
        ws = 0.0
        dws_c2 = 0.0
        dws_odi = 0.0
        for k in range(K - 1, -1, -1):
            dws_c2 = dws_c2 * c2 + ws
            ws = ws * c2 + qv[u, k]
            dws_odi = dws_odi * c2 + dqv[u, k]
        h = 0.5 * (1 - tau) + 0.5 * (3 * tau - 1) * c2
        A = d * (1 - icvf) + d * icvf * h
        wz = np.exp(-b * A)
        biso = b_iso[n]
        T = icvf * ws + (1 - icvf) * wz
        E = (1 - fiso) * T + fiso * biso
        out_s[n] = s0 * E
        if want_jac:
            dwz_c2 = -b * wz * d * icvf * 0.5 * (3 * tau - 1)
            dT_dc = 2 * c * (icvf * dws_c2 + (1 - icvf) * dwz_c2)
            dc_dt = gx * tx + gy * ty + gz * tz
            dc_dp = gx * px + gy * py
            k0 = s0 * (1 - fiso)
            out_j[n, 0] = k0 * dT_dc * dc_dt
            out_j[n, 1] = k0 * dT_dc * dc_dp
            dwz_tau = -b * wz * d * icvf * (-0.5 + 1.5 * c2)
            out_j[n, 2] = k0 * (icvf * dws_odi + (1 - icvf) * dwz_tau * dtau)
            dwz_icvf = -b * wz * d * (h - 1)
            out_j[n, 3] = k0 * (ws - wz + (1 - icvf) * dwz_icvf)
            out_j[n, 4] = s0 * (biso - T)
            out_j[n, 5] = E


@njit(cache=True)
def _cost(y, sigma, s, r):
    total = 0.0
    for n in range(y.shape[0]):
        m = np.sqrt(s[n] * s[n] + sigma * sigma) if sigma > 0 else s[n]
        r[n] = m - y[n]
        total += r[n] * r[n]
    return total


@njit(cache=True)
def _clip(x, lower, upper):
    for p in range(x.shape[0]):
        if x[p] < lower[p]:
            x[p] = lower[p]
        elif x[p] > upper[p]:
            x[p] = upper[p]


@njit(parallel=True, cache=True)
def fit_voxels(Y, sigma, dirs_theta, dirs_phi, bvals, bvecs, uidx, qtab, dqtab, tautab,
               dtautab, lo, step, d, b_iso, odi_grid, icvf_grid, lower, upper, max_iter, tol):
    """Grid search + Levenberg–Marquardt for every voxel (rows of ``Y``), in parallel.

    Returns
    -------
    X : ndarray, shape (V, 6)
        theta, phi, odi, icvf, fiso, s0 (s0 relative to the normalisation).
    cost : ndarray, shape (V,)
    iters : ndarray of int, shape (V,)
    """
    V, N = Y.shape
    X = np.empty((V, N_PARAMS))
    costs = np.empty(V)
    iters = np.zeros(V, np.int64)
    for v in prange(V):
        y = Y[v]
        sg = sigma[v]
        x = np.empty(N_PARAMS)
        s = np.empty(N)
        r = np.empty(N)
        J = np.empty((N, N_PARAMS))
        # ---- stage 1: grid over (odi, icvf), NNLS for tissue vs ball amplitudes
        x[0], x[1] = dirs_theta[v], dirs_phi[v]
        best = np.inf
        yy = 0.0
        bb = 0.0
        by = 0.0
        for n in range(N):
            yy += y[n] * y[n]
            bb += b_iso[n] * b_iso[n]
            by += b_iso[n] * y[n]
        ws = np.empty(N)
        c2 = np.empty(N)
        st, ct = np.sin(x[0]), np.cos(x[0])
        mx, my, mz = st * np.cos(x[1]), st * np.sin(x[1]), ct
        for n in range(N):
            cn = bvecs[n, 0] * mx + bvecs[n, 1] * my + bvecs[n, 2] * mz
            c2[n] = cn * cn
        qv = np.empty((qtab.shape[1], qtab.shape[2]))
        dqv = np.empty((qtab.shape[1], qtab.shape[2]))
        for a in range(odi_grid.shape[0]):
            i, w = _lookup(qtab, lo, step, odi_grid[a], 0)
            _coefficients(qtab, dqtab, i, w, qv, dqv)
            tau = (1 - w) * tautab[i] + w * tautab[i + 1]
            for n in range(N):
                acc = 0.0
                for k in range(qtab.shape[2] - 1, -1, -1):
                    acc = acc * c2[n] + qv[uidx[n], k]
                ws[n] = acc
            for c in range(icvf_grid.shape[0]):
                icvf = icvf_grid[c]
                tt = 0.0
                tb = 0.0
                ty = 0.0
                for n in range(N):
                    h = 0.5 * (1 - tau) + 0.5 * (3 * tau - 1) * c2[n]
                    t = icvf * ws[n] + (1 - icvf) * np.exp(-bvals[n] * d * (1 - icvf + icvf * h))
                    tt += t * t
                    tb += t * b_iso[n]
                    ty += t * y[n]
                det = tt * bb - tb * tb
                al = (bb * ty - tb * by) / det if det > 1e-12 else -1.0
                be = (tt * by - tb * ty) / det if det > 1e-12 else -1.0
                if al < 0 or be < 0:
                    a1 = max(ty / tt, 0.0)
                    b1 = max(by / bb, 0.0)
                    e1 = yy - 2 * a1 * ty + a1 * a1 * tt
                    e2 = yy - 2 * b1 * by + b1 * b1 * bb
                    if e1 <= e2:
                        al, be = a1, 0.0
                    else:
                        al, be = 0.0, b1
                sse = yy - 2 * (al * ty + be * by) + al * al * tt + 2 * al * be * tb + be * be * bb
                if sse < best:
                    best = sse
                    tot = al + be
                    X[v, 2], X[v, 3] = odi_grid[a], icvf
                    X[v, 4] = be / tot if tot > 0 else 0.0
                    X[v, 5] = tot
        x[2], x[3], x[4], x[5] = X[v, 2], X[v, 3], X[v, 4], X[v, 5]
        # ---- stage 2: Levenberg–Marquardt with the analytic Jacobian
        _signal_jac(x, bvals, bvecs, uidx, qtab, dqtab, tautab, dtautab, lo, step, d, b_iso,
                    True, s, J)
        cost = _cost(y, sg, s, r)
        lam = 1e-3
        xn = np.empty(N_PARAMS)
        rn = np.empty(N)
        jtj = np.empty((N_PARAMS, N_PARAMS))
        g = np.empty(N_PARAMS)
        it = 0
        while it < max_iter:
            it += 1
            for n in range(N):  # Rician chain rule
                m = r[n] + y[n]
                f = s[n] / m if sg > 0 and m > 0 else 1.0
                for p in range(N_PARAMS):
                    J[n, p] *= f
            for p in range(N_PARAMS):
                g[p] = 0.0
                for q in range(N_PARAMS):
                    jtj[p, q] = 0.0
            for n in range(N):
                for p in range(N_PARAMS):
                    g[p] -= J[n, p] * r[n]
                    for q in range(p, N_PARAMS):
                        jtj[p, q] += J[n, p] * J[n, q]
            for p in range(N_PARAMS):
                for q in range(p):
                    jtj[p, q] = jtj[q, p]
            improved = False
            for _try in range(6):
                A = jtj.copy()
                for p in range(N_PARAMS):
                    A[p, p] += lam * (jtj[p, p] + 1e-12)
                dx = np.linalg.solve(A, g)
                for p in range(N_PARAMS):
                    xn[p] = x[p] + dx[p]
                _clip(xn, lower, upper)
                _signal_jac(xn, bvals, bvecs, uidx, qtab, dqtab, tautab, dtautab, lo, step, d,
                            b_iso, False, s, J)
                cn = _cost(y, sg, s, rn)
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
            _signal_jac(x, bvals, bvecs, uidx, qtab, dqtab, tautab, dtautab, lo, step, d,
                        b_iso, True, s, J)
            _cost(y, sg, s, r)
        X[v] = x
        costs[v] = cost
        iters[v] = it
    return X, costs, iters
