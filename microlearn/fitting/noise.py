"""Noise level (σ) from the b0 repeats, for the Rician noise-floor model."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


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
        σ in signal units (median over voxels of the unbiased b0 standard deviation),
        or None when there are fewer than 3 b0 volumes.
    """
    b0 = np.asarray(data)[:, acq.b0_mask]
    if b0.shape[1] < 3 or b0.shape[0] == 0:
        log.info("fewer than 3 b0 volumes: σ is not estimated, no Rician correction.")
        return None
    std = np.std(b0, axis=1, ddof=1)
    std = std[np.isfinite(std)]
    if std.size == 0:
        return None
    # the sample std of n Gaussians is biased low by c4(n)
    n = b0.shape[1]
    from scipy.special import gammaln

    c4 = np.sqrt(2.0 / (n - 1)) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2))
    return float(np.median(std) / c4)
