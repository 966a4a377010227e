"""Spherical-mean (direction-averaged) compartments: orientation-free signals.

The mean of a compartment's signal over all gradient directions of a shell no longer
depends on its orientation or on the orientation distribution (Kaden et al. 2016).
For an axially symmetric tensor with diffusivities d∥ and d⊥,

    Ē(b) = exp(-b d⊥) · F(b (d∥ - d⊥)),   F(x) = √(π / 4x) · erf(√x),

with F(0) = 1 and, for x < 0 (an oblate tensor), F(x) = exp(-x) · Dawson(√-x) / √-x.
:class:`SphericalMeanStick` is the case d⊥ = 0. Ball, Dot and SphereGPD are isotropic
already, so their spherical mean is their signal.
"""

from __future__ import annotations

import numpy as np

from ..parameters import Parameter
from .base import D_PAR, D_PERP, Compartment, as_batch

D_RATIO = Parameter("d_ratio", "", (0.0, 1.0), 1.0, kind="other",
                    description="d⊥ / d∥ of the microscopic tensor (0: stick, 1: isotropic).")

#: Below this |x| the Taylor series of F is used (truncation error < 1e-14).
_SERIES_LIMIT = 1e-3


def erf_mean(x) -> np.ndarray:
    """F(x) = √(π/4x) erf(√x): the direction average of exp(-x cos²θ).

    Parameters
    ----------
    x : ndarray
        b · (d∥ - d⊥), dimensionless, any sign.

    Returns
    -------
    ndarray
        F(x), same shape as ``x``; F(0) = 1, smooth through x = 0.
    """
    x = np.asarray(x, dtype=float)
    ax = np.abs(x)
    small = ax < _SERIES_LIMIT
    safe = np.where(small, 1.0, ax)
    r = np.sqrt(safe)
    with np.errstate(over="ignore"):
        from scipy.special import dawsn, erf  # lazy: keeps `import microlearn` light
        pos = np.sqrt(np.pi) / 2.0 * erf(r) / r
        neg = dawsn(r) / r * np.exp(safe)
    series = 1.0 - x / 3.0 + x**2 / 10.0 - x**3 / 42.0
    return np.where(small, series, np.where(x > 0, pos, neg))


def spherical_mean_zeppelin_signal(bvals, d_par, d_perp):
    """Direction-averaged zeppelin: exp(-b d⊥) F(b (d∥ - d⊥)).

    Parameters
    ----------
    bvals : ndarray, shape (n,)
        b-values in s/m².
    d_par, d_perp : float or ndarray, shape (*batch,)
        Diffusivities along and across the fibre in m²/s.

    Returns
    -------
    ndarray, shape (*batch, n)
        Spherical-mean signal attenuation.
    """
    dpar, dperp = as_batch(d_par), as_batch(d_perp)
    return np.exp(-bvals * dperp) * erf_mean(bvals * (dpar - dperp))


def spherical_mean_stick_signal(bvals, d_par):
    """Direction-averaged stick: √(π / 4 b d∥) erf(√(b d∥)) (1 at b = 0).

    Parameters
    ----------
    bvals : ndarray, shape (n,)
        b-values in s/m².
    d_par : float or ndarray, shape (*batch,)
        Diffusivity along the stick in m²/s.

    Returns
    -------
    ndarray, shape (*batch, n)
        Spherical-mean signal attenuation.
    """
    return erf_mean(bvals * as_batch(d_par))


class SphericalMeanStick(Compartment):
    """Direction-averaged stick (any orientation distribution of zero-radius sticks)."""

    name = "sm_stick"
    parameters = (D_PAR,)
    #: Describes direction-averaged signals (fitted on powder averages).
    spherical_mean = True

    def signal(self, acq, *, d_par):
        """Spherical-mean stick signal (see :func:`spherical_mean_stick_signal`).

        Parameters
        ----------
        acq : Acquisition
            The measurements (b-values in s/m²; directions are not used).
        d_par : float or ndarray, shape (*batch,)
            Diffusivity along the stick in m²/s.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
        """
        return spherical_mean_stick_signal(acq.bvals, d_par)


class SphericalMeanZeppelin(Compartment):
    """Direction-averaged zeppelin (axially symmetric Gaussian diffusion)."""

    name = "sm_zeppelin"
    parameters = (D_PAR, D_PERP)
    #: Describes direction-averaged signals (fitted on powder averages).
    spherical_mean = True

    def signal(self, acq, *, d_par, d_perp):
        """Spherical-mean zeppelin signal (see :func:`spherical_mean_zeppelin_signal`).

        Parameters
        ----------
        acq : Acquisition
            The measurements (b-values in s/m²; directions are not used).
        d_par, d_perp : float or ndarray, shape (*batch,)
            Diffusivities along and across the fibre in m²/s.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
        """
        return spherical_mean_zeppelin_signal(acq.bvals, d_par, d_perp)


class SphericalMeanTensor(Compartment):
    """Direction-averaged microscopic tensor with d⊥ = r d∥, 0 <= r <= 1 (SMT).

    A prolate zeppelin by construction: at moderate b the spherical means of a prolate
    and an oblate tensor nearly coincide, so SMT (Kaden et al. 2016) keeps d⊥ <= d∥.
    """

    name = "sm_tensor"
    parameters = (D_PAR, D_RATIO)
    #: Describes direction-averaged signals (fitted on powder averages).
    spherical_mean = True

    def signal(self, acq, *, d_par, d_ratio):
        """Spherical-mean tensor signal: the zeppelin's with d⊥ = ``d_ratio`` · d∥.

        Parameters
        ----------
        acq : Acquisition
            The measurements (b-values in s/m²; directions are not used).
        d_par : float or ndarray, shape (*batch,)
            Diffusivity along the fibre in m²/s.
        d_ratio : float or ndarray, shape (*batch,)
            d⊥ / d∥ in [0, 1].

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
        """
        d_par = np.asarray(d_par, dtype=float)
        return spherical_mean_zeppelin_signal(acq.bvals, d_par, d_par * np.asarray(d_ratio))
