"""MIX / variable projection (Farooq et al. 2016), batched over voxels.

Stage 1 scores a grid of candidates for the nonlinear parameters (dispersion,
diameter, diffusivities, intra-axonal fraction) for every voxel at once, with the
orientation from DIPY's tensor fit (or given fibre directions) and the tissue/isotropic
split and S0 solved by non-negative least squares per candidate. Stage 2 refines all
parameters with a bounded Levenberg–Marquardt on the Rician-floor model
sqrt(S² + σ²).
"""

from __future__ import annotations

from .engine import Engine
from .lm import levenberg_marquardt


class MixEngine(Engine):
    """Global search + NNLS fractions + Levenberg–Marquardt refinement."""

    name = "mix"

    def refine(self, y, sigma, x0):
        return levenberg_marquardt(self.residual_function(y, sigma), x0, self.lower, self.upper,
                                   self.scales, max_iter=self.max_iter)
