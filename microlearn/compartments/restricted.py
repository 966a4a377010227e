"""Restricted compartments without size: the Dot (stationary water)."""

from __future__ import annotations

import numpy as np

from .base import Compartment


class Dot(Compartment):
    """Fully restricted water: no attenuation at any b (E = 1)."""

    name = "dot"
    parameters = ()

    def signal(self, acq, *, batch_shape=()):
        """Ones of shape ``(*batch_shape, n)``."""
        return np.ones(tuple(batch_shape) + (acq.n_measurements,))
