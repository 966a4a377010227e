"""Likelihood-weighted means over a signal dictionary (compiled, parallel over voxels).

The kernel of :class:`~microlearn.fitting.engines.posterior.PosteriorEngine`: for every
voxel, the log-likelihood of each dictionary sample with S0 profiled out,
ll_m = (y·W·F_m)² / (2 F_m·W·F_m), then the weighted means of the samples' values with
weights exp(ll_m − max ll). Samples more than ``CUTOFF`` below the maximum (weight
< 1e-13) are skipped, so the exponentials are few; the dot products run over the samples
with the dictionary stored measurement-major, which vectorises.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Log-weights below the voxel's maximum by more than this are skipped.
CUTOFF = 30.0


@njit(parallel=True, cache=True, fastmath=True)
def weighted_means(y, fw_t, half_inv_ff, values):
    """Posterior means and weight sums.

    Parameters
    ----------
    y : ndarray, float32, shape (V, N)
        Normalised signals.
    fw_t : ndarray, float32, shape (N, M)
        Dictionary signals (Rician floor) times the inverse noise variance of each
        measurement, measurement-major.
    half_inv_ff : ndarray, float32, shape (M,)
        1 / (2 F_m·W·F_m).
    values : ndarray, float32, shape (M, K)
        What is averaged, per sample.

    Returns
    -------
    means : ndarray, shape (V, K)
    total : ndarray, shape (V,)
        Sum of the weights (>= 1: the best sample has weight 1).
    """
    V, N = y.shape
    M = fw_t.shape[1]
    K = values.shape[1]
    means = np.zeros((V, K))
    total = np.zeros(V)
    for v in prange(V):
        ll = np.zeros(M, dtype=np.float32)
        for n in range(N):
            yn = y[v, n]
            for m in range(M):
                ll[m] += yn * fw_t[n, m]
        top = np.float32(-np.inf)
        for m in range(M):
            ll[m] = ll[m] * ll[m] * half_inv_ff[m]
            if ll[m] > top:
                top = ll[m]
        acc = np.zeros(K)
        s = 0.0
        for m in range(M):
            x = ll[m] - top
            if x > -CUTOFF:
                w = np.exp(np.float64(x))
                s += w
                for k in range(K):
                    acc[k] += w * values[m, k]
        total[v] = s
        for k in range(K):
            means[v, k] = acc[k] / s
    return means, total


@njit(parallel=True, cache=True, fastmath=True)
def windowed_means(y, sigma, sqrt_n, shapes_t, keys, axis, values, probe):
    """:func:`weighted_means` visiting only the samples that can weigh more than e^-CUTOFF.

    With ŷ and F̂_m the whitened, unit-length signal and sample, the profiled
    log-likelihood is ll_m = c (ŷ·F̂_m)² with c = |y|²_W / 2, and ŷ·F̂_m = 1 − |ŷ − F̂_m|²/2.
    The samples are sorted by their key u·F̂_m along one axis u; since |u·ŷ − u·F̂_m| is at
    most |ŷ − F̂_m|, a sample whose key is further than δ from the voxel's key has
    ll_m <= c (1 − δ²/2)². A first look at the ``probe`` samples nearest in key gives a
    reference ll; every sample that cannot come within ``CUTOFF`` of it is skipped, and
    the rest are weighted exactly as in :func:`weighted_means`.

    Parameters
    ----------
    y : ndarray, float32, shape (V, N)
        Normalised signals.
    sigma : ndarray, float32, shape (V,)
        Normalised noise σ of one direction, per voxel.
    sqrt_n : ndarray, float32, shape (N,)
        Square roots of the directions averaged into each measurement (its mean has
        variance σ²/n).
    shapes_t : ndarray, float32, shape (N, M)
        Whitened unit-length dictionary signals (Rician floor), sorted by key.
    keys : ndarray, float32, shape (M,)
        u·F̂_m, ascending.
    axis : ndarray, float32, shape (N,)
        The unit axis u.
    values : ndarray, float32, shape (M, K)
        What is averaged, in the same (sorted) order.
    probe : int
        Samples on each side of the voxel's key position used for the reference.

    Returns
    -------
    means, second : ndarray, shape (V, K)
        Weighted means of the values and of their squares.
    total : ndarray, shape (V,)
    visited : ndarray, shape (V,)
        Samples evaluated per voxel.
    """
    V, N = y.shape
    M = shapes_t.shape[1]
    K = values.shape[1]
    means = np.zeros((V, K))
    second = np.zeros((V, K))
    total = np.zeros(V)
    visited = np.zeros(V)
    for v in prange(V):
        yh = np.empty(N, dtype=np.float32)
        ny2 = 0.0
        for n in range(N):
            yh[n] = y[v, n] * sqrt_n[n]
            ny2 += yh[n] * yh[n]
        norm = np.sqrt(ny2)
        c = 0.5 * ny2 / (sigma[v] * sigma[v])
        ky = 0.0
        for n in range(N):
            yh[n] = yh[n] / norm
            ky += axis[n] * yh[n]
        pos = np.searchsorted(keys, ky)
        ref = -np.inf
        for m in range(max(0, pos - probe), min(M, pos + probe)):
            d = 0.0
            for n in range(N):
                d += yh[n] * shapes_t[n, m]
            if d > 0 and c * d * d > ref:
                ref = c * d * d
        r = np.sqrt(max(ref - CUTOFF, 0.0) / c)
        dmax = np.sqrt(max(2.0 * (1.0 - r), 0.0))
        lo = np.searchsorted(keys, ky - dmax)
        hi = np.searchsorted(keys, ky + dmax, side="right")
        ll = np.empty(hi - lo)
        top = -np.inf
        for m in range(lo, hi):
            d = 0.0
            for n in range(N):
                d += yh[n] * shapes_t[n, m]
            x = c * d * d if d > 0 else -np.inf
            ll[m - lo] = x
            if x > top:
                top = x
        acc = np.zeros(K)
        acc2 = np.zeros(K)
        s = 0.0
        for m in range(lo, hi):
            x = ll[m - lo] - top
            if x > -CUTOFF:
                w = np.exp(x)
                s += w
                for k in range(K):
                    acc[k] += w * values[m, k]
                    acc2[k] += w * values[m, k] * values[m, k]
        total[v] = s
        visited[v] = hi - lo
        for k in range(K):
            means[v, k] = acc[k] / s
            second[v, k] = acc2[k] / s
    return means, second, total, visited
