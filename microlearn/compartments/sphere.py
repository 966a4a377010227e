"""Impermeable sphere with the Gaussian-phase approximation (SphereGPD).

Restricted diffusion inside a sphere of radius R for a pulsed-gradient spin echo
(Murday & Cotts 1968; Balinov et al. 1993), the form used by dmipy's
``S4SphereGaussianPhaseApproximation`` and by AMICO's SANDI:

    ln E = -2 γ² G² Σ_m [2 a_m δ - 2 + 2 e^{-a_m δ} + 2 e^{-a_m Δ}
                         - e^{-a_m (Δ-δ)} - e^{-a_m (Δ+δ)}] / [D² α_m⁶ (R² α_m² - 2)],

with a_m = D α_m² and α_m R the positive roots of j₁'(x) = 0 (equivalently of
x J'_{3/2}(x) - ½ J_{3/2}(x) = 0). The sphere is isotropic: the signal depends on the
gradient strength and timings only, not on the gradient direction.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..parameters import Parameter
from ..units import GAMMA
from .base import D_BOUNDS, Compartment

#: Number of j₁' roots in the series: ln E within 3e-5 (relative) of 2000 roots for
#: diameters 0.5–40 µm, δ 1–40 ms, D 0.5–3 µm²/ms.
N_ROOTS = 24

SPHERE_DIAMETER = Parameter("diameter", "m", (0.2e-6, 40e-6), 1e-5, kind="length",
                            description="Sphere (soma) diameter.", display_unit="µm")
D_INTRA = Parameter("d_intra", "m²/s", D_BOUNDS, 1e-9, kind="diffusivity",
                    description="Diffusivity inside the sphere.", display_unit="µm²/ms")


@lru_cache(maxsize=4)
def sphere_roots(n: int = N_ROOTS) -> np.ndarray:
    """First ``n`` positive roots of the derivative of the spherical Bessel function j₁.

    Parameters
    ----------
    n : int
        Number of roots.

    Returns
    -------
    ndarray, shape (n,)
        Roots in ascending order (2.0815760, 5.9403700, 9.2058401, ...).
    """
    from scipy.optimize import brentq  # lazy: keeps `import microlearn` light
    from scipy.special import spherical_jn

    def djn(x):
        return spherical_jn(1, x, derivative=True)

    # consecutive roots are ~π apart; bracket on a grid finer than that
    x = np.arange(0.5, (n + 2) * np.pi, 0.05)
    v = djn(x)
    idx = np.flatnonzero(np.sign(v[:-1]) != np.sign(v[1:]))[:n]
    roots = np.array([brentq(djn, x[i], x[i + 1], xtol=1e-14) for i in idx])
    roots.setflags(write=False)
    return roots


def sphere_gpd_coefficient(diameter, d_intra, delta, Delta, n_roots: int = N_ROOTS):
    """Coefficient C with ln E = C · G² for a sphere (Murday & Cotts).

    Parameters
    ----------
    diameter : float or ndarray, shape (*batch,)
        Sphere diameter in m.
    d_intra : float or ndarray, shape (*batch,)
        Diffusivity inside the sphere in m²/s.
    delta, Delta : ndarray, shape (s,)
        Pulse duration and separation in s (one per shell or measurement).
    n_roots : int
        Terms of the series.

    Returns
    -------
    ndarray, shape (*batch, s)
        C in (m/T)², non-positive; tends to 0 as the diameter tends to 0.
    """
    radius = np.maximum(np.asarray(diameter, dtype=float)[..., None, None] / 2.0, 1e-12)
    d = np.asarray(d_intra, dtype=float)[..., None, None]
    delta = np.asarray(delta, dtype=float)[:, None]
    Delta = np.asarray(Delta, dtype=float)[:, None]
    alpha = sphere_roots(n_roots) / radius  # (*batch, 1, M)
    a = d * alpha**2
    e_d = np.exp(-a * delta)  # e^{-aΔ} = e_d e_g and e^{-a(Δ+δ)} = e_d² e_g: two exps
    e_g = np.exp(-a * (Delta - delta))
    num = 2 * a * delta - 2 + 2 * e_d + 2 * e_d * e_g - e_g - e_d * e_d * e_g
    den = d**2 * alpha**6 * (radius**2 * alpha**2 - 2.0)
    return -2.0 * GAMMA**2 * np.sum(num / den, axis=-1)


def _shell_firsts(acq) -> tuple[np.ndarray, np.ndarray]:
    shells = acq.shell_index
    cache = acq._cache
    if "shell_firsts" not in cache:
        first = np.array([np.flatnonzero(shells == k)[0] for k in range(shells.max() + 1)])
        cache["shell_firsts"] = first
    return shells, cache["shell_firsts"]


def sphere_signal(acq, diameter, d_intra):
    """SphereGPD signal, shape ``(*batch, n)``.

    The series is evaluated once per shell (δ, Δ) and gathered to the measurements.

    Parameters
    ----------
    acq : Acquisition
        The measurements; needs δ, Δ (s) and G (T/m) per measurement.
    diameter : float or ndarray, shape (*batch,)
        Sphere diameter in m.
    d_intra : float or ndarray, shape (*batch,)
        Diffusivity inside the sphere in m²/s.

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
        Signal attenuation S/S0 (1 at b = 0).
    """
    shells, first = _shell_firsts(acq)
    diameter, d_intra = np.broadcast_arrays(np.asarray(diameter, dtype=float),
                                            np.asarray(d_intra, dtype=float))
    weighted = acq.G[first] > 0  # b0 shells: no attenuation, no series
    coef = np.zeros(diameter.shape + (first.size,))
    coef[..., weighted] = sphere_gpd_coefficient(diameter, d_intra, acq.delta[first[weighted]],
                                                 acq.Delta[first[weighted]])
    return np.exp(coef[..., shells] * acq.G**2)


class SphereGPD(Compartment):
    """Impermeable sphere (soma) of finite diameter, Gaussian-phase approximation."""

    name = "sphere"
    parameters = (SPHERE_DIAMETER, D_INTRA)

    def signal(self, acq, *, diameter, d_intra):
        """SphereGPD signal (see :func:`sphere_signal`).

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², δ and Δ in s, G in T/m.
        diameter : float or ndarray, shape (*batch,)
            Sphere diameter in m.
        d_intra : float or ndarray, shape (*batch,)
            Diffusivity inside the sphere in m²/s.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return sphere_signal(acq, diameter, d_intra)
