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
