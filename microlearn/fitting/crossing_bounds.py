"""Cramér–Rao bounds of per-fibre NODDI parameters on a simulated crossing set.

How precisely can ODI and ICVF of each fibre population be known at all? The Fisher
information of the Rician likelihood, ``F = Jᵀ diag(R(S/σ)/σ²) J`` (``R`` the Rician
information factor of :mod:`microlearn.fitting.uncertainty`), uses the analytic Jacobian
of the compiled multi-fibre NODDI kernel at the true parameters (fibre amplitudes, so no
redundant fraction); the bound on a parameter's standard deviation is
``sqrt((F⁻¹)_pp)``. The marginal bound does not depend on how the other parameters are
written, so it applies to ``noddi(n)`` as packed. Use it to read per-fibre errors: an
unbiased fit cannot beat it.

A parameter along a (numerically) singular direction of ``F`` cannot be identified from
the acquisition: :func:`fisher_std` reports ``inf`` for it and the summaries count it
(``unidentifiable``) — never a finite number from a pseudo-inverse.
"""

from __future__ import annotations

import numpy as np

from ..models import noddi
from ..parameters import cartesian_to_angles

#: Eigenvalues below ``largest / MAX_CONDITION`` span the unidentifiable directions.
MAX_CONDITION = 1e10
#: A parameter whose unit vector has more than this share (squared norm) in that null
#: space is unidentifiable.
NULL_SHARE = 1e-6


def fisher_std(fisher, *, max_condition=MAX_CONDITION, null_share=NULL_SHARE):
    """Cramér–Rao std of every parameter from Fisher matrices, ``inf`` where unidentifiable.

    Parameters
    ----------
    fisher : ndarray, shape (V, P, P)
        Symmetric positive semi-definite Fisher matrices (any parameter units).

    Returns
    -------
    ndarray, shape (V, P)
        ``sqrt((F⁻¹)_pp)`` over the identifiable subspace; ``inf`` for a parameter with a
        component in the null space of ``F`` (its bound is infinite), and for every
        parameter of a voxel whose matrix is not finite.
    """
    fisher = np.asarray(fisher, dtype=float)
    finite = np.all(np.isfinite(fisher), axis=(1, 2))
    F = np.where(finite[:, None, None], fisher, np.eye(fisher.shape[-1]))
    scale = np.sqrt(np.maximum(np.einsum("vpp->vp", F), 1e-300))
    Fs = F / scale[:, :, None] / scale[:, None, :]  # unit diagonal: conditioning is meaningful
    lam, vec = np.linalg.eigh(Fs)
    null = lam <= lam[:, -1:] / max_condition
    share = np.einsum("vpk,vk->vp", vec ** 2, null.astype(float))
    with np.errstate(divide="ignore"):
        var = np.einsum("vpk,vk->vp", vec ** 2, np.where(null, 0.0, 1.0 / lam))
    std = np.sqrt(var) / scale
    std[(share > null_share) | ~finite[:, None]] = np.inf
    return std


def kernel_rows(cset, k: int) -> np.ndarray:
    """True parameters of the ``k``-fibre voxels of ``cset`` in the kernel layout.

    (θ_i, φ_i, odi_i, icvf_i, a_i) per fibre then b, with S0 = 1: a_i = (1 − fiso) w_i,
    b = fiso.
    """
    rows = cset.n_fibres == k
    values = {name: v[rows] for name, v in cset.truth.items()}
    return kernel_rows_from(values, cset.directions[rows], k)


def kernel_rows_from(values: dict, directions, k: int) -> np.ndarray:
    """Kernel-layout rows from per-fibre maps (``odi_i``, ``icvf_i``, ``ffib_i``, ``fiso``).

    Parameters
    ----------
    values : dict of str -> ndarray, shape (V,)
    directions : ndarray, shape (V, >=k, 3)
        Unit fibre directions.
    k : int
    """
    weights = np.stack([values[f"ffib_{i}"] for i in range(1, k + 1)], 1)
    weights = weights / weights.sum(1, keepdims=True)
    cols = []
    for i in range(k):
        angles = cartesian_to_angles(directions[:, i])
        cols += [angles[:, 0], angles[:, 1], values[f"odi_{i + 1}"], values[f"icvf_{i + 1}"],
                 (1 - values["fiso"]) * weights[:, i]]
    cols.append(values["fiso"])
    return np.column_stack(cols)


def kernel_fisher(acq, rows: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """Rician Fisher matrices (V, 5k+1, 5k+1) of ``k``-fibre NODDI at ``rows`` (kernel layout).

    ``sigma`` is the noise relative to S0 = 1.
    """
    from .compiled.noddi_fast import NoddiMixEngine
    from .compiled.noddi_multi_kernel import signals
    from .uncertainty import rician_fisher_factor

    e = NoddiMixEngine(noddi(), acq)
    S, J = signals(np.ascontiguousarray(rows, dtype=float), k, e.bvals, e.bvecs,
                   e.shell_start, e.qtab, e.dqtab, e.tautab, e.dtautab, e.odi_nodes[0],
                   e.step, e.d, e.b_iso, e.n_square, True)
    w = rician_fisher_factor(np.asarray(S) / sigma) / sigma ** 2  # (V, N)
    return np.einsum("vpn,vn,vqn->vpq", J, w, J)


def cramer_rao_per_fibre(cset, counts=(1, 2, 3)) -> dict:
    """Bounds on the standard deviation of per-fibre ODI and ICVF, per fibre count.

    Parameters
    ----------
    cset : CrossingSet
        Noise level σ = 1 / ``cset.snr`` relative to S0.
    counts : tuple of int
        Fibre counts to evaluate.

    Returns
    -------
    dict
        ``{k: {"odi": (median, rms), "icvf": (median, rms), "unidentifiable": {"odi":
        share, "icvf": share}}}`` over voxels and fibres; a bound is ``inf`` where the
        parameter cannot be identified (so the rms is ``inf`` as soon as one is).
    """
    out = {}
    for k in counts:
        X = kernel_rows(cset, k)
        if X.shape[0] == 0:
            continue
        sd = fisher_std(kernel_fisher(cset.acq, X, k, 1.0 / cset.snr))
        out[k] = {"unidentifiable": {}}
        for name, offset in (("odi", 2), ("icvf", 3)):
            s = sd[:, offset:5 * k:5].ravel()
            with np.errstate(over="ignore"):
                out[k][name] = (float(np.median(s)), float(np.sqrt(np.mean(s ** 2))))
            out[k]["unidentifiable"][name] = float(np.mean(np.isinf(s)))
    return out
