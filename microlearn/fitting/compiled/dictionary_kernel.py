"""Compiled pieces of the dictionary engine: Gram matrices and per-voxel projections.

Every voxel uses the dictionary of its snapped direction, ``D[group[v]]`` (A atoms x N
measurements); these loops apply it without gathering a (V, A, N) array.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .kernel_tools import FAST


@njit(parallel=True, cache=True, fastmath=FAST)
def gram_matrices(D, index, ridge):
    """``D[k] D[k]ᵀ + diag(ridge)`` for every ``k`` in ``index``, shape (len(index), A, A).

    Parameters
    ----------
    D : ndarray, shape (K, A, N)
        Dictionaries (float32 or float64).
    index : ndarray of int, shape (M,)
        Dictionaries to use.
    ridge : ndarray, shape (M, A)
        Added to each Gram matrix's diagonal.
    """
    M = index.shape[0]
    A, N = D.shape[1], D.shape[2]
    out = np.empty((M, A, A))
    for m in prange(M):
        Dk = D[index[m]]
        for a in range(A):
            for b in range(a + 1):
                acc = 0.0
                for n in range(N):
                    acc += np.float64(Dk[a, n]) * np.float64(Dk[b, n])
                out[m, a, b] = acc
                out[m, b, a] = acc
            out[m, a, a] += ridge[m, a]
    return out


@njit(parallel=True, cache=True, fastmath=FAST)
def project(D, group, Y, a0, a1):
    """``Y[v] @ D[group[v], a0:a1].T`` for every voxel, shape (V, a1 - a0)."""
    V, N = Y.shape
    out = np.empty((V, a1 - a0))
    for v in prange(V):
        Dk = D[group[v]]
        for a in range(a0, a1):
            acc = 0.0
            for n in range(N):
                acc += Dk[a, n] * Y[v, n]
            out[v, a - a0] = acc
    return out


@njit(parallel=True, cache=True, fastmath=FAST)
def combine(D, group, X, a0):
    """``X[v] @ D[group[v], a0:a0 + X.shape[1]]`` for every voxel, shape (V, N)."""
    V, P = X.shape
    N = D.shape[2]
    out = np.zeros((V, N))
    for v in prange(V):
        Dk = D[group[v]]
        for p in range(P):
            w = X[v, p]
            if w != 0.0:
                for n in range(N):
                    out[v, n] += w * Dk[a0 + p, n]
    return out
