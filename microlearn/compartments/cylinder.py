"""Cylinder with the Van Gelderen Gaussian-phase approximation (CylinderGPD)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..units import GAMMA
from .base import D_PAR, DIAMETER, MU, Compartment, as_batch, cos_angle

#: Number of J1' roots in the Van Gelderen series.
N_ROOTS = 20


@lru_cache(maxsize=4)
def bessel_roots(n: int = N_ROOTS) -> np.ndarray:
    """First ``n`` positive roots of J1'(x)."""
    from scipy.special import jnp_zeros  # lazy: keeps `import microlearn` light
    return jnp_zeros(1, n)


def van_gelderen_coefficient(diameter, d_intra, delta, Delta, n_roots: int = N_ROOTS):
    """Coefficient C with ln E⊥ = C · G⊥² (Van Gelderen et al. 1994).

    Parameters
    ----------
    diameter : float or ndarray, shape (*batch,)
        Cylinder diameter in m.
    d_intra : float or ndarray, shape (*batch,)
        Intra-cylinder diffusivity in m²/s.
    delta, Delta : ndarray, shape (s,)
        Pulse duration and separation in s (one per shell or measurement).

    Returns
    -------
    ndarray, shape (*batch, s)
        C in (m/T)², non-positive.
    """
    radius = np.asarray(diameter, dtype=float)[..., None, None]
    d = np.asarray(d_intra, dtype=float)[..., None, None]
    delta = np.asarray(delta, dtype=float)[:, None]
    Delta = np.asarray(Delta, dtype=float)[:, None]
    radius = np.maximum(radius / 2.0, 1e-12)
    alpha = bessel_roots(n_roots) / radius  # (*batch, 1, M)
    a2d = d * alpha**2
    num = (2 * a2d * delta - 2 + 2 * np.exp(-a2d * delta) + 2 * np.exp(-a2d * Delta)
           - np.exp(-a2d * (Delta - delta)) - np.exp(-a2d * (Delta + delta)))
    den = d**2 * alpha**6 * (radius**2 * alpha**2 - 1.0)
    return -2.0 * GAMMA**2 * np.sum(num / den, axis=-1)


def cylinder_signal(acq, mu, d_par, diameter):
    """CylinderGPD signal, shape ``(*batch, n)``.

    The parallel part is a stick with ``d_par``; the perpendicular part uses the Van
    Gelderen GPD approximation with intra-axonal diffusivity ``d_par``, evaluated once
    per shell (δ, Δ) and gathered to measurements.

    Parameters
    ----------
    acq : Acquisition
        The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        Needs δ, Δ (s) and G (T/m) per measurement.
    mu : ndarray, shape (*batch, 3)
        Unit fibre directions.
    d_par : float or ndarray, shape (*batch,)
        Diffusivity along the fibre in m²/s.
    diameter : float or ndarray, shape (*batch,)
        Cylinder (axon) diameter in m.

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
        Signal attenuation S/S0.
    """
    c = cos_angle(acq.bvecs, mu)
    shells = acq.shell_index
    first = np.array([np.flatnonzero(shells == k)[0] for k in range(shells.max() + 1)])
    coef = van_gelderen_coefficient(diameter, d_par, acq.delta[first], acq.Delta[first])
    coef = coef[..., shells]
    g_perp2 = acq.G**2 * (1.0 - c**2)
    return np.exp(-acq.bvals * as_batch(d_par) * c**2 + coef * g_perp2)


class CylinderGPD(Compartment):
    """Impermeable cylinder of finite diameter (Gaussian phase approximation)."""

    name = "cylinder"
    parameters = (MU, D_PAR, DIAMETER)

    def signal(self, acq, *, mu, d_par, diameter):
        """CylinderGPD signal (see :func:`cylinder_signal`).

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        mu : ndarray, shape (*batch, 3)
            Unit fibre directions.
        d_par : float or ndarray, shape (*batch,)
            Diffusivity along the fibre in m²/s.
        diameter : float or ndarray, shape (*batch,)
            Cylinder diameter in m.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return cylinder_signal(acq, mu, d_par, diameter)
