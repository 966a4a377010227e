"""Cramér–Rao standard deviations of fitted parameters under Rician noise.

For magnitude data with noise σ, the measurement ``n`` with noise-free magnitude ``A_n``
carries Fisher information ``F(A_n/σ_n)/σ_n²`` about ``A_n``, where ``F`` (in [0, 1])
is the Rician information factor: ``F(s) = E[u² (I₁(us)/I₀(us))²] − s²`` for
``u ~ Rice(s, 1)``; ``F → 1 − 1/(2s²)`` at high SNR (the Gaussian limit) and → 0 at the
noise floor. With ``A = s0 · S(θ)`` the Fisher matrix of the free parameters (and S0) is
``Jᵀ diag(F/σ²) J`` and its inverse bounds the covariance of any unbiased estimator; the
square roots of its diagonal are the reported std maps (``<map>_std``).

Jacobians are analytic, from the compiled core (:mod:`.compiled.assembly`: the functions
the engines fit with) for every model whose compartments have compiled pieces; otherwise
central finite differences of the batched ``model.signal`` (steps kept inside the bounds),
so every model is covered, vectorised over voxels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from numba import njit, prange

from .compiled.kernel_tools import tabulated_rician_factor

#: Largest SNR of the tabulated Rician factor; above it the asymptote 1 − 1/(2s²) is used.
SNR_TABLE_MAX = 20.0
#: Condition number above which a voxel's Fisher matrix counts as singular (std NaN).
MAX_CONDITION = 1e12
#: Voxels per batch (bounds the (V, 2P, N) Jacobian work arrays).
BLOCK = 1024


#: The tabulated factor shipped with the package (``write_factor_table`` regenerates it):
#: computing it costs ~0.3 s in every fresh process, more than a whole small fit.
FACTOR_TABLE_FILE = Path(__file__).with_name("rician_factor.npy")


def compute_factor_table():
    """The Rician Fisher factor on ``SNR_TABLE_MAX`` / 400 steps, by quadrature.

    Returns
    -------
    s : ndarray, shape (401,)
        SNR nodes.
    f : ndarray, shape (401,)
        ``F(s)`` in [0, 1].
    """
    from scipy.special import i0e, i1e

    s = np.linspace(0.0, SNR_TABLE_MAX, 401)
    u = np.linspace(0.0, SNR_TABLE_MAX + 14.0, 1501)  # F to ~4e-5
    us = u[None, :] * s[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(us > 0, i1e(us) / i0e(us), 0.0)
    p = u * np.exp(-0.5 * (u[None, :] - s[:, None]) ** 2) * i0e(us)
    z = np.trapezoid(p, u, axis=1)
    f = np.trapezoid(p * (u * u * r * r), u, axis=1) / z - s * s
    return s, np.clip(f, 0.0, 1.0)


def write_factor_table(path=FACTOR_TABLE_FILE) -> Path:
    """Write :func:`compute_factor_table`'s ``F`` to ``path`` (the packaged table)."""
    np.save(path, compute_factor_table()[1])
    return Path(path)


@lru_cache(maxsize=1)
def _factor_table():
    s = np.linspace(0.0, SNR_TABLE_MAX, 401)
    try:
        f = np.load(FACTOR_TABLE_FILE, allow_pickle=False)
    except OSError:
        f = None
    if f is None or f.shape != s.shape:
        return compute_factor_table()
    return s, f


