"""The core's quality pass: residual RMS and Rician Cramér–Rao variances of fitted voxels,
from the analytic Jacobian of the compiled model (:func:`.assembly.evaluate`), for every
model the core assembles (the fibre weights' common scale, which the signal does not see,
is taken out of the bound).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .assembly import chunk_bounds, copy_plan, evaluate, voxels_of, workers, workspace
from .kernel_tools import tabulated_rician_factor


@njit(parallel=True, cache=True, error_model="numpy")
def quality_voxels(Y, SIG, X, from_residual, plan, table_f, snr_max, max_condition, n_chunks,
                   weights, n_threads):
    """Residual RMS and Cramér–Rao variances of fitted voxels, one compiled pass.

    ``Y`` (V, N) normalised signals in plan order; ``SIG`` (V, N) or (V, 1) normalised σ
    (the RMS is against the Rician-floor prediction, in units of σ, where σ > 0; the plain
    residual in b0 units elsewhere); ``X`` (V, P + 1) the solutions. ``from_residual``: σ
    unknown, taken as RMS · sqrt(N / (N − P − 1)) for the Fisher matrix. ``weights``:
    entries of the fibre weights ffib_i, whose common scale the signal does not see (two
    or more: the bound is taken without that direction, and a weight's variance is
    (Σ ffib)² Var(ffib_i / Σ ffib)). Returns rms (V,) and var (V, P + 1) (NaN where
    singular or not finite).
    """
    V, N = Y.shape
    K = X.shape[1]
    rms = np.full(V, np.nan)
    var = np.full((V, K), np.nan)
    bounds = chunk_bounds(V, n_chunks)
    R = bounds.shape[0] - 1
    W = workers(R, n_threads)
    for w in prange(W):
        plan_v = copy_plan(plan)
        ws = workspace(plan_v, K - 1)
        for v in voxels_of(bounds, w, W):
            _quality_voxel(v, Y, SIG, X, from_residual, plan_v, ws, table_f, snr_max,
                           max_condition, weights, rms, var)
    return rms, var


@njit(cache=True, error_model="numpy")
def _quality_voxel(v, Y, SIG, X, from_residual, plan_v, ws, table_f, snr_max, max_condition,
                   weights, rms, var):
    """Residual RMS and Cramér–Rao variances of voxel ``v`` (see :func:`quality_voxels`)."""
    N = Y.shape[1]
    K = X.shape[1]
    finite = True
    for k in range(K):
        finite = finite and np.isfinite(X[v, k])
    if not finite:
        return
    x = X[v].copy()
    amp = x[K - 1]
    x[K - 1] = 1.0
    s = np.empty(N)
    J = np.empty((K, N))
    evaluate(x, plan_v, ws, True, s, J)
    total = 0.0
    for n in range(N):
        sg = SIG[v, n] if SIG.shape[1] > 1 else SIG[v, 0]
        p = amp * s[n]
        if sg > 0 and not from_residual:
            rr = (np.sqrt(p * p + sg * sg) - Y[v, n]) / sg
        else:
            rr = Y[v, n] - p
        total += rr * rr
    rms[v] = np.sqrt(total / N)
    F = np.zeros((K, K))
    row = np.empty(K)
    usable = True
    for n in range(N):
        sg = SIG[v, n] if SIG.shape[1] > 1 else SIG[v, 0]
        if from_residual:
            sg = rms[v] * np.sqrt(N / max(N - K, 1))
        if not (sg > 0 and np.isfinite(sg)):
            usable = False
            break
        w = tabulated_rician_factor(abs(amp * s[n]) / sg, table_f, snr_max) / (sg * sg)
        for k in range(K - 1):
            row[k] = amp * J[k, n]
        row[K - 1] = s[n]
        for k in range(K):
            rk = w * row[k]
            for m in range(k, K):
                F[k, m] += rk * row[m]
    if not usable:
        return
    col = np.empty(K)
    ok = True
    for k in range(K):
        col[k] = np.sqrt(abs(F[k, k])) + 1e-300
    for k in range(K):
        for m in range(k, K):
            F[k, m] /= col[k] * col[m]
            F[m, k] = F[k, m]
            ok = ok and np.isfinite(F[k, m])
    if not ok:
        return
    nw = weights.shape[0] if weights.shape[0] > 1 else 0
    u = np.zeros(K)
    if nw > 0:  # lift the weights' null direction: (F + u uᵀ)⁻¹ = F⁺ + u uᵀ
        norm = 0.0
        for j in range(nw):
            u[weights[j]] = x[weights[j]] * col[weights[j]]
            norm += u[weights[j]] ** 2
        for j in range(nw):
            u[weights[j]] /= np.sqrt(norm) + 1e-300
        for k in range(K):
            for m in range(K):
                F[k, m] += u[k] * u[m]
    lam, vec = np.linalg.eigh(F)
    if not lam[0] > lam[K - 1] / max_condition:
        return
    cov = np.empty((K, K))
    for k in range(K):
        for m in range(K):
            acc = 0.0
            for j in range(K):
                acc += vec[k, j] * vec[m, j] / lam[j]
            cov[k, m] = (acc - u[k] * u[m]) / (col[k] * col[m])
        var[v, k] = cov[k, k]
    if nw == 0:
        return
    total = 0.0
    for j in range(nw):
        total += x[weights[j]]
    grad = np.zeros(K)
    for i in range(nw):  # Σ ffib · ∂(ffib_i / Σ ffib)/∂ffib = e_i − w
        for j in range(nw):
            grad[weights[j]] = -x[weights[j]] / total
        grad[weights[i]] += 1.0
        acc = 0.0
        for j in range(nw):
            for m in range(nw):
                acc += grad[weights[j]] * cov[weights[j], weights[m]] * grad[weights[m]]
        var[v, weights[i]] = acc
