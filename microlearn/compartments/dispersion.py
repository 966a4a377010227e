"""Watson orientation dispersion of sticks and zeppelins (NODDI, Zhang et al. 2012).

The Watson-dispersed stick uses the exact Legendre (Funk–Hecke) series

    E(g) = Σ_l a_l(b d∥) w_l(κ) P_l(g·μ),   l = 0, 2, 4, ...

where ``a_l(x) = (2l+1)/2 ∫ exp(-x t²) P_l(t) dt`` are the Legendre coefficients of the
stick kernel and ``w_l(κ) = E_W[P_l(t)]`` the Legendre moments of the Watson
distribution, computed from its even moments ``E[t^2k] = M(k+½, k+3/2, κ) /
((2k+1) M(½, 3/2, κ))``. The series is truncated where the terms fall below 1e-10.

The dispersed zeppelin is the Gaussian with the Watson-averaged tensor (the original
NODDI extra-neurite model).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.polynomial import legendre

from .base import D_PAR, D_PERP, MU, ODI, Compartment, cos_angle
from .series_kernel import even_series_on_gradients, zeppelin_on_gradients

#: Gauss–Legendre nodes used for the stick-kernel coefficients.
N_QUADRATURE = 96
#: Largest Legendre order ever used.
L_CAP = 60
#: Truncation tolerance of the series.
SERIES_TOL = 1e-8
#: Largest κ whose Watson moments are taken by quadrature (hyp1f1 above).
QUADRATURE_MAX_KAPPA = 64.0
#: Above this order the power basis loses precision; use the Legendre recurrence.
HORNER_MAX_ORDER = 26


def odi_to_kappa(odi):
    """Watson concentration κ from ODI = (2/π) arctan(1/κ).

    Parameters
    ----------
    odi : float or ndarray, shape (*batch,)
        Orientation dispersion index in [0, 1] (0: parallel, 1: isotropic).

    Returns
    -------
    ndarray, shape (*batch,)
        κ (dimensionless; ODI → 0 gives κ → ∞).
    """
    return 1.0 / np.tan(np.pi / 2.0 * np.asarray(odi, dtype=float))


def kappa_to_odi(kappa):
    """ODI = (2/π) arctan(1/κ) from the Watson concentration κ ≥ 0 (κ = 0 gives 1).

    Parameters
    ----------
    kappa : float or ndarray, shape (*batch,)
        Watson concentration κ ≥ 0 (dimensionless).

    Returns
    -------
    ndarray, shape (*batch,)
        Orientation dispersion index in [0, 1].
    """
    return 2.0 / np.pi * np.arctan2(1.0, np.asarray(kappa, dtype=float))


@lru_cache(maxsize=1)
def _gauss_legendre():
    return legendre.leggauss(N_QUADRATURE)


def watson_even_moments(kappa, kmax: int) -> np.ndarray:
    """E[t^(2k)], k = 0..kmax, of t = μ·n under a Watson distribution.

    Parameters
    ----------
    kappa : float or ndarray, shape (*batch,)
        Concentration (>= 0).
    kmax : int
        Highest moment index.

    Returns
    -------
    ndarray, shape (*batch, kmax + 1)
    """
    kappa = np.asarray(kappa, dtype=float)
    k = np.arange(kmax + 1)
    # Gauss–Legendre on [-1, 1] of t^2k exp(κ(t² - 1)): exact to ~1e-13 for κ <= 64 and
    # ten times cheaper than the confluent hypergeometric functions used above that.
    t, w = _gauss_legendre()
    weight = np.exp(kappa[..., None] * (t * t - 1.0)) * w  # (*batch, Q)
    out = weight @ (t[:, None] ** (2 * k))  # (*batch, K)
    out /= out[..., :1]
    big = kappa > QUADRATURE_MAX_KAPPA
    if np.any(big):
        kb = kappa[big][:, None]
        from scipy.special import hyp1f1  # lazy: keeps `import microlearn` light
        out[big] = hyp1f1(k + 0.5, k + 1.5, kb) / (2 * k + 1) / hyp1f1(0.5, 1.5, kb)
    return out


@lru_cache(maxsize=8)
def _legendre_power_coefficients(lmax: int) -> np.ndarray:
    """C[j, k]: P_{2j}(t) = Σ_k C[j, k] t^(2k)."""
    out = np.zeros((lmax // 2 + 1, lmax // 2 + 1))
    for j in range(lmax // 2 + 1):
        c = np.zeros(2 * j + 1)
        c[-1] = 1.0
        poly = legendre.leg2poly(c)
        out[j, : j + 1] = poly[::2]
    return out


def watson_legendre_moments(kappa, lmax: int) -> np.ndarray:
    """Legendre moments w_l = E_W[P_l(μ·n)] of a Watson distribution, even l ≤ lmax.

    Up to ``HORNER_MAX_ORDER`` taken as Σ_k C_lk E[t^2k] with the exact power
    coefficients of P_l (accurate to ~1e-7). Above it (b·d∥ ≳ 25, preclinical or
    Connectom b-values) the power basis cancels catastrophically (errors ~1e-2 at l = 40 and
    > 1 at l = 50, which made the signal jump with ODI and froze ODI at its start in
    every refinement), so the moments are integrated directly with the stable recurrence
    for P_l on Gauss–Legendre nodes (~1e-12 for κ ≤ 200, i.e. ODI ≥ 0.003).

    Parameters
    ----------
    kappa : float or ndarray, shape (*batch,)
        Watson concentration κ ≥ 0 (dimensionless).
    lmax : int
        Highest even order.

    Returns
    -------
    ndarray, shape (*batch, lmax // 2 + 1)
    """
    if lmax <= HORNER_MAX_ORDER:
        m = watson_even_moments(kappa, lmax // 2)
        return m @ _legendre_power_coefficients(lmax).T
    kappa = np.asarray(kappa, dtype=float)
    t, w = _gauss_legendre()
    weight = np.exp(kappa[..., None] * (t * t - 1.0)) * w  # (*batch, Q)
    return (weight @ _legendre_at_nodes(lmax)) / weight.sum(-1, keepdims=True)


@lru_cache(maxsize=8)
def _legendre_at_nodes(lmax: int) -> np.ndarray:
    """P_l (even l ≤ lmax) at the Gauss–Legendre nodes, shape (Q, lmax//2 + 1)."""
    out = legendre_even(_gauss_legendre()[0], lmax)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=8)
def _quadrature(lmax: int):
    t, w = _gauss_legendre()  # the same nodes, computed once per process
    ls = np.arange(0, lmax + 1, 2)
    p = np.stack([legendre.legval(t, np.eye(l + 1)[l]) for l in ls], axis=1)  # (Q, L)
    weights = w[:, None] * p * (2 * ls + 1) / 2.0
    return t, weights


def stick_legendre_coefficients(x, lmax: int) -> np.ndarray:
    """a_l(x) = (2l+1)/2 ∫_{-1}^{1} exp(-x t²) P_l(t) dt for even l <= lmax.

    Parameters
    ----------
    x : ndarray, shape (*s,)
        Dimensionless b·d∥.

    Returns
    -------
    ndarray, shape (*s, lmax//2 + 1)
    """
    t, weights = _quadrature(lmax)
    return np.exp(-np.asarray(x, dtype=float)[..., None] * t**2) @ weights


@lru_cache(maxsize=64)
def series_order(x_max: float) -> int:
    """Smallest even l such that all stick coefficients above it are < SERIES_TOL."""
    a = np.abs(stick_legendre_coefficients(np.array([x_max]), L_CAP))[0]
    above = np.flatnonzero(a > SERIES_TOL)
    return int(min(L_CAP, 2 * (above.max() + 1))) if above.size else 2


def legendre_even(c, lmax: int) -> np.ndarray:
    """Even Legendre polynomials P_0, P_2, ..., P_lmax by the three-term recurrence.

    Parameters
    ----------
    c : ndarray, shape (*s,)
        Arguments in [-1, 1] (cosines).
    lmax : int
        Highest even order.

    Returns
    -------
    ndarray, shape (*s, lmax // 2 + 1)
    """
    c = np.asarray(c, dtype=float)
    out = np.empty(c.shape + (lmax // 2 + 1,))
    p_prev, p = np.ones_like(c), c
    out[..., 0] = 1.0
    for l in range(1, lmax):
        p_prev, p = p, ((2 * l + 1) * c * p - l * p_prev) / (l + 1)
        if (l + 1) % 2 == 0:
            out[..., (l + 1) // 2] = p
    return out


def watson_stick_coefficients(bvals, d_par, kappa):
    """Series coefficients of the Watson-dispersed stick per distinct b-value.

    Parameters
    ----------
    bvals : ndarray, shape (u,)
        Distinct b-values in s/m².
    d_par : float or ndarray, shape (*batch,)
        Stick diffusivity in m²/s.
    kappa : float or ndarray, shape (*batch,)
        Watson concentration.

    Returns
    -------
    coef : ndarray, shape (*batch, u, L)
        Coefficients of the even Legendre polynomials P_0, P_2, ..., P_lmax.
    lmax : int
    """
    x = np.asarray(bvals, dtype=float) * np.asarray(d_par, dtype=float)[..., None]
    lmax = series_order(round(float(np.max(x)), 1) + 0.1 if x.size else 0.0)
    a = stick_legendre_coefficients(x, lmax)  # (*bd, u, L)
    w = watson_legendre_moments(kappa, lmax)  # (*bk, L)
    return a * w[..., None, :], lmax


def evaluate_even_legendre_series(coef, c, lmax):
    """Σ_j coef[..., j] P_2j(c) with coef ``(*batch, 1)``-broadcastable per column.

    Uses Horner's rule in c² on the power basis for low orders (fast) and the stable
    Legendre three-term recurrence for high orders.

    Parameters
    ----------
    coef : ndarray, shape (*batch, L)
        Coefficients of P_0, P_2, ..., P_lmax.
    c : ndarray, shape (*batch, m)
        Cosines g·μ.
    lmax : int
        Highest even order (``2 (L - 1)``).

    Returns
    -------
    ndarray, shape (*batch, m)
    """
    if lmax <= HORNER_MAX_ORDER:
        q = coef @ _legendre_power_coefficients(lmax)
        c2 = c * c
        out = np.empty(np.broadcast_shapes(c2.shape, q.shape[:-1] + (1,)))
        out[...] = q[..., -1:]
        for k in range(q.shape[-1] - 2, -1, -1):
            out *= c2
            out += q[..., k : k + 1]
        return out
    out = np.broadcast_to(coef[..., 0:1], c.shape).copy()
    p_prev, p = np.ones_like(c), c
    for l in range(1, lmax):
        p_prev, p = p, ((2 * l + 1) * c * p - l * p_prev) / (l + 1)
        if (l + 1) % 2 == 0:
            out += coef[..., (l + 1) // 2 : (l + 1) // 2 + 1] * p
    return out


def watson_stick_signal(acq, mu, d_par, kappa):
    """Watson-dispersed stick, shape ``(*batch, n)``.

    Parameters
    ----------
    acq : Acquisition
    mu : ndarray, shape (*batch, 3)
        Mean orientation (unit vectors).
    d_par : float or ndarray, shape (*batch,)
        Stick diffusivity in m²/s.
    kappa : float or ndarray, shape (*batch,)
        Watson concentration.

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
        Signal attenuation S/S0.
    """
    ub, which = np.unique(acq.bvals, return_inverse=True)
    coef, lmax = watson_stick_coefficients(ub, d_par, kappa)
    return even_series_on_gradients(coef, _legendre_power_coefficients(lmax), which,
                                    acq.bvecs, mu, lmax, lmax <= HORNER_MAX_ORDER)


def watson_stick_signal_legendre(acq, mu, d_par, kappa):
    """Reference evaluation of :func:`watson_stick_signal` in the Legendre basis (tests).

    Parameters
    ----------
    acq : Acquisition
        The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
    mu : ndarray, shape (*batch, 3)
        Unit fibre directions.
    d_par : float or ndarray, shape (*batch,)
        Diffusivity along the fibre in m²/s.
    kappa : float or ndarray, shape (*batch,)
        Watson concentration κ ≥ 0 (dimensionless).

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
        Signal attenuation S/S0.
    """
    ub, which = np.unique(acq.bvals, return_inverse=True)
    coef, lmax = watson_stick_coefficients(ub, d_par, kappa)
    p = legendre_even(cos_angle(acq.bvecs, mu), lmax)
    return np.einsum("...nl,...nl->...n", coef[..., which, :], p)


def watson_tensor_diffusivities(d_par, d_perp, kappa):
    """Watson-averaged zeppelin: effective (d∥', d⊥') in m²/s.

    D = d⊥ I + (d∥ - d⊥) E_W[n nᵀ] with E_W[n nᵀ] = τ μμᵀ + (1 - τ)/2 (I - μμᵀ),
    τ = E_W[(μ·n)²].

    Parameters
    ----------
    d_par : float or ndarray, shape (*batch,)
        Diffusivity along the fibre in m²/s.
    d_perp : float or ndarray, shape (*batch,)
        Diffusivity across the fibre in m²/s.
    kappa : float or ndarray, shape (*batch,)
        Watson concentration κ ≥ 0 (dimensionless).

    Returns
    -------
    d_par_eff, d_perp_eff : ndarray, shape (*batch,)
        Diffusivities of the averaged tensor along and across μ, in m²/s.
    """
    tau = watson_even_moments(kappa, 1)[..., 1]
    d_par = np.asarray(d_par, dtype=float)
    d_perp = np.asarray(d_perp, dtype=float)
    diff = d_par - d_perp
    return d_perp + diff * tau, d_perp + diff * (1.0 - tau) / 2.0


def watson_zeppelin_signal(acq, mu, d_par, d_perp, kappa):
    """Watson-dispersed zeppelin (the Watson-averaged tensor of NODDI).

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
    kappa : float or ndarray, shape (*batch,)
        Watson concentration κ ≥ 0 (dimensionless).

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
        Signal attenuation S/S0.
    """
    dpar_eff, dperp_eff = watson_tensor_diffusivities(d_par, d_perp, kappa)
    return zeppelin_on_gradients(acq.bvals, acq.bvecs, mu, dpar_eff, dperp_eff)


class WatsonStick(Compartment):
    """Sticks dispersed by a Watson distribution (NODDI intra-neurite)."""

    name = "watson_stick"
    parameters = (MU, D_PAR, ODI)

    def signal(self, acq, *, mu, d_par, odi):
        """Watson-dispersed stick signal.

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        mu : ndarray, shape (*batch, 3)
            Unit fibre directions.
        d_par : float or ndarray, shape (*batch,)
            Diffusivity along the fibre in m²/s.
        odi : float or ndarray, shape (*batch,)
            Orientation dispersion index in [0, 1] (0: parallel, 1: isotropic).

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return watson_stick_signal(acq, mu, d_par, odi_to_kappa(odi))


class WatsonZeppelin(Compartment):
    """Zeppelins dispersed by a Watson distribution (NODDI extra-neurite)."""

    name = "watson_zeppelin"
    parameters = (MU, D_PAR, D_PERP, ODI)

    def signal(self, acq, *, mu, d_par, d_perp, odi):
        """Watson-dispersed zeppelin signal.

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
        odi : float or ndarray, shape (*batch,)
            Orientation dispersion index in [0, 1] (0: parallel, 1: isotropic).

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return watson_zeppelin_signal(acq, mu, d_par, d_perp, odi_to_kappa(odi))


def watson(compartment: Compartment) -> Compartment:
    """The Watson-dispersed version of a Stick or Zeppelin.

    Parameters
    ----------
    compartment : Stick or Zeppelin

    Returns
    -------
    WatsonStick or WatsonZeppelin

    Raises
    ------
    ValueError
        For any other compartment.
    """
    from .gaussian import Stick, Zeppelin

    if isinstance(compartment, Stick):
        return WatsonStick()
    if isinstance(compartment, Zeppelin):
        return WatsonZeppelin()
    raise ValueError(
        f"Watson dispersion is available for Stick and Zeppelin, not {type(compartment).__name__}."
    )
