"""Compiled MIX for NODDI with 2 or 3 fibre populations (crossing voxels).

Chosen by ``fit(..., method="mix")`` for ``noddi(2)`` and ``noddi(3)`` with the standard
fixed diffusivities (the same condition as the single-fibre fast path). Stage 1 scores a
grid of (ODI, ICVF) shared by all fibres at the given (CSD peak) or tensor directions, with
the fibre and ball amplitudes from a small NNLS; stage 2 is Levenberg–Marquardt over all
parameters with the analytic Jacobian, on the Rician-floor model.
"""

from __future__ import annotations

import numpy as np
from numba import parallel_chunksize

from ...parameters import cartesian_to_angles
from .noddi_fast import (
    ICVF_GRID,
    ODI_GRID,
    PARALLEL_CHUNK,
    NoddiMixEngine,
)


class NoddiMultiMixEngine(NoddiMixEngine):
    """MIX for ``noddi(n)``, n = 2 or 3, with compiled kernels."""

    name = "mix"
    REQUIRES = "the built-in noddi(2) or noddi(3) with fixed, shared d∥ and d_iso"
    #: No fused quality pass for several fibres (the generic path computes the maps).
    quality_arrays = None

    def __init__(self, model, acq, *, max_iter: int = 60, tol: float = 1e-5, **kw):
        super().__init__(model, acq, max_iter=max_iter, tol=tol, **kw)
        nf = model.n_fibres
        lo_odi, hi_odi = model.parameters["odi_1"].bounds
        fibre_lo = [-np.inf, -np.inf, lo_odi, 0.0, 0.0]
        fibre_hi = [np.inf, np.inf, hi_odi, 1.0, np.inf]
        self.lower_m = np.array(fibre_lo * nf + [0.0])
        self.upper_m = np.array(fibre_hi * nf + [np.inf])

    @staticmethod
    def applies(model, acq) -> bool:
        """True for ``noddi(2)``/``noddi(3)`` with fixed diffusivities on a short series."""
        return NoddiMultiMixEngine.why_not(model, acq) is None

    @staticmethod
    def why_not(model, acq) -> str | None:
        """Why this kernel cannot fit ``model`` on ``acq`` (None when it can)."""
        n = getattr(model, "n_fibres", 0)
        if n not in (2, 3):
            return "the model does not have 2 or 3 fibre populations"
        return NoddiMixEngine.why_not(model, acq, n)

    def solve(self, y, sigma=None, directions=None, start=None):
        """Fit normalised signals ``y`` (V, N); see :meth:`NoddiMixEngine.solve`.

        ``start`` (V, 5 nf + 1), optional: kernel-layout starting points (θ, φ, odi, icvf,
        amplitude per fibre, then the ball amplitude) used instead of the grid search
        (rows starting with NaN use the grid).
        """
        from .noddi_multi_kernel import fit_voxels

        V = y.shape[0]
        nf = self.model.n_fibres
        dirs = self.initial_directions(y, directions)  # (V, nf, 3)
        angles = cartesian_to_angles(dirs.reshape(-1, 3)).reshape(V, nf, 2)
        sig = np.zeros(V) if sigma is None else np.asarray(sigma, dtype=float)
        with parallel_chunksize(PARALLEL_CHUNK):  # uneven voxel costs: small work chunks
            X, cost, converged = fit_voxels(
                np.ascontiguousarray(y[:, self.order], dtype=float), sig,
                np.ascontiguousarray(angles), nf, self.bvals, self.bvecs, self.shell_start,
                self.qtab, self.dqtab, self.tautab, self.dtautab, self.odi_nodes[0],
                self.step, self.d, self.b_iso, self.n_square, ODI_GRID, ICVF_GRID,
                self.lower_m, self.upper_m, self.max_iter, self.tol,
                np.zeros((0, 5 * nf + 1)) if start is None else np.ascontiguousarray(start))
        return self.pack_kernel(X), cost, converged

    def predict(self, X) -> np.ndarray:
        """Signals (V, N) in acquisition order of packed rows ``X`` (with S0) as returned
        by :meth:`solve`."""
        from .noddi_multi_kernel import signals

        S, _ = signals(self.kernel_rows(X), self.model.n_fibres, self.bvals, self.bvecs,
                       self.shell_start, self.qtab, self.dqtab, self.tautab, self.dtautab,
                       self.odi_nodes[0], self.step, self.d, self.b_iso, self.n_square, False)
        return self._unsort(S)

    def kernel_rows(self, X) -> np.ndarray:
        """Inverse of :meth:`pack_kernel`: packed parameters + S0 as kernel-layout rows."""
        nf = self.model.n_fibres
        vals = self.space.unpack(X[:, :-1])
        s0 = X[:, -1]
        tissue = s0 * (1.0 - vals["fiso"])
        out = np.empty((X.shape[0], 5 * nf + 1))
        for i in range(nf):
            k = i + 1
            out[:, 5 * i:5 * i + 2] = vals[f"mu_{k}"]
            out[:, 5 * i + 2] = vals[f"odi_{k}"]
            out[:, 5 * i + 3] = vals[f"icvf_{k}"]
            out[:, 5 * i + 4] = tissue * vals[f"ffib_{k}"]
        out[:, 5 * nf] = s0 * vals["fiso"]
        return out

    def pack_kernel(self, X) -> np.ndarray:
        """Kernel-layout rows (θ, φ, odi, icvf, a per fibre, then b) as packed
        parameters with S0 appended, shape (V, size + 1)."""
        nf = self.model.n_fibres
        amps = X[:, 4:5 * nf:5]
        ball = X[:, 5 * nf]
        tissue = amps.sum(1)
        s0 = tissue + ball
        values = {"fiso": np.where(s0 > 0, ball / np.maximum(s0, 1e-300), 1.0)}
        for i in range(nf):
            k = i + 1
            values[f"mu_{k}"] = X[:, 5 * i:5 * i + 2]
            values[f"odi_{k}"] = X[:, 5 * i + 2]
            values[f"icvf_{k}"] = X[:, 5 * i + 3]
            values[f"ffib_{k}"] = np.where(tissue > 0, amps[:, i] / np.maximum(tissue, 1e-300),
                                           1.0 / nf)
        return np.concatenate([self.space.pack(values), s0[:, None]], axis=1)
