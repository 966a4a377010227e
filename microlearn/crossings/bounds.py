"""Cramér–Rao bounds of per-fibre NODDI parameters on a simulated crossing set.

How precisely can ODI and ICVF of each fibre population be known at all? The Fisher
information of the Gaussian likelihood, F = Jᵀ J / σ², uses the analytic Jacobian of the
compiled multi-fibre NODDI kernel at the true parameters; the bound on a parameter's
standard deviation is sqrt((F⁻¹)_pp). The bound does not depend on how the other
parameters are written (fibre weights and S0 vs compartment amplitudes), so it applies to
``noddi(n)`` as packed. Use it to read per-fibre errors: an unbiased fit cannot beat it.
"""

from __future__ import annotations

import numpy as np

from ..models import noddi
from ..parameters import cartesian_to_angles


def kernel_rows(cset, k: int) -> np.ndarray:
    """True parameters of the ``k``-fibre voxels of ``cset`` in the kernel layout.

    (θ_i, φ_i, odi_i, icvf_i, a_i) per fibre then b, with S0 = 1: a_i = (1 − fiso) w_i,
    b = fiso.
    """
    rows = cset.n_fibres == k
    t = {name: v[rows] for name, v in cset.truth.items()}
    weights = np.stack([t[f"ffib_{i}"] for i in range(1, k + 1)], 1)
    weights = weights / weights.sum(1, keepdims=True)
    cols = []
    for i in range(k):
        angles = cartesian_to_angles(cset.directions[rows, i])
        cols += [angles[:, 0], angles[:, 1], t[f"odi_{i + 1}"], t[f"icvf_{i + 1}"],
                 (1 - t["fiso"]) * weights[:, i]]
    cols.append(t["fiso"])
    return np.column_stack(cols)


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
        ``{k: {"odi": (median, rms), "icvf": (median, rms)}}`` over voxels and fibres.
    """
    from ..fitting.noddi_fast import NoddiMixEngine
    from ..fitting.noddi_multi_kernel import signals

    e = NoddiMixEngine(noddi(), cset.acq)
    out = {}
    for k in counts:
        X = kernel_rows(cset, k)
        if X.shape[0] == 0:
            continue
        _, J = signals(X, k, e.bvals, e.bvecs, e.shell_start, e.qtab, e.dqtab, e.tautab,
                       e.dtautab, e.odi_nodes[0], e.step, e.d, e.b_iso, e.n_square, True)
        fisher = np.einsum("vpn,vqn->vpq", J, J) * cset.snr**2
        sd = np.sqrt(np.abs(np.einsum("vpp->vp", np.linalg.pinv(fisher, hermitian=True))))
        out[k] = {}
        for name, offset in (("odi", 2), ("icvf", 3)):
            s = sd[:, offset:5 * k:5].ravel()
            out[k][name] = (float(np.median(s)), float(np.sqrt(np.mean(s**2))))
    return out
