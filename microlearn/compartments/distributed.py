"""Gamma-distributed cylinders (AxCaliber: Assaf et al., MRM 2008).

A voxel's axons do not share one diameter: AxCaliber describes them by a gamma
distribution of diameters and sums CylinderGPD (Van Gelderen) signals over it, each
cylinder weighted by its cross-section (∝ d², the volume of water it holds):

    E(q) = ∫ d² p(d) E_cyl(q; d) dd / ∫ d² p(d) dd,   p = Gamma(k, θ), mean k θ.

The d²-weighted gamma density is again a gamma density, Gamma(k + 2, θ), so the integral
is a mean over its quantiles: ``N_NODES`` diameters at the mid-point quantiles of
Gamma(k + 2, θ), equally weighted (no per-voxel loop, and exact for k → ∞ where every
node is the mean diameter). The parallel signal (a stick) is common to all diameters.

Parameters are the **number-weighted** mean diameter (the mean of p, what histology
counts) and the gamma shape k (coefficient of variation 1/√k). The volume-weighted mean,
what a single-diameter fit such as ActiveAx tends to report, is mean · (k + 2)/k.
"""

from __future__ import annotations

import numpy as np

from ..parameters import Parameter
from .base import D_PAR, MU, Compartment, as_batch, cos_angle
from .cylinder import van_gelderen_coefficient

#: Quantile nodes of the d²-weighted diameter distribution.
N_NODES = 24
#: Diameter grid (m, log-spaced) of the tabulated Van Gelderen coefficient.
TABLE_DIAMETERS = np.geomspace(1e-8, 1e-4, 801)

DIAMETER_MEAN = Parameter(
    "diameter_mean", "m", (0.1e-6, 20e-6), 1e-6, kind="length",
    description="Mean axon diameter of the gamma distribution (number-weighted, as "
    "histology counts); trust it only where `microlearn plan` says the protocol resolves "
    "it.", display_unit="µm", prior_bounds=(0.5e-6, 8e-6))
DIAMETER_SHAPE = Parameter(
    "diameter_shape", "", (1.0, 50.0), 10.0, kind="other",
    description="Shape k of the gamma distribution of diameters (coefficient of variation "
    "1/√k: k = 4 is a spread of 50 %, large k a single diameter).",
    prior_bounds=(2.0, 20.0))


def gamma_nodes(diameter_mean, shape, n_nodes: int = N_NODES) -> np.ndarray:
    """Diameters at the mid-point quantiles of the d²-weighted gamma distribution.

    Parameters
    ----------
    diameter_mean : float or ndarray, shape (*batch,)
        Number-weighted mean diameter in m.
    shape : float or ndarray, shape (*batch,)
        Gamma shape k (> 0).
    n_nodes : int
        Quantile nodes.

    Returns
    -------
    ndarray, shape (*batch, n_nodes)
        Diameters in m; their plain mean approximates a d²-weighted average.
    """
    from scipy.special import gammaincinv  # lazy: keeps `import microlearn` light

    mean, k = np.broadcast_arrays(np.asarray(diameter_mean, dtype=float),
                                  np.asarray(shape, dtype=float))
    k = np.maximum(k, 1e-3)
    u = (np.arange(n_nodes) + 0.5) / n_nodes
    theta = mean / k  # gamma scale: mean = k θ
    return gammaincinv((k + 2.0)[..., None], u) * theta[..., None]


def gamma_cylinders_signal(acq, mu, d_par, diameter_mean, diameter_shape,
                           n_nodes: int = N_NODES):
    """Signal of gamma-distributed CylinderGPDs, volume-weighted, shape ``(*batch, n)``.

    Parameters
    ----------
    acq : Acquisition
        Needs δ, Δ (s) and G (T/m) per measurement.
    mu : ndarray, shape (*batch, 3)
        Unit fibre directions.
    d_par : float or ndarray, shape (*batch,)
        Intra-axonal diffusivity (along the axons and inside them) in m²/s.
    diameter_mean : float or ndarray, shape (*batch,)
        Number-weighted mean diameter in m.
    diameter_shape : float or ndarray, shape (*batch,)
        Gamma shape k.
    n_nodes : int
        Quantile nodes of the diameter distribution.

    Returns
    -------
    ndarray, shape (*batch, n_measurements)
        Signal attenuation S/S0.
    """
    c = cos_angle(acq.bvecs, mu)
    shells = acq.shell_index
    first = np.array([np.flatnonzero(shells == k)[0] for k in range(shells.max() + 1)])
    nodes = gamma_nodes(diameter_mean, diameter_shape, n_nodes)  # (*batch, Q)
    d_in = np.asarray(d_par, dtype=float)
    if d_in.size and np.all(d_in == d_in.flat[0]):  # one d∥ (fixed): a table per shell
        coef = _tabulated(nodes, float(d_in.flat[0]), acq.delta[first], acq.Delta[first])
    else:
        coef = van_gelderen_coefficient(nodes, d_in[..., None], acq.delta[first],
                                        acq.Delta[first])
    # (*batch, Q, shells) -> the perpendicular attenuation of every node per measurement
    g_perp2 = acq.G**2 * (1.0 - c**2)  # (*batch, n)
    perp = np.exp(coef[..., shells] * g_perp2[..., None, :]).mean(axis=-2)
    return np.exp(-acq.bvals * as_batch(d_par) * c**2) * perp


def _tabulated(diameters, d_par, delta, Delta):
    """Van Gelderen coefficients (*batch, shells) interpolated in log-log from a table over
    ``TABLE_DIAMETERS`` (relative error < 1e-4 against the series, see the tests)."""
    table = van_gelderen_coefficient(TABLE_DIAMETERS, d_par, delta, Delta)  # (grid, S)
    log_d = np.log(np.clip(diameters, TABLE_DIAMETERS[0], TABLE_DIAMETERS[-1]))
    log_c = np.log(np.maximum(-table, 1e-300))
    out = np.stack([np.interp(log_d, np.log(TABLE_DIAMETERS), log_c[:, s])
                    for s in range(table.shape[1])], axis=-1)
    # below the grid the coefficient scales as d⁴ (the short-pulse limit of a thin cylinder)
    small = np.asarray(diameters)[..., None] < TABLE_DIAMETERS[0]
    scale = np.where(small, (np.asarray(diameters)[..., None] / TABLE_DIAMETERS[0]) ** 4, 1.0)
    return -np.exp(out) * scale


class GammaCylinders(Compartment):
    """Impermeable cylinders with gamma-distributed diameters (AxCaliber), d²-weighted."""

    name = "gamma_cylinders"
    parameters = (MU, D_PAR, DIAMETER_MEAN, DIAMETER_SHAPE)

    def signal(self, acq, *, mu, d_par, diameter_mean, diameter_shape):
        """Gamma-distributed CylinderGPD signal (see :func:`gamma_cylinders_signal`).

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s,
            G in T/m.
        mu : ndarray, shape (*batch, 3)
            Unit fibre directions.
        d_par : float or ndarray, shape (*batch,)
            Intra-axonal diffusivity in m²/s.
        diameter_mean : float or ndarray, shape (*batch,)
            Number-weighted mean diameter in m.
        diameter_shape : float or ndarray, shape (*batch,)
            Gamma shape k (coefficient of variation 1/√k).

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        return gamma_cylinders_signal(acq, mu, d_par, diameter_mean, diameter_shape)


__all__ = ["DIAMETER_MEAN", "DIAMETER_SHAPE", "GammaCylinders", "gamma_cylinders_signal",
           "gamma_nodes"]
