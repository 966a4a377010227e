"""Likelihood-weighted means over a signal dictionary (compiled, parallel over voxels).

The kernel of :class:`~microlearn.fitting.engines.posterior.PosteriorEngine`: for every
voxel, the log-likelihood of each dictionary sample with S0 profiled out,
ll_m = (y·W·F_m)² / (2 F_m·W·F_m), then the weighted means of the samples' values with
weights exp(ll_m − max ll). Samples more than ``CUTOFF`` below the maximum (weight
< 2e-9) are skipped, so the exponentials are few; the dot products run over the samples
with the dictionary stored measurement-major, which vectorises.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: Log-weights below the voxel's maximum by more than this are skipped (weight < 2e-9).
CUTOFF = 20.0
#: The same for the pooled weights of the data prior (weight < 5e-5: a prior's histogram).
POOL_CUTOFF = 10.0


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


@njit(cache=True, fastmath=True)
def _window(yv, sig, sqrt_n, shapes_t, keys, axis, probe, logprior, t2max, cutoff):
    """The samples of one voxel that can weigh more than e^-cutoff, and their log-weights.

    Returns (lo, ll, top): the window starts at sample ``lo``; ``ll`` holds the profiled
    log-likelihood of each sample in it (without the prior); ``top`` is the maximum of
    ll + log-prior. ``logprior`` has its maximum at 0 (all zeros: the dictionary's own
    prior). The window holds every sample within ``cutoff`` of the top for the likelihood
    tempered by ``t2max`` (ll / t2max; 1: untempered).
    """
    N = yv.shape[0]
    M = shapes_t.shape[1]
    yh = np.empty(N, dtype=np.float32)
    ny2 = 0.0
    for n in range(N):
        yh[n] = yv[n] * sqrt_n[n]
        ny2 += yh[n] * yh[n]
    norm = np.sqrt(ny2)
    c = 0.5 * ny2 / (sig * sig)
    ky = 0.0
    for n in range(N):
        yh[n] = yh[n] / norm
        ky += axis[n] * yh[n]
    pos = np.searchsorted(keys, ky)
    ref = -1e300
    for m in range(max(0, pos - probe), min(M, pos + probe)):
        d = 0.0
        for n in range(N):
            d += yh[n] * shapes_t[n, m]
        if d > 0 and c * d * d / t2max + logprior[m] > ref:
            ref = c * d * d / t2max + logprior[m]
    # a sample's log-weight is at most c d² / t2max (the log-prior is <= 0)
    r = np.sqrt(max(ref - cutoff, 0.0) * t2max / c)
    dmax = np.sqrt(max(2.0 * (1.0 - r), 0.0))
    lo = np.searchsorted(keys, ky - dmax)
    hi = np.searchsorted(keys, ky + dmax, side="right")
    ll = np.empty(hi - lo)
    top = -1e300
    for m in range(lo, hi):
        d = 0.0
        for n in range(N):
            d += yh[n] * shapes_t[n, m]
        x = c * d * d if d > 0 else -1e300
        ll[m - lo] = x
        if x + logprior[m] > top:
            top = x + logprior[m]
    return lo, ll, top


@njit(parallel=True, cache=True, fastmath=True)
def windowed_means(y, sigma, sqrt_n, shapes_t, keys, axis, values, probe, logprior,
                   tempers, min_ess):
    """:func:`weighted_means` visiting only the samples that can weigh more than e^-CUTOFF.

    With ŷ and F̂_m the whitened, unit-length signal and sample, the profiled
    log-likelihood is ll_m = c (ŷ·F̂_m)² with c = |y|²_W / 2, and ŷ·F̂_m = 1 − |ŷ − F̂_m|²/2.
    The samples are sorted by their key u·F̂_m along one axis u; since |u·ŷ − u·F̂_m| is at
    most |ŷ − F̂_m|, a sample whose key is further than δ from the voxel's key has
    ll_m <= c (1 − δ²/2)². A first look at the ``probe`` samples nearest in key gives a
    reference ll; every sample that cannot come within ``CUTOFF`` of it is skipped, and
    the rest are weighted exactly as in :func:`weighted_means`, times exp(``logprior``).

    A posterior held by fewer than ``min_ess`` effective samples is one the dictionary
    does not resolve (its weighted spread is too narrow): the likelihood is then tempered,
    ll / t² for the first t of ``tempers`` (ascending, from 1) that reaches ``min_ess``
    effective samples (the last t otherwise) — the noise σ read as t σ for that voxel.

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
    logprior : ndarray, float64, shape (M,)
        Log prior weight of each sample relative to the dictionary's own prior, maximum 0.
    tempers : ndarray, float64, shape (T,)
        Tempering factors t of σ, ascending, the first 1.
    min_ess : float
        Effective samples wanted before tempering stops.

    Returns
    -------
    means, second : ndarray, shape (V, K)
        Weighted means of the values and of their squares.
    total : ndarray, shape (V,)
        Sum of the weights (the largest is 1).
    ess : ndarray, shape (V,)
        Effective number of samples, (Σw)² / Σw², at the tempering used.
    temper : ndarray, shape (V,)
        The tempering factor t used.
    """
    V = y.shape[0]
    K = values.shape[1]
    means = np.zeros((V, K))
    second = np.zeros((V, K))
    total = np.zeros(V)
    ess = np.zeros(V)
    temper = np.ones(V)
    for v in prange(V):
        total[v], ess[v], temper[v] = _voxel_moments(
            y[v], sigma[v], sqrt_n, shapes_t, keys, axis, values, probe, logprior, tempers,
            min_ess, means[v], second[v])
    return means, second, total, ess, temper


@njit(cache=True, fastmath=True)
def _voxel_moments(yv, sig, sqrt_n, shapes_t, keys, axis, values, probe, logprior,
                   tempers, min_ess, mean, second):
    """One voxel of :func:`windowed_means`: fills ``mean`` and ``second`` (K,), returns
    (weight sum, effective samples, tempering factor)."""
    K = values.shape[1]
    T = tempers.size
    lo = 0
    ll = np.empty(0)
    top = 0.0
    t2 = 1.0
    s = 0.0
    s2 = 0.0
    for j in range(T):
        # the window of the tempered likelihood, wider as t grows
        t2 = tempers[j] * tempers[j]
        lo, ll, _ = _window(yv, sig, sqrt_n, shapes_t, keys, axis, probe, logprior, t2,
                            CUTOFF)
        top = -1e300
        for i in range(ll.size):
            x = ll[i] / t2 + logprior[lo + i] if ll[i] > -1e300 else -1e300
            ll[i] = x
            if x > top:
                top = x
        s = 0.0
        s2 = 0.0
        for i in range(ll.size):
            x = ll[i] - top
            if x > -CUTOFF:
                w = np.exp(x)
                s += w
                s2 += w * w
        if s * s >= min_ess * s2 or j == T - 1:
            break
    for k in range(K):
        mean[k] = 0.0
        second[k] = 0.0
    for i in range(ll.size):
        x = ll[i] - top
        if x > -CUTOFF:
            w = np.exp(x)
            for k in range(K):
                val = values[lo + i, k]
                mean[k] += w * val
                second[k] += w * val * val
    for k in range(K):
        mean[k] /= s
        second[k] /= s
    return s, (s * s / s2 if s2 > 0 else 0.0), np.sqrt(t2)


@njit(parallel=True, cache=True, fastmath=True)
def pooled_weights(y, sigma, sqrt_n, shapes_t, keys, axis, probe, logprior, n_chunks):
    """Every sample's posterior weight summed over the voxels (each voxel sums to 1).

    The E-step of the empirical-Bayes prior of
    :class:`~microlearn.fitting.engines.posterior.PosteriorEngine`; same window and
    weights as :func:`windowed_means`. Voxels are split in ``n_chunks`` parallel chunks,
    each with its own accumulator row.

    Returns
    -------
    ndarray, shape (M,)
        Σ_v w_vm / Σ_m w_vm, in the dictionary's (sorted) order.
    """
    V = y.shape[0]
    M = shapes_t.shape[1]
    acc = np.zeros((n_chunks, M))
    step = (V + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for v in range(c * step, min(V, (c + 1) * step)):
            lo, ll, top = _window(y[v], sigma[v], sqrt_n, shapes_t, keys, axis, probe,
                                  logprior, 1.0, POOL_CUTOFF)
            s = 0.0
            for i in range(ll.size):
                x = ll[i] + logprior[lo + i] - top
                if x > -POOL_CUTOFF:
                    ll[i] = np.exp(x)
                    s += ll[i]
                else:
                    ll[i] = 0.0
            if s > 0:
                for i in range(ll.size):
                    acc[c, lo + i] += ll[i] / s
    out = np.zeros(M)
    for c in range(n_chunks):
        for m in range(M):
            out[m] += acc[c, m]
    return out
