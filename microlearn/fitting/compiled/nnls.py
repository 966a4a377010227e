"""Batched non-negative least squares on a shared dictionary (compiled, parallel over voxels).

The active-set method of Lawson & Hanson in the Gram form of Bro & De Jong (1997,
"fast NNLS"): with G = DᵀD shared by a block of voxels and Dᵀy per voxel, each voxel's
solution needs only small solves on its active set, so a dictionary of a few hundred
atoms is solved exactly for tens of thousands of voxels per second.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernel_tools import solve_spd


@njit(cache=True)
def _solve_active(gram, rhs, active, n_active, out, work):
    """``out[active] = gram[active, active]⁻¹ rhs[active]`` by Cholesky; False if singular."""
    k = n_active
    L = work[:k, :k]
    b = np.empty(k)
    z = np.empty(k)
    for i in range(k):
        b[i] = rhs[active[i]]
        for j in range(k):
            L[i, j] = gram[active[i], active[j]]
    if not solve_spd(L, b, z, 1e-14):
        return False
    for i in range(k):
        out[active[i]] = z[i]
    return True


@njit(cache=True)
def nnls_one(gram, dty, tol, max_iter):
    """Solve min ‖D x − y‖², x ≥ 0 given G = DᵀD (A, A) and Dᵀy (A,); returns x (A,)."""
    A = gram.shape[0]
    x = np.zeros(A)
    s = np.zeros(A)
    w = dty.copy()
    in_p = np.zeros(A, np.bool_)
    active = np.empty(A, np.int64)
    work = np.empty((A, A))
    n_active = 0
    it = 0
    while it < max_iter:
        it += 1
        j = -1
        best = tol
        for a in range(A):
            if not in_p[a] and w[a] > best:
                best = w[a]
                j = a
        if j < 0:
            break
        in_p[j] = True
        active[n_active] = j
        n_active += 1
        while True:
            for a in range(A):
                s[a] = 0.0
            if not _solve_active(gram, dty, active, n_active, s, work):
                # the new atom is (numerically) dependent on the active ones: drop it
                n_active -= 1
                in_p[active[n_active]] = False
                w[active[n_active]] = 0.0
                for a in range(n_active):
                    s[active[a]] = x[active[a]]
                break
            alpha = 2.0
            for a in range(n_active):
                p = active[a]
                if s[p] <= 0:
                    alpha = min(alpha, x[p] / (x[p] - s[p]))
            if alpha > 1.0:
                break
            for a in range(n_active):
                p = active[a]
                x[p] += alpha * (s[p] - x[p])
            m = 0
            for a in range(n_active):  # move non-positive entries back to R
                p = active[a]
                if x[p] > 1e-15:
                    active[m] = p
                    m += 1
                else:
                    x[p] = 0.0
                    in_p[p] = False
            n_active = m
            if n_active == 0:
                break
        for a in range(A):
            x[a] = s[a] if in_p[a] else 0.0
        for a in range(A):
            acc = dty[a]
            for b in range(n_active):
                acc -= gram[a, active[b]] * x[active[b]]
            w[a] = acc
    return x


@njit(parallel=True, cache=True)
def nnls_gram(grams, group, DtY, tol=1e-12, max_iter=0):
    """Exact NNLS for every row of ``DtY`` (V, A), each with the Gram matrix of its group.

    Parameters
    ----------
    grams : ndarray, shape (G, A, A)
        DᵀD of each dictionary D (N, A) (e.g. one per fibre direction).
    group : ndarray of int, shape (V,)
        Dictionary of every voxel.
    DtY : ndarray, shape (V, A)
        Dᵀy of every voxel with its dictionary.
    tol : float
        Stop when no inactive gradient entry exceeds ``tol`` (relative to max|Dᵀy|).
    max_iter : int
        Outer iterations (0: 3·A).

    Returns
    -------
    ndarray, shape (V, A)
    """
    V, A = DtY.shape
    out = np.zeros((V, A))
    limit = max_iter if max_iter > 0 else 3 * A
    for v in prange(V):
        scale = 0.0
        for a in range(A):
            scale = max(scale, abs(DtY[v, a]))
        out[v] = nnls_one(grams[group[v]], DtY[v], tol * max(scale, 1e-300), limit)
    return out
