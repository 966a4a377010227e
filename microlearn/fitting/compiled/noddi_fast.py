"""Fast MIX for single-fibre NODDI: tabulated Watson series + compiled grid search and LM.

The engine is chosen automatically by ``fit(..., method="mix")`` for ``noddi(1)`` with the
standard fixed diffusivities when the acquisition's b·d∥ keeps the power-basis series
short (e.g. HCP); otherwise the generic MIX engine runs. Both cores are used through
numba threads.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...compartments.dispersion import (
    HORNER_MAX_ORDER,
    _legendre_power_coefficients,
    odi_to_kappa,
    series_order,
    stick_legendre_coefficients,
    watson_even_moments,
    watson_legendre_moments,
)
from ..engines.base import BARRIER_CRITERION, LM_CRITERION, Engine
from .noddi_kernel import exp_squarings

#: Points of the ODI table.
ODI_TABLE = 2049
ODI_GRID = np.linspace(0.03, 0.9, 6)
#: Voxels per work chunk of the compiled parallel loops (dynamic load balancing).
PARALLEL_CHUNK = 32
ICVF_GRID = np.linspace(0.05, 0.95, 6)


def noddi_parameter_names(n_fibres: int) -> list[str]:
    """Free parameters of the built-in ``noddi(n_fibres)`` (n ≥ 1), in packing order."""
    if n_fibres == 1:
        return ["mu", "odi", "icvf", "fiso"]
    rng = range(1, n_fibres + 1)
    return ([n for i in rng for n in (f"mu_{i}", f"odi_{i}")] + [f"icvf_{i}" for i in rng]
            + [f"ffib_{i}" for i in rng] + ["fiso"])


def fixed_noddi_diffusivities(model, n_fibres: int = 1):
    """(d∥, d_iso) when ``model`` is the built-in ``noddi(n_fibres)`` with fixed, shared
    diffusivities (the compiled kernels' model), else None."""
    if model.name != ("noddi" if n_fibres == 1 else f"noddi{n_fibres}"):
        return None
    if getattr(model, "n_fibres", None) != n_fibres:
        return None
    if model.parameter_names != noddi_parameter_names(n_fibres):
        return None
    links = model.links
    sfx = [""] if n_fibres == 1 else [f"_{i}" for i in range(1, n_fibres + 1)]
    try:
        d = links[f"stick{sfx[0]}.d_par"].value
        d_iso = links["ball.d_iso"].value
        fixed = [links[f"{c}{x}.d_par"] for x in sfx for c in ("stick", "zeppelin")]
        tortuous = [links[f"zeppelin{x}.d_perp"].kind == "tortuosity" for x in sfx]
    except KeyError:
        return None
    if links["ball.d_iso"].kind != "fixed" or not all(tortuous):
        return None
    if any(link.kind != "fixed" or link.value != d for link in fixed):
        return None
    return d, d_iso


@lru_cache(maxsize=16)
def series_tables(x: tuple, lo_odi: float, hi_odi: float):
    """Watson-stick series tables on the ODI grid, cached per acquisition and d∥.

    Parameters
    ----------
    x : tuple of float
        b·d∥ of every distinct b-value (dimensionless).
    lo_odi, hi_odi : float
        ODI range of the table (``ODI_TABLE`` points).

    Returns
    -------
    qtab, dqtab : ndarray, shape (G, U, K)
        Power-basis coefficients in c² per ODI node and distinct b, and their ODI slopes.
    tautab, dtautab : ndarray, shape (G,)
        Watson ⟨(μ·n)²⟩ per node (the zeppelin's averaged tensor) and its slope.
    """
    x = np.asarray(x)
    nodes = np.linspace(lo_odi, hi_odi, ODI_TABLE)
    step = nodes[1] - nodes[0]
    lmax = series_order(round(float(np.max(x)), 1) + 0.1)
    kappa = odi_to_kappa(nodes)
    coef = stick_legendre_coefficients(x, lmax)[None] * watson_legendre_moments(
        kappa, lmax)[:, None, :]
    q = np.ascontiguousarray(coef @ _legendre_power_coefficients(lmax))  # (G, U, K)
    tau = watson_even_moments(kappa, 1)[:, 1]
    tables = (q, np.ascontiguousarray(np.gradient(q, step, axis=0)), tau,
              np.gradient(tau, step))
    for t in tables:
        t.setflags(write=False)
    return tables


class NoddiMixEngine(Engine):
    """MIX for NODDI with compiled kernels (grid search, analytic-Jacobian LM)."""

    name = "mix"
    REQUIRES = ("the built-in noddi(1): Watson stick + tortuous Watson zeppelin + ball with "
                "fixed, shared d∥ and fixed d_iso (any values)")
    convergence = LM_CRITERION
    threaded = True  # parallel over voxels with numba threads

    def __init__(self, model, acq, *, max_iter: int = 50, tol: float = 1e-5, **kw):
        super().__init__(model, acq, n_candidates=1, max_iter=max_iter)
        self.d, self.d_iso = fixed_noddi_diffusivities(model, model.n_fibres)
        self.tol = tol
        ub, uidx = np.unique(acq.bvals, return_inverse=True)
        # measurements sorted by shell: contiguous shell ranges for the compiled loops
        self.order = np.argsort(uidx.ravel(), kind="stable")
        counts = np.bincount(uidx.ravel(), minlength=ub.size)
        self.shell_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.bvals = np.ascontiguousarray(acq.bvals[self.order])
        self.bvecs = np.ascontiguousarray(acq.bvecs[self.order].T)
        lo_odi, hi_odi = model.parameters["odi" if model.n_fibres == 1 else "odi_1"].bounds
        self.odi_nodes = np.linspace(lo_odi, hi_odi, ODI_TABLE)
        self.step = self.odi_nodes[1] - self.odi_nodes[0]
        self.qtab, self.dqtab, self.tautab, self.dtautab = series_tables(
            tuple(ub * self.d), lo_odi, hi_odi)
        self.b_iso = np.exp(-self.bvals * self.d_iso)
        self.n_square = exp_squarings(float(np.max(acq.bvals)) * self.d)
        self.lower_k = np.array([-np.inf, -np.inf, lo_odi, 0.0, 0.0, 0.0])
        self.upper_k = np.array([np.inf, np.inf, hi_odi, 1.0, 1.0, np.inf])

    @staticmethod
    def applies(model, acq) -> bool:
        """True when the fast path is exact for ``model`` on ``acq``."""
        return NoddiMixEngine.why_not(model, acq) is None

    @staticmethod
    def why_not(model, acq, n_fibres: int = 1) -> str | None:
        """Why this kernel cannot fit ``model`` on ``acq`` (None when it can)."""
        if getattr(model, "relaxation", None):
            return "the model has compartment T2"
        if acq.n_te > 1:
            return f"{acq.n_te} echo times (σ differs per measurement)"
        fixed = fixed_noddi_diffusivities(model, n_fibres)
        if fixed is None:
            return (f"the model is not the built-in noddi({n_fibres}) with fixed, shared d∥ "
                    "and fixed d_iso")
        x = float(np.max(acq.bvals)) * fixed[0]
        order = series_order(round(x, 1) + 0.1)
        if order > HORNER_MAX_ORDER:
            return (f"b_max·d∥ = {x:.1f} needs a Watson series of order {order} > "
                    f"{HORNER_MAX_ORDER} (its power basis is unstable there)")
        return None

    def fit_block(self, y, sigma=None, directions=None):
        return self.finish(*self.solve(y, sigma, directions))

    def solve(self, y, sigma=None, directions=None):
        """Fit normalised signals ``y`` (V, N) and keep the costs.

        Returns
        -------
        X : ndarray, shape (V, size + 1)
            Packed parameters with S0 (relative to the normalisation) appended.
        cost : ndarray, shape (V,)
            Σ (sqrt(S² + σ²) − y)² at the solution (normalised units; plain SSE where σ = 0).
        converged : ndarray of bool, shape (V,)
        """
        sig = np.zeros(y.shape[0]) if sigma is None else np.asarray(sigma, dtype=float)
        theta, phi = self.start_angles(y, directions)
        from numba import parallel_chunksize

        # voxels cost 1-2 passes: hand them out in small chunks so both threads finish together
        with parallel_chunksize(PARALLEL_CHUNK):
            return self._solve(np.ascontiguousarray(y[:, self.order], dtype=float), sig,
                               theta, phi)

    def predict(self, X) -> np.ndarray:
        """Signals (V, N) in acquisition order of rows ``X`` as returned by :meth:`solve`
        (the compiled model the kernels fit)."""
        from .noddi_kernel import signals

        S, _ = signals(np.ascontiguousarray(X, dtype=float), *self._tables()[:12], False)
        return self._unsort(S)

    def quality_arrays(self, params, s0, y, sigma):
        """``residual_rms`` and Cramér–Rao std of fitted voxels in one compiled pass.

        The same maps as the numpy path of :func:`microlearn.fitting.quality.quality_maps`
        (see :mod:`.noddi_quality`), for voxels with finite parameters.

        Parameters
        ----------
        params : ndarray, shape (V, size)
        s0 : ndarray, shape (V,)
            Relative S0.
        y : ndarray, shape (V, N)
            Normalised signals (acquisition order).
        sigma : ndarray, shape (V, N) or (V, 1), or None
            Normalised σ (one value per voxel is used: the compiled engines fit one TE).

        Returns
        -------
        rms : ndarray, shape (V,)
        std : dict of str to ndarray, shape (V,)
            ``mu`` (angular, rad), ``odi``, ``icvf``, ``fiso`` and ``s0``.
        """
        from ..uncertainty import MAX_CONDITION, SNR_TABLE_MAX, _factor_table
        from .noddi_quality import quality_voxels

        X = np.ascontiguousarray(np.concatenate([params, s0[:, None]], axis=1), dtype=float)
        sig = (np.full(len(X), np.nan) if sigma is None
               else np.ascontiguousarray(np.asarray(sigma, dtype=float)[:, 0]))
        from numba import parallel_chunksize

        with parallel_chunksize(PARALLEL_CHUNK):
            rms, var = quality_voxels(
                np.ascontiguousarray(y, dtype=float), self.order, sig, X, sigma is None,
                *self._tables()[:12], _factor_table()[1], SNR_TABLE_MAX, MAX_CONDITION)
        theta = X[:, 0]
        std = {"mu": np.sqrt(var[:, 0] + np.sin(theta) ** 2 * var[:, 1])}
        for k, name in enumerate(("odi", "icvf", "fiso", "s0"), start=2):
            std[name] = np.sqrt(var[:, k])
        return rms, std

    def _unsort(self, S):
        out = np.empty_like(S)
        out[:, self.order] = S
        return out

    def _tables(self):
        """The acquisition and series tables, in the kernels' argument order."""
        return (self.bvals, self.bvecs, self.shell_start, self.qtab, self.dqtab, self.tautab,
                self.dtautab, self.odi_nodes[0], self.step, self.d, self.b_iso, self.n_square,
                ODI_GRID, ICVF_GRID, self.lower_k, self.upper_k)

    def _solve(self, y, sigma, theta, phi):
        """Stage 1 + Levenberg–Marquardt; returns X (V, 6), cost (V,), converged (V,)."""
        from .noddi_kernel import fit_voxels

        return fit_voxels(y, sigma, theta, phi, *self._tables(), self.max_iter, self.tol)


class NoddiInteriorPointEngine(NoddiMixEngine):
    """The same grid search, then a compiled log-barrier interior-point refinement.

    ODI, ICVF and FISO carry the barrier (their iterates stay strictly inside the
    bounds); μ decreases over ``MU_LEVELS`` (relative to the start's cost).
    """

    name = "interior-point"
    convergence = BARRIER_CRITERION
    #: Barrier weights relative to the starting cost, one Newton loop each.
    MU_LEVELS = 10.0 ** -np.array([3.0, 5.0, 7.0])

    def _solve(self, y, sigma, theta, phi):
        from .noddi_kernel import fit_voxels_barrier

        bounded = np.array([False, False, True, True, True, False])
        return fit_voxels_barrier(y, sigma, theta, phi, *self._tables(), bounded,
                                  self.MU_LEVELS, 6, 1e-6)
