"""Gaussian compartments: Ball, Zeppelin, Stick (and their pure signal kernels), and the
log-linear design of the full diffusion tensor (DTI)."""

from __future__ import annotations

import numpy as np

from .base import D_ISO, D_PAR, D_PERP, MU, Compartment, as_batch
from .series_kernel import zeppelin_on_gradients


def stick_signal(bvals, bvecs, mu, d_par):
    """Stick: E = exp(-b d∥ (g·μ)²).

    Parameters
    ----------
    bvals : ndarray, shape (n,)
        b-values in s/m².
    bvecs : ndarray, shape (n, 3)
        Unit gradient directions.
    mu : ndarray, shape (*batch, 3)
        Unit fibre directions.
    d_par : float or ndarray, shape (*batch,)
        Parallel diffusivity in m²/s.

    Returns
    -------
    ndarray, shape (*batch, n)
    """
    return zeppelin_on_gradients(bvals, bvecs, mu, d_par, 0.0)


def zeppelin_signal(bvals, bvecs, mu, d_par, d_perp):
    """Zeppelin (axially symmetric tensor): E = exp(-b [d⊥ + (d∥ - d⊥)(g·μ)²]).

    Parameters
    ----------
    bvals : ndarray, shape (n,)
        b-values in s/m².
    bvecs : ndarray, shape (n, 3)
        Unit gradient directions.
    mu : ndarray, shape (*batch, 3)
        Unit fibre directions.
    d_par : float or ndarray, shape (*batch,)
        Diffusivity along the fibre in m²/s.
    d_perp : float or ndarray, shape (*batch,)
        Diffusivity across the fibre in m²/s.

    Returns
    -------
    ndarray, shape (*batch, n)
        Signal attenuation S/S0.
    """
    return zeppelin_on_gradients(bvals, bvecs, mu, d_par, d_perp)


def ball_signal(bvals, d_iso):
    """Ball (isotropic Gaussian): E = exp(-b d_iso).

    Parameters
    ----------
    bvals : ndarray, shape (n,)
        b-values in s/m².
    d_iso : float or ndarray, shape (*batch,)
        Isotropic diffusivity in m²/s.

    Returns
    -------
    ndarray, shape (*batch, n)
        Signal attenuation S/S0.
    """
    return np.exp(-bvals * as_batch(d_iso))


class Stick(Compartment):
    """Zero-radius cylinder: diffusion only along ``mu``."""

    name = "stick"
    parameters = (MU, D_PAR)

    def signal(self, acq, *, mu, d_par):
        """Stick signal: exp(-b d∥ (g·μ)²).

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        mu : ndarray, shape (*batch, 3)
            Unit fibre directions.
        d_par : float or ndarray, shape (*batch,)
            Diffusivity along the fibre in m²/s.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return stick_signal(acq.bvals, acq.bvecs, mu, d_par)


class Zeppelin(Compartment):
    """Axially symmetric Gaussian diffusion (hindered extra-axonal space)."""

    name = "zeppelin"
    parameters = (MU, D_PAR, D_PERP)

    def signal(self, acq, *, mu, d_par, d_perp):
        """Zeppelin signal: exp(-b [d⊥ + (d∥ - d⊥)(g·μ)²]).

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        mu : ndarray, shape (*batch, 3)
            Unit fibre directions.
        d_par : float or ndarray, shape (*batch,)
            Diffusivity along the fibre in m²/s.
        d_perp : float or ndarray, shape (*batch,)
            Diffusivity across the fibre in m²/s.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return zeppelin_signal(acq.bvals, acq.bvecs, mu, d_par, d_perp)


class Ball(Compartment):
    """Isotropic free diffusion (CSF, or the IVIM tissue and perfusion pools)."""

    name = "ball"
    parameters = (D_ISO,)

    def signal(self, acq, *, d_iso):
        """Ball signal: exp(-b d_iso).

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        d_iso : float or ndarray, shape (*batch,)
            Isotropic diffusivity in m²/s.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return ball_signal(acq.bvals, d_iso)


def tensor_design(bvals, bvecs) -> np.ndarray:
    """DIPY's OLS tensor design matrix (``dipy.reconst.dti.design_matrix``), shape (N, 7).

    The signal of one Gaussian compartment with a full tensor D is log-linear,
    log S = log S0 - b gᵀDg: with this matrix X, ``log S = X @ [Dxx, Dxy, Dyy, Dxz, Dyz,
    Dzz, -log S0]`` (lower-triangular order, negated as in DIPY). Written out here
    because importing ``dipy.reconst.dti`` costs ~1-2 s (it pulls ``dipy.data`` and its
    fetchers) in every fresh process that starts a fit or a quality check.

    Parameters
    ----------
    bvals : ndarray, shape (N,)
        b-values in the unit the design is wanted in (DIPY uses s/mm²).
    bvecs : ndarray, shape (N, 3)
        Unit gradient directions.
    """
    b = np.asarray(bvals, dtype=float)
    g = np.asarray(bvecs, dtype=float)
    x, y, z = g[:, 0], g[:, 1], g[:, 2]
    return -np.stack([x * x * b, 2 * x * y * b, y * y * b, 2 * x * z * b, 2 * y * z * b,
                      z * z * b, np.ones_like(b)], axis=1)
