"""Small compiled pieces shared by the fitting kernels (numba, one voxel at a time).

Rician-floor residuals, the Gauss–Newton system with the floor's chain rule, a damped
Levenberg–Marquardt trial step with a Cholesky solve, and bound clipping. Jacobians are
parameter-major ``(P, N)`` so the loops over measurements vectorise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: LLVM fast-math flags that allow vectorised reductions but keep NaN/inf semantics.
FAST = {"contract", "reassoc", "nsz", "arcp"}


@njit(cache=True, fastmath=FAST)
def rician_cost(y, sigma, s, r):
    """Residuals ``r`` of the Rician-floor model sqrt(s² + σ²) (s if σ = 0); returns Σ r²."""
    total = 0.0
    s2 = sigma * sigma
    for n in range(y.shape[0]):
        r[n] = np.sqrt(s[n] * s[n] + s2) - y[n]
        total += r[n] * r[n]
    return total


@njit(cache=True)
def solve_spd(A, g, out, rel_tol=0.0):
    """Solve ``A out = g`` for a small symmetric positive-definite ``A`` (Cholesky in place).

    Returns False when a pivot is not above ``rel_tol`` times its diagonal entry (``A``
    numerically singular); ``A`` is overwritten by its factor.
    """
    P = A.shape[0]
    for j in range(P):
        dsum = A[j, j]
        for k in range(j):
            dsum -= A[j, k] * A[j, k]
        if not dsum > rel_tol * abs(A[j, j]):
            return False
        A[j, j] = np.sqrt(dsum)
        for i in range(j + 1, P):
            t = A[i, j]
            for k in range(j):
                t -= A[i, k] * A[j, k]
            A[i, j] = t / A[j, j]
    for i in range(P):
        t = g[i]
        for k in range(i):
            t -= A[i, k] * out[k]
        out[i] = t / A[i, i]
    for i in range(P - 1, -1, -1):
        t = out[i]
        for k in range(i + 1, P):
            t -= A[k, i] * out[k]
        out[i] = t / A[i, i]
    return True


@njit(cache=True)
def clip(x, lower, upper):
    """Clip ``x`` into [lower, upper] in place."""
    for p in range(x.shape[0]):
        if x[p] < lower[p]:
            x[p] = lower[p]
        elif x[p] > upper[p]:
            x[p] = upper[p]


@njit(cache=True, fastmath=FAST)
def normal_equations(J, r, s, y, sigma, jtj, g):
    """Gauss–Newton system of the Rician-floor residual (chain rule s/m applied to J).

    ``J`` is (P, N), parameter-major; ``jtj`` (P, P) and ``g`` = −Jᵀr (P,) are filled.
    """
    N = r.shape[0]
    P = J.shape[0]
    if sigma > 0:
        for n in range(N):
            m = r[n] + y[n]
            f = s[n] / m if m > 0 else 1.0
            for p in range(P):
                J[p, n] *= f
    for p in range(P):
        acc = 0.0
        for n in range(N):
            acc -= J[p, n] * r[n]
        g[p] = acc
        for q in range(p, P):
            acc = 0.0
            for n in range(N):
                acc += J[p, n] * J[q, n]
            jtj[p, q] = acc
            jtj[q, p] = acc


@njit(cache=True)
def hold_active_bounds(x, lower, upper, jtj, g):
    """Freeze parameters at a bound whose descent direction points out of the box.

    Their rows and columns of the Gauss–Newton system become the identity with a zero
    right-hand side, so the damped step moves the other parameters instead of being
    clipped back to the same point (the projected-LM stall at bounds).
    """
    P = x.shape[0]
    for p in range(P):
        if (x[p] <= lower[p] and g[p] < 0) or (x[p] >= upper[p] and g[p] > 0):
            g[p] = 0.0
            for q in range(P):
                jtj[p, q] = 0.0
                jtj[q, p] = 0.0
            jtj[p, p] = 1.0


@njit(cache=True)
def damped_trial(x, jtj, g, lam, scales, lower, upper, A, dx, xn):
    """Levenberg–Marquardt trial point ``xn`` = clip(x + scales · dx) with
    (JᵀJ + λ diag(JᵀJ)) dx = g, in scaled units; False if the system is singular."""
    P = x.shape[0]
    for p in range(P):
        for q in range(P):
            A[p, q] = jtj[p, q]
        A[p, p] += lam * (jtj[p, p] + 1e-12)
    if not solve_spd(A, g, dx):
        return False
    for p in range(P):
        xn[p] = x[p] + dx[p] * scales[p]
    clip(xn, lower, upper)
    return True


@njit(cache=True, inline="always")
def tabulated_rician_factor(snr, table_f, snr_max):
    """Rician Fisher factor of one measurement at ``snr``: linear in ``table_f`` (a uniform
    grid on [0, ``snr_max``]), 1 − 1/(2 snr²) above it."""
    if snr <= snr_max:
        nt = table_f.shape[0]
        pos = snr * ((nt - 1) / snr_max)
        i = min(int(pos), nt - 2)
        fr = pos - i
        return table_f[i] * (1.0 - fr) + table_f[i + 1] * fr
    return 1.0 - 0.5 / (snr * snr)
