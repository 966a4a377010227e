"""The compartment protocol and shared parameter records.

A compartment is stateless: it declares its parameters (local names) and computes a
signal attenuation for a batch of parameter values on an :class:`Acquisition`.
Orientations reach ``signal`` as unit vectors of shape ``(*batch, 3)``.
"""

from __future__ import annotations

import numpy as np

from ..parameters import Parameter, orientation

D_BOUNDS = (0.1e-9, 3.5e-9)

D_PAR = Parameter("d_par", "m²/s", D_BOUNDS, 1e-9, kind="diffusivity",
                  description="Diffusivity along the fibre.", display_unit="µm²/ms")
D_PERP = Parameter("d_perp", "m²/s", (0.0, 3.0e-9), 1e-9, kind="diffusivity",
                   description="Diffusivity across the fibre.", display_unit="µm²/ms")
D_ISO = Parameter("d_iso", "m²/s", (0.1e-9, 3.5e-9), 1e-9, kind="diffusivity",
                  description="Isotropic diffusivity.", display_unit="µm²/ms")
DIAMETER = Parameter("diameter", "m", (0.1e-6, 20e-6), 1e-6, kind="length",
                     description="Axon (cylinder) diameter.", display_unit="µm")
ODI = Parameter("odi", "", (0.02, 0.98), 1.0, kind="dispersion",
                description="Orientation dispersion index of the Watson distribution "
                "(0 = parallel, 1 = isotropic).")
MU = orientation("mu")


class Compartment:
    """Base class: a named signal model with declared parameters.

    Subclasses set ``parameters`` (tuple of :class:`Parameter`, local names) and
    implement :meth:`signal`.
    """

    name = "compartment"
    parameters: tuple[Parameter, ...] = ()

    @property
    def parameter_names(self) -> list[str]:
        """Local parameter names."""
        return [p.name for p in self.parameters]

    @property
    def oriented(self) -> bool:
        """True when the compartment has an orientation parameter ``mu``."""
        return any(p.kind == "orientation" for p in self.parameters)

    def signal(self, acq, **params) -> np.ndarray:  # pragma: no cover - interface
        """Signal attenuation of a batch of parameter values.

        Parameters
        ----------
        acq : Acquisition
            The measurements: b-values in s/m², unit gradient directions, δ and Δ in s.
        params : ndarray
            The compartment's parameters by local name, each ``(*batch,)`` (SI units)
            or ``(*batch, 3)`` for orientations.

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
            Signal attenuation S/S0.
        """
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(self.parameter_names)})"


def cos_angle(bvecs: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Cosine between every gradient and the fibre.

    Parameters
    ----------
    bvecs : ndarray, shape (n, 3)
        Unit gradient directions.
    mu : ndarray, shape (*batch, 3)
        Unit fibre directions.

    Returns
    -------
    ndarray, shape (*batch, n)
        g·μ for every measurement.
    """
    return np.einsum("...k,nk->...n", np.asarray(mu, dtype=float), bvecs)


def as_batch(value) -> np.ndarray:
    """A scalar-or-array parameter with a trailing axis for measurements.

    Parameters
    ----------
    value : float or ndarray, shape (*batch,)

    Returns
    -------
    ndarray, shape (*batch, 1)
        ``value`` as float, ready to broadcast against ``(*batch, n)`` signals.
    """
    return np.asarray(value, dtype=float)[..., None]
