"""Interior-point (log-barrier) engine for the bound-constrained fitting problem.

The same problem as MIX — bounds on every parameter, fractions in [0, 1] (so they sum to
at most one through the nested parameterisation) — solved from the same global-search
start by a batched log-barrier method with Gauss–Newton Hessians and a fraction-to-
boundary rule, so the iterates stay strictly feasible.
"""

from __future__ import annotations

import numpy as np

from .base import BARRIER_CRITERION, Engine
from .lm import interior_point


class InteriorPointEngine(Engine):
    """Global search, then a barrier interior-point refinement."""

    name = "interior-point"
    convergence = BARRIER_CRITERION

    def refine(self, y, sigma, x0):
        residual, xr, lo, hi, scales, free, expand = self.reduced(y, sigma, x0)
        bounded = (~self.orientation_mask & np.isfinite(self.upper))[free]
        x, cost, ok = interior_point(residual, xr, lo, hi, scales, bounded=bounded)
        return expand(x), cost, ok
