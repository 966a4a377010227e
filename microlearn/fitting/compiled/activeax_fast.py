"""Fast MIX for single-fibre ActiveAx: tabulated Van Gelderen coefficients, compiled fit.

Chosen automatically by ``fit(..., method="mix")`` for ``activeax(1)`` with fixed d∥ and
d_iso (see :meth:`ActiveAxMixEngine.applies`); both cores are used through numba threads.
Stage 1 scores a (diameter, icvf) grid per voxel with NNLS tissue/ball amplitudes on
floor-corrected data; stage 2 is a bounded Levenberg–Marquardt with the analytic Jacobian
on the Rician-floor model sqrt(S² + σ²). Both run twice, from the DTI orientation and
from the refined one, and the lower cost wins (the diameter profile has local minima).
The diameter is bounded below by ``min_diameter`` (see :class:`ActiveAxMixEngine`).
"""

from __future__ import annotations

import numpy as np
from numba import parallel_chunksize

from ...compartments.cylinder import van_gelderen_coefficient
from ..engines.base import LM_CRITERION, Engine
from .noddi_fast import PARALLEL_CHUNK

#: Spacing of the diameter table in m (cubic Hermite interpolation: error ~1e-13).
TABLE_STEP = 0.01e-6
#: Stage-1 grid: diameter spacing and top (m), intra-axonal fractions.
DIAMETER_STEP = 0.5e-6
DIAMETER_TOP = 15e-6
ICVF_GRID = np.linspace(0.05, 0.95, 10)


def fixed_activeax_diffusivities(model):
    """(d∥, d_iso) when ``model`` is single-fibre ActiveAx with fixed diffusivities.

    Returns None for any other model (other compartments, free or differing d∥, a free
    d⊥, several fibres).
    """
    if model.name != "activeax" or model.n_fibres != 1:
        return None
    if model.parameter_names != ["mu", "diameter", "icvf", "fiso"]:
        return None
    if [(n, type(c).__name__) for n, c in model.compartments] != [
            ("cylinder", "CylinderGPD"), ("zeppelin", "Zeppelin"), ("ball", "Ball")]:
        return None
    links = model.links
    fixed = [links.get(k) for k in ("cylinder.d_par", "zeppelin.d_par", "ball.d_iso")]
    if any(link is None or link.kind != "fixed" for link in fixed):
        return None
    perp = links.get("zeppelin.d_perp")
    if (perp is None or perp.kind != "tortuosity" or perp.source != "cylinder.d_par"
            or (perp.intra, perp.extra) != ("cylinder", "zeppelin")):
        return None
    if fixed[0].value != fixed[1].value:
        return None
    return float(fixed[0].value), float(fixed[2].value)


