"""The data's own noise, so that training signals look like the data at predict time.

The rotation-invariant features are biased by noise (noise adds rotational power at every
order), and a network learns to undo that bias at the noise level it was trained at. Trained
at SNR 30 and applied to a scan at SNR 20, it reads the extra noise power as anisotropy:
on DIPY's ``small_101D`` the learned ODI median moved 0.237 -> 0.247 -> 0.256 for training
SNR 30 -> 24 -> 20 (MIX fit: 0.266; ``benchmarks`` in the learning report). So the training
signals are prepared as the data are:

* σ in signal units from the b0 repeats of each TE group, or — with a single b0, as in
  DIPY's shipped scans — from the residuals of the prior fits (``residual_rms`` of each
  fitted voxel times its b0, corrected for the fitted degrees of freedom, median over
  voxels);
* each training voxel gets the SNR (b0 / σ) of a data voxel drawn at random, so the spread
  of S0 across the data is in the training set too;
* with several echo times each TE group is scaled by that voxel's b0 ratio to the first
  TE before the noise is added, so after the per-TE b0 normalisation the long-TE
  measurements carry the larger relative noise they carry in the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Per-voxel SNRs are kept within these limits (a voxel of near-zero b0, or one where the
#: residual is below the noise by chance, must not dominate).
SNR_LIMITS = (3.0, 300.0)


@dataclass(frozen=True)
class NoiseProfile:
    """Per-voxel noise of a dataset, drawn from when simulating training signals.

    Attributes
    ----------
    snr : ndarray, shape (V,)
        b0 SNR (first TE group's b0 mean / σ) of the data voxels.
    te_scale : ndarray, shape (V, n_te)
        Each voxel's b0 mean of every TE group relative to the first (ones for one TE).
    sigma : float
        σ in signal units.
    source : str
        ``b0 repeats`` or ``fit residuals``.
    """

    snr: np.ndarray
    te_scale: np.ndarray
    sigma: float
    source: str

    def summary(self) -> dict:
        """JSON-ready: σ, its source and the SNR quartiles."""
        q = np.quantile(self.snr, [0.25, 0.5, 0.75])
        return {"sigma": float(self.sigma), "source": self.source,
                "snr_quartiles": [round(float(v), 2) for v in q], "n_voxels": int(self.snr.size)}

    def add_noise(self, clean, acq, rng) -> np.ndarray:
        """Rician noise on clean signals (S0 = 1) as in the data.

        Parameters
        ----------
        clean : ndarray, shape (n, N)
        acq : Acquisition
            The acquisition of the signals (its TE groups must match ``te_scale``).
        rng : numpy.random.Generator

        Returns
        -------
        ndarray, shape (n, N)
        """
        from ..simulate import add_noise

        rows = rng.integers(0, self.snr.size, len(clean))
        signal = np.asarray(clean, dtype=float)
        if self.te_scale.shape[1] > 1:
            signal = signal * self.te_scale[rows][:, acq.te_index]
        return add_noise(signal, 1.0, s0=1.0 / self.snr[rows], random_state=rng)


def noise_profile(acq, signals, *, sigma=None, residual_rms=None, n_free: int = 0):
    """The :class:`NoiseProfile` of raw data voxels.

    Parameters
    ----------
    acq : Acquisition
    signals : ndarray, shape (V, N)
        Raw signals of (a sample of) the data's voxels.
    sigma : float, optional
        σ in signal units when known (``--sigma``); otherwise from the b0 repeats.
    residual_rms : ndarray, shape (V,), optional
        RMS fit residual of each voxel relative to its b0 mean (fits without σ): the
        fallback when the b0s cannot give σ (fewer than 2 per TE).
    n_free : int
        Free parameters of those fits (S0 included), for the degrees-of-freedom correction.

    Returns
    -------
    NoiseProfile or None
        None when σ can be estimated neither way.
    """
    from ..data.voxels import b0_means, estimate_sigma_by_te, usable_voxels

    signals = np.asarray(signals, dtype=float)
    ok = usable_voxels(signals, acq)
    b0 = b0_means(signals, acq)
    source = "given"
    if sigma is None:
        sigma, source = estimate_sigma_by_te(signals[ok], acq), "b0 repeats"
    if sigma is None and residual_rms is not None:
        rms = np.asarray(residual_rms, dtype=float)
        n = acq.n_measurements
        dof = np.sqrt(n / max(n - int(n_free), 1))
        good = ok & np.isfinite(rms) & (rms > 0)
        if good.sum() >= 5:
            sigma, source = float(np.median(rms[good] * dof * b0[good, 0])), "fit residuals"
    if sigma is None or not float(sigma) > 0:
        return None
    snr = np.clip(b0[ok, 0] / float(sigma), *SNR_LIMITS)
    with np.errstate(invalid="ignore", divide="ignore"):
        te_scale = b0[ok] / b0[ok, :1]
    profile = NoiseProfile(snr=snr, te_scale=te_scale, sigma=float(sigma), source=source)
    log.info("data noise: %s", profile.summary())
    return profile
