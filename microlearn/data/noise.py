"""Noise level (σ) from the b0 repeats, for the Rician noise-floor model."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

#: How :func:`estimate_sigma` works, as recorded in ``fit.json``.
SIGMA_METHOD = ("b0 repeats: median over voxels of the per-voxel sample std (n-1 dof), "
                "divided by the median of a chi distribution with n-1 dof (unbiased for n b0s)")


def median_std_factor(n_b0: int) -> float:
    """Median of the sample standard deviation of ``n_b0`` Gaussians with σ = 1.

    ``(n - 1) s² / σ²`` follows χ² with ``n - 1`` degrees of freedom, so the median of ``s``
    is ``σ · sqrt(median(χ²_{n-1}) / (n - 1))``; dividing the median of ``s`` over voxels
    by this factor gives an unbiased σ for any number of b0s (≈ 0.67 for 2 b0s, 0.83 for 3,
    0.98 for 20).

    Parameters
    ----------
    n_b0 : int
        Number of b0 measurements per voxel (at least 2).
    """
    from scipy.special import gammaincinv  # median(χ²_k) = 2 P⁻¹(k/2, 1/2); scipy.stats
    # gives the same number but importing it costs ~1 s in every fresh command (issue 16)

    dof = n_b0 - 1
    return float(np.sqrt(2.0 * gammaincinv(dof / 2.0, 0.5) / dof))


def estimate_sigma(data, acq) -> float | None:
    """Pooled noise standard deviation from repeated b0 measurements.

    Parameters
    ----------
    data : ndarray, shape (V, N)
        Raw signals of brain voxels.
    acq : Acquisition

    Returns
    -------
    float or None
        σ in signal units (see :data:`SIGMA_METHOD`), or None when there are fewer than 2
        b0 volumes.
    """
    b0 = np.asarray(data)[:, acq.b0_mask]
    if b0.shape[1] < 2 or b0.shape[0] == 0:
        log.info("fewer than 2 b0 volumes: σ is not estimated, no Rician correction.")
        return None
    std = np.std(b0, axis=1, ddof=1)
    std = std[np.isfinite(std)]
    if std.size == 0:
        return None
    return float(np.median(std) / median_std_factor(b0.shape[1]))
