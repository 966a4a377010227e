"""MIX / variable projection (Farooq et al. 2016), batched over voxels.

Stage 1 scores a grid of candidates for the nonlinear parameters (dispersion,
diameter, diffusivities, intra-axonal fraction) for every voxel at once, with the
orientation from DIPY's tensor fit (or given fibre directions) and the tissue/isotropic
split and S0 solved by non-negative least squares per candidate. Stage 2 refines all
parameters with a bounded Levenberg–Marquardt on the Rician-floor model
sqrt(S² + σ²).
"""

from __future__ import annotations

from .base import LM_CRITERION, Engine
from .lm import levenberg_marquardt


class MixEngine(Engine):
    """Global search + NNLS fractions + Levenberg–Marquardt refinement."""

    name = "mix"
    convergence = LM_CRITERION

    def refine(self, y, sigma, x0):
        residual, xr, lo, hi, scales, _, expand = self.reduced(y, sigma, x0)
        x, cost, ok = levenberg_marquardt(residual, xr, lo, hi, scales, max_iter=self.max_iter,
                                          tol=1e-5)
        return expand(x), cost, ok
