"""Gaussian compartments: Ball, Zeppelin, Stick (and their pure signal kernels)."""

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
