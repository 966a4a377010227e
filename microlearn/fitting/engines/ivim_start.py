"""Segmented start for IVIM: D from the high b-values, then f and D* by projection.

At b >= 200 s/mm² the perfusion signal has decayed (D* >= 5e-9 m²/s gives
exp(-b D*) <= 0.37), so a log-linear fit there gives D and the tissue intercept; f is the
share of the b0 signal the tissue does not explain, and D* is chosen on a grid by
variable projection with D fixed. This avoids the bi-exponential swap (two diffusion-like
pools) that traps joint fits on noisy data.
"""

from __future__ import annotations

import numpy as np

#: b-value (s/m²) above which the perfusion signal is ignored for the D estimate.
B_SPLIT = 200e6


def segmented_start(acq, y, d_star_grid):
    """Starting (d, d_star, f, s0) per voxel for the IVIM model.

    Parameters
    ----------
    acq : Acquisition
    y : ndarray, shape (V, N)
        Normalised signals.
    d_star_grid : ndarray, shape (G,)
        Pseudo-diffusivities to try, m²/s.

    Returns
    -------
    d, d_star, f, s0 : ndarray, shape (V,)
    """
    b = acq.bvals
    high = b >= B_SPLIT
    if high.sum() < 2:
        high = b >= np.median(b)
    # weighted log-linear fit (weights y², the inverse variance of log y), batched 2x2
    yh = np.clip(y[:, high], 1e-4, None)
    w = yh**2
    bh = b[high]
    logy = np.log(yh)
    sw, swb, swbb = w.sum(1), (w * bh).sum(1), (w * bh * bh).sum(1)
    swl, swbl = (w * logy).sum(1), (w * bh * logy).sum(1)
    det = sw * swbb - swb**2
    slope = (sw * swbl - swb * swl) / det
    d = np.clip(-slope, 1e-11, 3.5e-9)
    tissue = np.exp(-np.outer(d, b))  # (V, N)
    # with D fixed: y ≈ a·tissue + c·exp(-b D*), a, c >= 0, best D* on the grid
    from .search import nnls_two

    perf = np.exp(-np.outer(d_star_grid, b))[None]  # (1, G, N)
    a, c, sse = nnls_two(np.broadcast_to(tissue[:, None], (y.shape[0], d_star_grid.size,
                                                           b.size)),
                         np.broadcast_to(perf, (y.shape[0],) + perf.shape[1:]), y)
    best = np.argmin(sse, 1)
    rows = np.arange(y.shape[0])
    a, c = a[rows, best], c[rows, best]
    s0 = a + c
    f = np.where(s0 > 0, c / np.maximum(s0, 1e-30), 0.0)
    return d, d_star_grid[best], f, s0
