"""Quality maps of single-fibre NODDI fits in one compiled pass (residual RMS, Cramér–Rao std).

:func:`microlearn.fitting.quality.quality_maps` computes, for any model, the signal and
its Jacobian at the solution for blocks of voxels as (V, P, N) arrays, the Rician Fisher
matrices, their eigen-decompositions and the residual RMS in numpy: for NODDI on the HCP
scheme about twice the cost of the fit itself. For the model the compiled NODDI engine
fits, this kernel does the same per voxel without the large temporaries: the analytic
signal and Jacobian of :mod:`.noddi_kernel`, the Fisher matrix ``Jᵀ diag(F/σ²) J`` of the
free parameters and S0 (``F`` the Rician information factor), scaled to unit diagonal,
its eigen-decomposition (NaN std when the condition number exceeds ``max_condition``)
and the floor-model residual RMS. The results equal the numpy path to rounding
(``tests/fitting/test_noddi_quality.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .noddi_kernel import N_PARAMS, _model


@njit(parallel=True, cache=True)
def quality_voxels(Y, order, sigma, X, from_residual, bvals, bvecs, shell_start, qtab, dqtab,
                   tautab, dtautab, lo, step, d, b_iso, n_square, table_f, snr_max,
                   max_condition):
    """Residual RMS and Cramér–Rao variances of fitted voxels.

    Parameters
    ----------
    Y : ndarray, shape (V, N)
        Normalised signals in acquisition order.
    order : ndarray of int, shape (N,)
        The engine's measurement order (``Y[:, order]`` is sorted like its tables; read in
        place, so the signals are not copied).
    sigma : ndarray, shape (V,)
        Normalised σ. Where it is > 0 and finite the residual RMS is taken against the
        Rician-floor prediction sqrt(S² + σ²) in units of σ, and σ weighs the Fisher
        matrix; elsewhere the RMS is of the plain residual (b0 units) and the variances
        are NaN.
    X : ndarray, shape (V, 6)
        θ, φ, ODI, ICVF, FISO, S0 (relative) at the solution.
    from_residual : bool
        Ignore ``sigma``: plain residual RMS, and σ = RMS · sqrt(N / (N − 6)) for the Fisher
        matrix (no known noise level).
    table_f : ndarray
        Rician Fisher factor on a uniform SNR grid [0, ``snr_max``].

    Returns
    -------
    rms : ndarray, shape (V,)
    var : ndarray, shape (V, 6)
        Variances of θ, φ, ODI, ICVF, FISO and S0 (NaN where singular or not finite).
    """
    V, N = Y.shape
    K = N_PARAMS
    rms = np.full(V, np.nan)
    var = np.full((V, K), np.nan)
    nt = table_f.shape[0]
    tscale = (nt - 1) / snr_max
    for v in prange(V):
        x = np.empty(K)
        for k in range(K):
            x[k] = X[v, k]
        amp = x[5]
        x[5] = 1.0  # S = signal / S0; its S0 derivative is S itself
        c = np.empty(N)
        c2 = np.empty(N)
        ws = np.empty(N)
        d1 = np.empty(N)
        d2 = np.empty(N)
        arg = np.empty(N)
        wz = np.empty(N)
        s = np.empty(N)
        J = np.empty((K, N))
        finite = np.isfinite(amp)
        for k in range(K):
            finite = finite and np.isfinite(x[k])
        if not finite:
            continue
        _model(x, bvals, bvecs, shell_start, qtab, dqtab, tautab, dtautab, lo, step, d,
               b_iso, n_square, True, c, c2, ws, d1, d2, arg, wz, s, J)
        sg = np.nan if from_residual else sigma[v]
        usable = sg > 0 and np.isfinite(sg)
        total = 0.0
        for n in range(N):
            p = amp * s[n]
            if usable:
                r = (np.sqrt(p * p + sg * sg) - Y[v, order[n]]) / sg
            else:
                r = Y[v, order[n]] - p
            total += r * r
        rms[v] = np.sqrt(total / N)
        if from_residual:
            sg = rms[v] * np.sqrt(N / max(N - K, 1))
            usable = sg > 0 and np.isfinite(sg)
        if not usable:
            continue
        F = np.zeros((K, K))
        row = np.empty(K)
        w0 = 1.0 / (sg * sg)
        for n in range(N):
            snr = abs(amp * s[n]) / sg
            if snr <= snr_max:
                pos = snr * tscale
                i = min(int(pos), nt - 2)
                fr = pos - i
                f = table_f[i] * (1.0 - fr) + table_f[i + 1] * fr
            else:
                f = 1.0 - 0.5 / (snr * snr)
            w = f * w0
            for k in range(K - 1):
                row[k] = amp * J[k, n]
            row[K - 1] = s[n]
            for k in range(K):
                rk = w * row[k]
                for m in range(k, K):
                    F[k, m] += rk * row[m]
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
            continue
        lam, vec = np.linalg.eigh(F)
        if not lam[0] > lam[K - 1] / max_condition:
            continue
        for k in range(K):
            acc = 0.0
            for j in range(K):
                acc += vec[k, j] * vec[k, j] / lam[j]
            var[v, k] = acc / (col[k] * col[k])
    return rms, var
