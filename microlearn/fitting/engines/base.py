"""Shared machinery of the fitting engines: parameter vectors with S0, starts, residuals."""

from __future__ import annotations

import numpy as np

from ...models.registry import uses_segmented_start
from ...parameters import angles_to_cartesian, cartesian_to_angles
from .search import (
    CandidateTable,
    min_length_bound,
    nnls_two,
    outer_fraction_name,
    search_names,
    tensor_directions,
)

#: Voxels per stage-1 sub-block (keeps the (V, C, N) candidate arrays small).
SEARCH_BLOCK = 48
#: Convergence criterion of the Levenberg–Marquardt refinements (generic and compiled).
LM_CRITERION = ("Levenberg-Marquardt: an accepted step lowered the cost by less than its "
                "relative tolerance, or no damped step lowered it (stationary point), within "
                "max_iter iterations")
#: Convergence criterion of the interior-point refinements (generic and compiled).
BARRIER_CRITERION = ("log-barrier interior point: at the smallest barrier weight a Newton "
                     "step below 1e-6, a relative merit decrease below 1e-6, or no step that "
                     "lowers the merit, within the step limit")


class Engine:
    """Base class of a fitting engine for one model and acquisition.

    Subclasses implement :meth:`refine`. ``fit_block`` returns packed model parameters,
    an S0 scale factor (relative to the b0 mean) and a success flag per voxel.
    """

    name = "engine"
    #: How ``success`` is decided (recorded in ``fit.json``).
    convergence = "finite parameters and cost"

    def __init__(self, model, acq, *, n_candidates: int | None = None, max_iter: int = 40):
        self.model = model
        self.acq = acq
        self.space = model.parameters
        if n_candidates is None:
            n_dims = len(search_names(model))
            n_candidates = {0: 1, 1: 64, 2: 400, 3: 1500}.get(n_dims, 2000)
        self.n_candidates = n_candidates
        self.max_iter = max_iter
        self.n_orient = len(model.orientation_names)
        self._table = None
        lo, hi = self.space.bounds()
        lo = np.array(lo, dtype=float)
        for p in self.space:  # diameters: no fit below the prior (see min_length_bound)
            if p.kind == "length":
                lo[self.space.slice(p.name)] = min_length_bound(p)
        orient = np.zeros(self.space.size, bool)
        for name in model.orientation_names:
            orient[self.space.slice(name)] = True
        self.orientation_mask = np.append(orient, False)
        self.lower = np.append(np.where(orient, -np.inf, lo), 0.0)
        self.upper = np.append(np.where(orient, np.inf, hi), np.inf)
        self.scales = np.append(self.space.scales(), 1.0)

    # -------------------------------------------------------------- stage 1
    @property
    def table(self) -> CandidateTable:
        if self._table is None:
            self._table = CandidateTable.build(self.model, self.acq, self.n_candidates)
        return self._table

    def initial_directions(self, y, directions):
        """(V, n_orient, 3) starting orientations: given ones, else DTI (+ orthogonal)."""
        V = y.shape[0]
        if self.n_orient == 0:
            return np.zeros((V, 0, 3))
        if directions is not None:
            d = np.asarray(directions, dtype=float).reshape(V, -1, 3)
            if d.shape[1] >= self.n_orient:
                return d[:, : self.n_orient]
        e1 = tensor_directions(self.acq, y)
        out = [e1]
        helper = np.where(np.abs(e1[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        e2 = np.cross(e1, helper)
        e2 /= np.linalg.norm(e2, axis=1, keepdims=True)
        out += [e2, np.cross(e1, e2)]
        return np.stack(out[: self.n_orient], 1)

    def start_angles(self, y, directions):
        """Contiguous (θ, φ) arrays (V,) of the first fibre's start (given or DTI)."""
        ang = cartesian_to_angles(self.initial_directions(y, directions)[:, 0])
        return np.ascontiguousarray(ang[:, 0]), np.ascontiguousarray(ang[:, 1])

    def finish(self, x, cost, converged=None):
        """Rows ``x`` (params + S0, V × (P+1)) as (params, s0, success), canonical μ.

        ``success`` means finite parameters and cost and, when ``converged`` (V,) is given,
        that the optimiser met its convergence criterion within its iteration limit.
        """
        x = self.canonical(x)
        ok = np.all(np.isfinite(x), axis=1) & np.isfinite(cost)
        if converged is not None:
            ok &= np.asarray(converged, bool)
        return x[:, :-1], x[:, -1], ok

    def global_search(self, y, directions):
        """Stage 1: best candidate per voxel with NNLS fractions; returns x0 (V, P+1)."""
        dirs = self.initial_directions(y, directions)
        if uses_segmented_start(self.model):
            from .ivim_start import segmented_start

            grid = np.geomspace(*self.space["d_star"].bounds, 40)
            d, d_star, f, s0 = segmented_start(self.acq, y, grid)
            return self._pack({"d": d, "d_star": d_star, "f": f}, dirs, s0)
        if self.n_orient <= 1:
            return self._search_table(y, dirs)
        return self._search_tied(y, dirs)

    def _search_table(self, y, dirs):
        tab = self.table
        outer = outer_fraction_name(self.model)
        V = y.shape[0]
        values = {k: np.empty(V) for k in tab.values}
        s0 = np.empty(V)
        frac = np.zeros(V)
        for s in range(0, V, SEARCH_BLOCK):
            sl = slice(s, s + SEARCH_BLOCK)
            d = dirs[sl, 0] if self.n_orient else None
            T = tab.atoms(tab.tissue, d)
            if tab.iso is not None:
                I = tab.atoms(tab.iso, d)
                a, b, sse = nnls_two(T, I, y[sl])
            else:
                from .search import nonnegative_scale

                a, sse = nonnegative_scale(T, y[sl])
                b = np.zeros_like(a)
            best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
            rows = np.arange(best.size)
            ab, bb = a[rows, best], b[rows, best]
            s0[sl] = ab + bb
            frac[sl] = np.where(ab + bb > 0, bb / np.maximum(ab + bb, 1e-30), 0.0)
            for k in values:
                values[k][sl] = tab.values[k][best]
        full = dict(values)
        if outer is not None:
            full[outer] = frac
        return self._pack(full, dirs, s0)

    def _search_tied(self, y, dirs):
        """Several fibres: all fibres share one candidate of the single-fibre grid."""
        V = y.shape[0]
        names = search_names(self.model)
        bases = sorted({n.rsplit("_", 1)[0] for n in names if n[-1].isdigit()
                        and not n.startswith("ffib")})
        grid = {}
        for b in bases:
            p = self.space[f"{b}_1"]
            lo, hi = p.bounds
            grid[b] = (np.geomspace(lo, hi, 4) if p.kind in ("diffusivity", "length")
                       else np.linspace(lo, min(hi, 0.9), 5))
        mesh = np.meshgrid(*grid.values(), indexing="ij")
        cands = {b: m.ravel() for b, m in zip(grid, mesh)}
        C = len(next(iter(cands.values()))) if cands else 1
        outer = outer_fraction_name(self.model)
        best_sse = np.full(V, np.inf)
        x0 = None
        for c in range(C):
            vals = {}
            for n in names:
                base = n.rsplit("_", 1)[0]
                vals[n] = (np.full(V, cands[base][c]) if base in cands
                           else np.full(V, 1.0 if n.startswith("ffib") else
                                        0.5 * sum(self.space[n].prior_bounds)))
            for frac_value in ((0.0, 1.0) if outer else (None,)):
                if outer:
                    vals[outer] = np.full(V, frac_value)
                x = self._pack(vals, dirs, np.ones(V))
                if not outer:
                    S = self.model.signal(self.acq, x[:, :-1])
                    break
                if frac_value == 0.0:
                    T = self.model.signal(self.acq, x[:, :-1])
                else:
                    I = self.model.signal(self.acq, x[:, :-1])
            if outer:
                a, b, sse = nnls_two(T[:, None], I[:, None], y)
                a, b, sse = a[:, 0], b[:, 0], sse[:, 0]
                vals[outer] = np.where(a + b > 0, b / np.maximum(a + b, 1e-30), 0.0)
                s0 = a + b
            else:
                from .search import nonnegative_scale

                a, sse = nonnegative_scale(S[:, None], y)
                s0, sse = a[:, 0], sse[:, 0]
            x = self._pack(vals, dirs, s0)
            better = sse < best_sse
            if x0 is None:
                x0 = x
            x0[better] = x[better]
            best_sse[better] = sse[better]
        return x0

    def _pack(self, values, dirs, s0):
        full = dict(values)
        for k, name in enumerate(self.model.orientation_names):
            full[name] = cartesian_to_angles(dirs[:, k])
        s0 = np.asarray(s0, dtype=float)
        packed = self.space.pack(full) if self.space.size else np.zeros((s0.size, 0))
        return np.concatenate([packed, s0[:, None]], axis=1)

    # -------------------------------------------------------------- stage 2
    def residual_function(self, y, sigma):
        model, acq = self.model, self.acq
        weight = None
        if sigma is not None and np.ndim(sigma) == 2:  # σ per measurement (several TEs):
            weight = np.min(sigma, axis=1, keepdims=True) / sigma  # weighted least squares

        def residual(x, rows):
            S = x[:, -1:] * model.signal(acq, x[:, :-1])
            if sigma is not None:  # σ per voxel (V,) or per measurement (V, N)
                sg = sigma[rows]
                S = np.sqrt(S * S + (sg if sg.ndim == 2 else sg[:, None]) ** 2)
            return S - y[rows] if weight is None else (S - y[rows]) * weight[rows]

        return residual

    def refine(self, y, sigma, x0):  # pragma: no cover - interface
        raise NotImplementedError

    def frozen(self) -> np.ndarray:
        """Entries kept at their stage-1 value during refinement.

        IVIM keeps D from the segmented high-b fit (the joint bi-exponential fit swaps
        pools on noisy data); f, D* and S0 are refined.
        """
        keep = np.zeros(self.space.size + 1, bool)
        if uses_segmented_start(self.model):
            keep[self.space.slice("d")] = True
        return keep

    def reduced(self, y, sigma, x0):
        """Residual over the non-frozen entries, with its bounds, scales and start."""
        frozen = self.frozen()
        free = ~frozen
        full = self.residual_function(y, sigma)
        fixed = x0[:, frozen]

        def residual(xr, rows):
            x = np.empty((xr.shape[0], frozen.size))
            x[:, free] = xr
            x[:, frozen] = fixed[rows]
            return full(x, rows)

        def expand(xr):
            x = np.empty((xr.shape[0], frozen.size))
            x[:, free], x[:, frozen] = xr, fixed
            return x

        return (residual, x0[:, free], self.lower[free], self.upper[free], self.scales[free],
                free, expand)

    def canonical(self, x):
        """Orientation angles with the vector in the upper hemisphere (μ ≡ −μ)."""
        for name in self.model.orientation_names:
            s = self.space.slice(name)
            v = angles_to_cartesian(x[:, s])
            v = np.where(v[:, 2:3] < 0, -v, v)
            x[:, s] = cartesian_to_angles(v)
        return x

    def fit_block(self, y, sigma=None, directions=None):
        """Fit normalised signals ``y`` (V, N); σ (V,) in the same units or None.

        Returns
        -------
        params : ndarray, shape (V, size)
        s0 : ndarray, shape (V,)
            Fitted S0 relative to the b0 mean.
        success : ndarray of bool, shape (V,)
        """
        x0 = self.global_search(y, directions)
        x, cost, ok = self.refine(y, sigma, x0)
        params, s0, success = self.finish(x, cost)
        return params, s0, success & ok