def rician_fisher_factor(snr) -> np.ndarray:
    """Rician Fisher-information factor ``F(A/σ)`` (0 at the floor, → 1 at high SNR).

    Parameters
    ----------
    snr : array_like
        Noise-free magnitude over σ (any shape).

    Returns
    -------
    ndarray
        ``F``, same shape; the information about ``A`` is ``F / σ²``.
    """
    shape = np.shape(snr)
    snr = np.abs(np.asarray(snr, dtype=float)).reshape(-1)
    s, f = _factor_table()
    with np.errstate(divide="ignore"):
        out = 1.0 - 0.5 / np.maximum(snr, 1e-30) ** 2
    low = snr <= SNR_TABLE_MAX
    pos = snr[low] * ((s.size - 1) / SNR_TABLE_MAX)  # uniform grid: direct linear lookup
    i = np.minimum(pos.astype(np.intp), s.size - 2)
    frac = pos - i
    out[low] = f[i] * (1.0 - frac) + f[i + 1] * frac
    return out.reshape(shape)


def _signal_jacobian(model, acq, x, lower, upper, steps):
    """S (V, N) and dS/dx (V, P, N) by central differences within the bounds."""
    V, P = x.shape
    plus = np.minimum(x + steps, upper)
    minus = np.maximum(x - steps, lower)
    xs = np.repeat(x[:, None, :], 2 * P + 1, axis=1)  # (V, 2P+1, P)
    idx = np.arange(P)
    xs[:, 1 + idx, idx] = plus
    xs[:, 1 + P + idx, idx] = minus
    S = model.signal(acq, xs.reshape(V * (2 * P + 1), P))
    S = np.broadcast_to(S, (V * (2 * P + 1), acq.n_measurements)).reshape(V, 2 * P + 1, -1)
    width = (plus - minus)[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        J = (S[:, 1:P + 1] - S[:, P + 1:]) / np.swapaxes(width, 1, 2)
    return S[:, 0], J


def _analytic_jacobian(model, acq):
    """``fn(x (V, P)) -> (S (V, N), dS/dx (V, P, N))`` from the compiled core, or None when
    a part of ``model`` has no compiled piece (then finite differences are used)."""
    from numba import get_num_threads

    from .compiled.assembly import NotCompilable, build_plan, signals

    try:
        plan = build_plan(model, acq)
    except NotCompilable:
        return None
    inverse = np.argsort(plan.tabs.order)

    def fn(x):
        X = np.ascontiguousarray(np.concatenate([x, np.ones((x.shape[0], 1))], axis=1))
        S, J = signals(X, plan.arrays, True, 8, get_num_threads())
        return S[:, inverse], J[:, :-1, inverse]

    return fn


@njit(parallel=True, cache=True)
def _fisher(S, J, amp, sig, fit_s0, table_f, snr_max):
    """Fisher matrices (v, K, K) of ``A = amp · S`` under Rician noise.

    ``S`` (v, N) model signals, ``J`` (v, P, N) their Jacobians, ``amp`` (v,) S0, ``sig``
    (v, 1) or (v, N) σ, ``table_f`` the Rician factor on a uniform SNR grid [0, snr_max].
    """
    V, P, N = J.shape
    K = P + 1 if fit_s0 else P
    out = np.zeros((V, K, K))
    for v in prange(V):
        a = amp[v]
        row = np.empty(K)
        for n in range(N):
            sg = sig[v, n] if sig.shape[1] > 1 else sig[v, 0]
            w = tabulated_rician_factor(abs(a * S[v, n]) / sg, table_f, snr_max) / (sg * sg)
            for k in range(P):
                row[k] = a * J[v, k, n]
            if fit_s0:
                row[P] = S[v, n]
            for k in range(K):
                rk = w * row[k]
                for m in range(k, K):
                    out[v, k, m] += rk * row[m]
        for k in range(K):
            for m in range(k):
                out[v, k, m] = out[v, m, k]
    return out


def _fisher_numpy(S, J, amp, sig, fit_s0):
    """:func:`_fisher` in numpy, for small blocks.

    The compiled kernel pays numba's one-off start (~0.2 s) in a process that has not
    loaded a compiled kernel yet (generic engines: IVIM, ZCD, composed models), which is
    more than these blocks' whole computation.
    """
    snr = np.abs(amp[:, None] * S) / sig
    w = rician_fisher_factor(snr) / sig ** 2  # (v, N)
    rows = amp[:, None, None] * J  # (v, P, N)
    if fit_s0:
        rows = np.concatenate([rows, S[:, None, :]], axis=1)
    return np.einsum("vkn,vn,vmn->vkm", rows, w, rows, optimize=True)


#: Blocks with fewer multiply-adds than this use :func:`_fisher_numpy`.
NUMPY_FISHER_BELOW = 2e7


def _weight_gauge(model, x, K):
    """Gauge directions of the fibre weights, shape (V, K), or None.

    With several fibre populations the signal depends on the weights ``ffib_i`` only
    through w_i = ffib_i / Σ ffib, so scaling them all together (the direction ffib itself)
    leaves the signal unchanged and the Fisher matrix singular. Its bound is taken on the
    complement of that direction (for the weights: w_i's bound, times Σ ffib).
    """
    names = [n for n in model.parameters.names if n.startswith("ffib_")]
    if len(names) < 2:
        return None, []
    idx = [model.parameters.slice(n).start for n in names]
    gauge = np.zeros((x.shape[0], K))
    gauge[:, idx] = x[:, idx]
    return gauge, idx


def _weight_variance(vec, lam, u, col, x, weights, var):
    """Variances with the fibre weights' gauge removed: ``var`` (V, K) with the weights'
    entries replaced by (Σ ffib)² Var(w_i), w_i = ffib_i / Σ ffib (gauge-invariant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = np.einsum("vkj,vj,vlj->vkl", vec, 1.0 / lam, vec) - u[:, :, None] * u[:, None, :]
        cov /= col[:, :, None] * col[:, None, :]
        f = x[:, weights]
        total = f.sum(1, keepdims=True)
        out = var.copy()
        for k in weights:
            grad = np.zeros_like(var)
            grad[:, weights] = -f / total  # Σ · ∂w_k/∂ffib = e_k − w_k
            grad[:, k] += 1.0
            out[:, k] = np.einsum("vk,vkl,vl->v", grad, cov, grad)
    return out


def _orientation_slices(model):
    space = model.parameters
    return {name: space.slice(name) for name in model.orientation_names}


def cramer_rao_std(model, acquisition, params, sigma, *, s0=1.0, fit_s0=True,
                   rel_step=1e-4, block=BLOCK, return_signal=False):
    """Per-voxel Cramér–Rao standard deviation of every free parameter (Rician noise).

    Parameters
    ----------
    model : MultiCompartmentModel
    acquisition : Acquisition
    params : ndarray, shape (*batch, size)
        Packed free parameters at the solution (SI; orientations as angles).
    sigma : float or ndarray, shape (*batch,), (*batch, 1) or (*batch, N)
        Noise σ in the units of ``s0 · model.signal`` (e.g. σ / b0 for normalised data;
        per measurement when echo times are normalised by different b0s).
    s0 : float or ndarray, shape (*batch,)
        Signal scale at b = 0 in the same units.
    fit_s0 : bool
        S0 was fitted as well (a nuisance parameter: it widens the other bounds).
    rel_step : float
        Finite-difference step relative to each parameter's scale.
    block : int
        Voxels per batch.
    return_signal : bool
        Also return the model signal ``S/S0`` at ``params``, shape (*batch, N) (computed
        on the way; NaN where the parameters are not finite).

    Returns
    -------
    dict of str to ndarray, shape (*batch,)
        Std of each scalar free parameter (SI) by name, ``"s0"`` when ``fit_s0``, and for
        each orientation the angular std in rad (``sqrt(var θ + sin²θ var φ)``). NaN where
        the parameters are not finite or the Fisher matrix is singular (an unidentifiable
        parameter, e.g. the orientation of a voxel without tissue).
    """
    space = model.parameters
    params = np.asarray(params, dtype=float)
    batch = params.shape[:-1]
    x = params.reshape(int(np.prod(batch)), space.size)
    V, P = x.shape
    N = acquisition.n_measurements
    sig = np.asarray(sigma, dtype=float)
    if sig.ndim == len(batch) + 1 and sig.shape[-1] in (1, N):
        sig = np.broadcast_to(sig, batch + sig.shape[-1:]).reshape(V, -1)
    else:
        sig = np.broadcast_to(sig, batch).reshape(V, 1)
    amp = np.broadcast_to(np.asarray(s0, dtype=float), batch).reshape(V)
    lower, upper = space.bounds()
    orient = np.zeros(P, bool)
    for s in _orientation_slices(model).values():
        orient[s] = True
    lower = np.where(orient, -np.inf, lower)
    upper = np.where(orient, np.inf, upper)
    steps = rel_step * space.scales()
    steps = np.where(orient, 1e-4, steps)
    K = P + int(fit_s0)
    var = np.full((V, K), np.nan)
    good = np.all(np.isfinite(x), axis=1) & np.isfinite(amp) & np.all(
        np.isfinite(sig) & (sig > 0), axis=1)
    rows_all = np.flatnonzero(good)
    signal = np.full((V, N), np.nan) if return_signal else None
    analytic = _analytic_jacobian(model, acquisition) if rows_all.size else None
    for start in range(0, rows_all.size, block):
        rows = rows_all[start:start + block]
        if analytic is not None:
            S, J = analytic(x[rows])
        else:
            S, J = _signal_jacobian(model, acquisition, x[rows], lower, upper, steps)
        if signal is not None:
            signal[rows] = S
        table_s, table_f = _factor_table()
        if len(rows) * N * K * K < NUMPY_FISHER_BELOW:
            fisher = _fisher_numpy(S, J, amp[rows], sig[rows], fit_s0)
        else:
            fisher = _fisher(np.ascontiguousarray(S), np.ascontiguousarray(J),
                             np.ascontiguousarray(amp[rows]), np.ascontiguousarray(sig[rows]),
                             fit_s0, table_f, SNR_TABLE_MAX)
        # scale to unit diagonal so that the conditioning test means something
        col = np.sqrt(np.abs(np.einsum("vkk->vk", fisher))) + 1e-300
        with np.errstate(invalid="ignore", over="ignore"):
            fisher /= col[:, :, None] * col[:, None, :]
        finite = np.all(np.isfinite(fisher), axis=(1, 2))
        fisher[~finite] = np.eye(K)
        gauge, weights = _weight_gauge(model, x[rows], K)
        if gauge is not None:  # lift the null direction: (F + u uᵀ)⁻¹ = F⁺ + u uᵀ
            u = gauge * col
            u /= np.linalg.norm(u, axis=1, keepdims=True) + 1e-300
            fisher += u[:, :, None] * u[:, None, :]
        lam, vec = np.linalg.eigh(fisher)
        ok = finite & (lam[:, 0] > lam[:, -1] / MAX_CONDITION)
        with np.errstate(divide="ignore"):
            diag = np.einsum("vkj,vj->vk", vec * vec, 1.0 / lam)  # diag of the inverse
        var[rows[ok]] = diag[ok] / col[ok] ** 2
        if gauge is not None:
            var[rows[ok]] = _weight_variance(vec[ok], lam[ok], u[ok], col[ok], x[rows[ok]],
                                             weights, var[rows[ok]])
    out = {}
    for p in space:
        s = space.slice(p.name)
        if p.kind == "orientation":
            theta = x[:, s.start]
            ang = var[:, s.start] + np.sin(theta) ** 2 * var[:, s.start + 1]
            out[p.name] = np.sqrt(ang).reshape(batch)
        else:
            out[p.name] = np.sqrt(var[:, s.start]).reshape(batch)
    if fit_s0:
        out["s0"] = np.sqrt(var[:, P]).reshape(batch)
    if return_signal:
        return out, signal.reshape(batch + (N,))
    return out
