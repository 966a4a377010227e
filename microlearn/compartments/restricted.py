"""Restricted compartments without size: the Dot (stationary water)."""

from __future__ import annotations

import numpy as np

from .base import Compartment


class Dot(Compartment):
    """Fully restricted water: no attenuation at any b (E = 1)."""

    name = "dot"
    parameters = ()

    def signal(self, acq, *, batch_shape=()):
        """No attenuation: ones.

        Parameters
        ----------
        acq : Acquisition
        batch_shape : tuple of int
            Batch shape of the result.

        Returns
        -------
        ndarray, shape (*batch_shape, n_measurements)
        """
        return np.ones(tuple(batch_shape) + (acq.n_measurements,))