def timing_index(acq):
    """Distinct pulse timings of ``acq`` as the cylinder signal groups them.

    Returns
    -------
    delta, Delta : ndarray, shape (T,)
        Pulse duration and separation in s of each distinct timing.
    index : ndarray of int, shape (N,)
        Timing of every measurement.
    """
    shells = acq.shell_index
    first = np.array([np.flatnonzero(shells == k)[0] for k in range(shells.max() + 1)])
    pairs = np.stack([acq.delta[first], acq.Delta[first]], 1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    return uniq[:, 0], uniq[:, 1], inv.ravel()[shells].astype(np.int64)


class ActiveAxMixEngine(Engine):
    """MIX for ActiveAx with compiled kernels (grid search, analytic-Jacobian LM).

    Parameters
    ----------
    model : MultiCompartmentModel
        ``activeax()`` (see :meth:`applies`).
    acq : Acquisition
    max_iter : int
        Levenberg–Marquardt iterations per voxel.
    tol : float
        Stop when the cost decreases by less than this fraction.
    min_diameter : float, optional
        Smallest diameter in m that the search and the refinement consider; default the
        lower prior bound of the ``diameter`` parameter (1 µm). Below ~2 µm the cost is
        nearly flat in the diameter at G <= 300 mT/m (Cramér–Rao bound ~10 µm for a 1 µm
        axon at SNR 50), so an unconstrained fit drifts to the hard bound (0.1 µm) on
        noise; a voxel at ``min_diameter`` means "this small or smaller, unresolved".
    """

    name = "mix"
    REQUIRES = ("the built-in activeax(1): cylinder + tortuous zeppelin + ball with fixed, "
                "shared d∥ and fixed d_iso")
    convergence = LM_CRITERION
    threaded = True  # parallel over voxels with numba threads

    def __init__(self, model, acq, *, max_iter: int = 50, tol: float = 1e-6,
                 min_diameter: float | None = None, **kw):
        super().__init__(model, acq, n_candidates=1, max_iter=max_iter)
        from .activeax_kernel import van_gelderen_slope

        self.d, self.d_iso = fixed_activeax_diffusivities(model)
        self.tol = tol
        delta, Delta, self.tidx = timing_index(acq)
        param = model.parameters["diameter"]
        lo, hi = param.bounds
        self.min_diameter = float(np.clip(param.prior_bounds[0] if min_diameter is None
                                          else min_diameter, lo, hi))
        n = int(np.ceil((hi - lo) / TABLE_STEP)) + 1
        self.nodes = np.linspace(lo, hi, n)
        self.step = self.nodes[1] - self.nodes[0]
        self.ktab = np.ascontiguousarray(van_gelderen_coefficient(self.nodes, self.d, delta,
                                                                  Delta))
        self.dktab = np.ascontiguousarray(van_gelderen_slope(self.nodes, self.d, delta, Delta))
        top = min(hi, max(DIAMETER_TOP, self.min_diameter))
        self.diam_grid = np.arange(self.min_diameter, top + 1e-12, DIAMETER_STEP)
        self.kgrid = np.ascontiguousarray(van_gelderen_coefficient(self.diam_grid, self.d,
                                                                   delta, Delta))
        self.G2 = np.asarray(acq.G, dtype=float) ** 2
        self.b_iso = np.exp(-acq.bvals * self.d_iso)
        self.lower_k = np.array([-np.inf, -np.inf, self.min_diameter, 0.0, 0.0, 0.0])
        self.upper_k = np.array([np.inf, np.inf, hi, 1.0, 1.0, np.inf])
        self.scales_k = np.array([1.0, 1.0, param.scale, 1.0, 1.0, 1.0])

    @staticmethod
    def applies(model, acq) -> bool:
        """True when the compiled path is exact for ``model`` (on any acquisition)."""
        return ActiveAxMixEngine.why_not(model, acq) is None

    @staticmethod
    def why_not(model, acq) -> str | None:
        """Why this kernel cannot fit ``model`` on ``acq`` (None when it can)."""
        if getattr(model, "relaxation", None):
            return "the model has compartment T2"
        if acq.n_te > 1:
            return f"{acq.n_te} echo times (σ differs per measurement)"
        if fixed_activeax_diffusivities(model) is None:
            return ("the model is not the built-in activeax(1) with fixed, shared d∥ and "
                    "fixed d_iso")
        return None

    def kernel_args(self):
        """Acquisition and table arguments shared by the compiled kernels."""
        return (self.acq.bvals, self.G2, np.ascontiguousarray(self.acq.bvecs), self.tidx,
                self.ktab, self.dktab, self.nodes[0], self.step, self.d, self.b_iso)

    def fit_block(self, y, sigma=None, directions=None):
        """Fit normalised signals ``y`` (V, N); see :meth:`Engine.fit_block`."""
        from .activeax_kernel import fit_voxels

        sig = np.zeros(y.shape[0]) if sigma is None else np.asarray(sigma, dtype=float)
        theta, phi = self.start_angles(y, directions)
        with parallel_chunksize(PARALLEL_CHUNK):  # uneven voxel costs: small work chunks
            X, cost, converged = fit_voxels(
                np.ascontiguousarray(y, dtype=float), sig, theta, phi, *self.kernel_args(),
                self.diam_grid, self.kgrid, ICVF_GRID, self.lower_k, self.upper_k,
                self.scales_k, self.max_iter, self.tol)
        return self.finish(X, cost, converged)
