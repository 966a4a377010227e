"""The compiled engines: MIX and interior point for any model the core can assemble.

:class:`CompiledMixEngine` and :class:`CompiledInteriorPointEngine` build the model's plan
(:mod:`.assembly`) and a start grid once per (model, acquisition), then hand whole blocks
of voxels to :func:`.core.fit_voxels` (numba threads over voxels). They apply to every
model whose compartments all have compiled pieces — the built-in families with any
settings changed or freed, composed models, tied and tortuous parameters, 0–3 fibres,
spherical means — on any acquisition.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import get_num_threads, parallel_chunksize

from ...models.registry import uses_segmented_start
from ...parameters import cartesian_to_angles
from ..engines.base import BARRIER_CRITERION, LM_CRITERION, Engine
from ..engines.search import min_length_bound
from .assembly import NotCompilable, build_plan
from .core import (
    COLUMNS_FREE,
    COLUMNS_SINGLE,
    START_COLUMNS,
    START_OUTER,
    START_SCALE,
    fit_voxels,
)
from .core_quality import quality_voxels

#: Iterations per work chunk of the parallel loops, whose iterations are workers (one per
#: thread; each balances its share of voxel ranges itself): one each.
PARALLEL_CHUNK = 1
#: Most voxels per parallel range (each range copies the plan's tables once).
RANGE_VOXELS = 64


def n_chunks(n_voxels: int) -> int:
    """Parallel voxel ranges for ``n_voxels``: enough to balance uneven voxel costs over the
    threads, few enough that copying the plan per range stays negligible."""
    from numba import get_num_threads

    return int(max(1, min(n_voxels, max(4 * get_num_threads(), n_voxels // RANGE_VOXELS))))
#: Points per axis of the start grid by number of axes (length axes get LENGTH_POINTS).
POINTS_PER_AXIS = {1: 12, 2: 6, 3: 4}
#: Points of a length (diameter) axis, and of the other axis beside one: the diameter
#: profile has local minima (1 µm steps to LENGTH_TOP).
LENGTH_POINTS = 15
BESIDE_LENGTH_POINTS = 8
#: Largest length of the start grid (m): the diameter profile is flat above.
LENGTH_TOP = 15e-6
#: Where a length that ended at its lower bound is refined from again (fraction of its
#: start range; 0.3 of 1–15 µm: 5.2 µm).
TRAP_FRACTION = 0.3
#: A first pass ending with the isotropic fraction at or above this is not redone.
REDO_OUTER_MAX = 0.95


def compile_reason(model, acq) -> str | None:
    """Why the compiled core cannot fit ``model`` on ``acq`` (None when it can)."""
    try:
        build_plan(model, acq)
    except NotCompilable as err:
        return str(err)
    return None


def _start_mode(model):
    """(mode, outer index, column rule, column indices, names solved linearly)."""
    from ...models.fractions import FreeFractions, NestedFractions

    space = model.parameters
    rule = model.fractions
    tortuous = any(link.kind == "tortuosity" for link in model.links.values())
    if isinstance(rule, NestedFractions) and rule.fiso_name and rule.isotropic and rule.fibres:
        return START_OUTER, space.slice(rule.fiso_name).start, 0, np.zeros(1, np.int64), {
            rule.fiso_name}
    if isinstance(rule, FreeFractions) and not tortuous and len(model.compartments) > 1:
        names = [p.name for p in rule.parameters]
        if rule.single is not None:
            return (START_COLUMNS, -1, COLUMNS_SINGLE,
                    np.array([space.slice(rule.single.name).start], np.int64), set(names))
        order = {inst: k for k, inst in enumerate(model.compartment_names)}
        idx = np.zeros(len(order), np.int64)
        for inst in rule.compartments:
            idx[order[inst]] = space.slice(f"f_{inst}").start
        return START_COLUMNS, -1, COLUMNS_FREE, idx, set(names)
    return START_SCALE, -1, 0, np.zeros(1, np.int64), set()


def _axis(p, n):
    lo, hi = p.prior_bounds
    if p.kind == "length":
        return np.linspace(min_length_bound(p), min(p.bounds[1], LENGTH_TOP),
                           LENGTH_POINTS if n >= BESIDE_LENGTH_POINTS else 10)
    if p.kind == "diffusivity" and lo > 0:
        return np.geomspace(lo, hi, n)
    if p.kind == "dispersion":
        return np.linspace(max(p.bounds[0], 0.03), min(p.bounds[1], 0.9), n)
    if p.kind == "fraction":
        return np.linspace(0.05, 0.95, n)
    return np.linspace(lo, hi, n)


def start_grid(model, solved: set, n_fibres: int):
    """Candidates of the start: (grid (C, G), packed indices (G,), defaults (P + 1,)).

    Every non-orientation free parameter not solved linearly is an axis; with several
    fibres the per-fibre copies of a parameter share one axis (and the fibre weights stay
    equal), as the generic search's tied candidates do.
    """
    space = model.parameters
    defaults = np.zeros(space.size + 1)
    axes: dict[str, list[str]] = {}
    for p in space:
        s = space.slice(p.name)
        if p.kind != "orientation":
            defaults[s.start] = 0.5 * sum(p.prior_bounds)
        if p.kind == "orientation" or p.name in solved:
            continue
        if p.name.startswith("ffib_"):
            defaults[s.start] = 1.0
            continue
        base = p.name
        if n_fibres > 1 and p.name.rsplit("_", 1)[-1].isdigit():
            base = p.name.rsplit("_", 1)[0]
        axes.setdefault(base, []).append(p.name)
    defaults[-1] = 1.0
    if not axes:
        return np.zeros((1, 0)), np.zeros(0, np.int64), defaults
    n = POINTS_PER_AXIS.get(len(axes), 3)
    if len(axes) == 2 and any(space[names[0]].kind == "length" for names in axes.values()):
        n = BESIDE_LENGTH_POINTS
    values = [_axis(space[names[0]], n) for names in axes.values()]
    mesh = np.meshgrid(*values, indexing="ij")
    cols, idx = [], []
    for m, names in zip(mesh, axes.values()):
        for name in names:
            cols.append(m.ravel())
            idx.append(space.slice(name).start)
    return np.ascontiguousarray(np.stack(cols, 1)), np.array(idx, np.int64), defaults


#: Points of c² = (g·μ)² on which start candidates are tabulated.
C2_POINTS = 129
#: Largest start table (floats); bigger ones evaluate the model per candidate instead.
TABLE_FLOATS = 20_000_000
#: Start tables kept in a process (most recently used), so repeated ``fit()`` calls on
#: one model and acquisition (slabs, notebooks, panels) build theirs once.
TABLES_KEPT = 8
_TABLES: dict = {}


def start_table(model, plan, grid, grid_idx, defaults, mode, outer, b0_threshold):
    """Columns of every start candidate tabulated per shell on :data:`C2_POINTS` values of
    c² (one value for orientation-free models), from the NumPy model.

    Returns
    -------
    table : ndarray, shape (K, columns, U · Q)
        Empty (0, 0, 0) when the model has several orientations or the table is too big.
    Q : int
    shell_of : ndarray of int, shape (N,)
        Shell of every measurement in the plan's order.
    """
    from ...acquisition import Acquisition

    tabs = plan.tabs
    U = tabs.n_shells
    shell_of = np.repeat(np.arange(U), np.diff(tabs.start)).astype(np.int64)
    n_orient = len(model.orientation_names)
    K = grid.shape[0]
    Q = C2_POINTS if n_orient == 1 else 1
    ncols = {START_OUTER: 2, START_COLUMNS: len(model.compartments)}.get(mode, 1)
    empty = np.zeros((0, 0, 0))
    if n_orient > 1 or K * ncols * U * Q > TABLE_FLOATS:
        return empty, Q, shell_of
    c = np.sqrt(np.linspace(0.0, 1.0, Q)) if Q > 1 else np.ones(1)
    b, G2, delta, Delta, te = (np.repeat(row, Q) for row in tabs.shell)
    vecs = np.tile(np.stack([np.sqrt(1.0 - c * c), np.zeros(Q), c], 1), (U, 1))
    virtual = Acquisition(b, vecs, delta, Delta, TE=te if np.any(te > 0) else None,
                          G=np.sqrt(G2), name="start-table", b0_threshold=b0_threshold)
    X = np.tile(defaults[:-1], (K, 1))
    X[:, grid_idx] = grid
    for name in model.orientation_names:
        X[:, model.parameters.slice(name)] = 0.0  # μ along z: c = g_z
    if mode == START_COLUMNS:
        cols = model.compartment_signals(virtual, X)  # (K, C, U·Q)
    elif mode == START_OUTER:
        tissue, iso = X.copy(), X.copy()
        tissue[:, outer], iso[:, outer] = 0.0, 1.0 - 1e-9
        cols = np.stack([model.signal(virtual, tissue), model.signal(virtual, iso)], 1)
    else:
        cols = model.signal(virtual, X)[:, None]
    return np.ascontiguousarray(cols, dtype=float), Q, shell_of


class CompiledMixEngine(Engine):
    """MIX on the compiled core: grid + NNLS start, Levenberg–Marquardt on the Rician floor."""

    name = "mix"
    convergence = LM_CRITERION
    threaded = True  # parallel over voxels with numba threads
    sigma_per_measurement = True  # takes σ per measurement (several echo times)
    method_code = 0

    def __init__(self, model, acq, *, max_iter: int = 50, tol: float = 1e-5,
                 redo_deg: float = 8.0, min_diameter: float | None = None, **options):
        super().__init__(model, acq, n_candidates=1, max_iter=max_iter)
        self.tol = tol
        self.redo_deg = float(redo_deg)
        self.plan = build_plan(model, acq)
        if min_diameter is not None:
            for p in self.space:
                if p.kind == "length":
                    self.lower[self.space.slice(p.name)] = float(min_diameter)
        self.mode, self.outer, self.col_rule, self.col_idx, solved = _start_mode(model)
        self.grid, self.grid_idx, self.defaults = start_grid(model, solved, model.n_fibres)
        self.has_start = uses_segmented_start(model)
        self._table = None
        self.frozen_mask = self.frozen()
        self.bounded = ~self.orientation_mask.copy()
        self.bounded[-1] = False
        self.order = self.plan.tabs.order
        # lengths (diameters) ending at their lower bound are refined once more from
        # TRAP_FRACTION of their start range (the signal is flat there; see fit_voxels)
        traps = [p for p in self.space if p.kind == "length"]
        self.traps = np.array([self.space.slice(p.name).start for p in traps], np.int64)
        self.trap_values = np.array([
            self.lower[self.space.slice(p.name).start] + TRAP_FRACTION * (
                min(self.upper[self.space.slice(p.name).start], LENGTH_TOP)
                - self.lower[self.space.slice(p.name).start]) for p in traps])
        #: Entries of the fibre weights ffib_i (their common scale is a null direction of
        #: the Fisher matrix; see :func:`quality_voxels`).
        self.weight_entries = np.array([self.space.slice(p.name).start for p in self.space
                                        if p.name.startswith("ffib_")], np.int64)

    @staticmethod
    def applies(model, acq) -> bool:
        """True when every part of ``model`` has a compiled piece (see :func:`compile_reason`)."""
        return compile_reason(model, acq) is None

    @staticmethod
    def why_not(model, acq) -> str | None:
        """Why the compiled core cannot fit ``model`` on ``acq`` (None when it can)."""
        return compile_reason(model, acq)

    def _sorted(self, y, sigma):
        Y = np.ascontiguousarray(np.asarray(y, dtype=float)[:, self.order])
        V = Y.shape[0]
        if sigma is None:
            SIG = np.zeros((V, 1))
        else:
            sig = np.asarray(sigma, dtype=float)
            SIG = (sig[:, self.order] if sig.ndim == 2 and sig.shape[1] == Y.shape[1]
                   else sig.reshape(V, -1)[:, :1])
        return Y, np.ascontiguousarray(np.nan_to_num(SIG, nan=0.0))

    def starts(self, y, directions):
        """(V, P + 1) starting rows: orientations (given or DTI), defaults elsewhere."""
        if self.has_start:
            return self.global_search(y, directions)
        V = y.shape[0]
        X0 = np.tile(self.defaults, (V, 1))
        dirs = self.initial_directions(y, directions)
        for k, name in enumerate(self.model.orientation_names):
            X0[:, self.space.slice(name)] = cartesian_to_angles(dirs[:, k])
        return X0

    def solve(self, y, sigma=None, directions=None, x0=None):
        """Fit normalised signals ``y`` (V, N); returns (X (V, P + 1), cost, converged).

        ``x0`` (V, P + 1), when given, replaces the grid start (warm starts).
        """
        Y, SIG = self._sorted(y, sigma)
        X0 = self.starts(y, directions) if x0 is None else np.asarray(x0, dtype=float)
        has_start = self.has_start or x0 is not None
        with parallel_chunksize(PARALLEL_CHUNK):
            return fit_voxels(Y, SIG, np.ascontiguousarray(X0), has_start, self.plan.arrays,
                              self.lower, self.upper, self.scales, self.frozen_mask,
                              self.grid, self.grid_idx, self.mode, self.outer, self.col_rule,
                              self.col_idx, self.method_code, self.max_iter, self.tol,
                              self.bounded, self._mu_levels(), self.redo_deg, REDO_OUTER_MAX,
                              n_chunks(len(Y)), *self.start_table, self.traps,
                              self.trap_values, get_num_threads())

    def _mu_levels(self):
        return np.zeros(1)

    @property
    def start_table(self):
        """The tabulated start columns (built on first use; see :func:`start_table`)."""
        if self._table is None:
            key = self._table_key()
            self._table = _TABLES.pop(key, None)
            if self._table is None:
                self._table = start_table(self.model, self.plan, self.grid, self.grid_idx,
                                          self.defaults, self.mode, self.outer,
                                          self.acq.b0_threshold)
            _TABLES[key] = self._table
            while len(_TABLES) > TABLES_KEPT:
                _TABLES.pop(next(iter(_TABLES)))
        return self._table

    def _table_key(self) -> str:
        """Digest of everything the start table depends on: the compiled model (its plan
        arrays, which encode the model and acquisition), the grid and the start mode."""
        digest = hashlib.sha1()
        for a in (*self.plan.arrays, self.grid, self.grid_idx, self.defaults):
            digest.update(np.ascontiguousarray(a).tobytes())
            digest.update(str(np.shape(a)).encode())
        digest.update(f"{self.mode} {self.outer} {self.acq.b0_threshold}".encode())
        return digest.hexdigest()

    def fit_block(self, y, sigma=None, directions=None):
        """Fit normalised signals ``y`` (V, N); see :meth:`Engine.fit_block`."""
        return self.finish(*self.solve(y, sigma, directions))

    def predict(self, X) -> np.ndarray:
        """Signals (V, N) in acquisition order of rows ``X`` (V, P + 1)."""
        from .assembly import signals

        S, _ = signals(np.ascontiguousarray(X, dtype=float), self.plan.arrays, False,
                       n_chunks(len(X)), get_num_threads())
        out = np.empty_like(S)
        out[:, self.order] = S
        return out

    def quality_arrays(self, params, s0, y, sigma):
        """``residual_rms`` and Cramér–Rao std of fitted voxels in one compiled pass.

        Parameters
        ----------
        params : ndarray, shape (V, size)
        s0 : ndarray, shape (V,)
            Relative S0.
        y : ndarray, shape (V, N)
            Normalised signals (acquisition order).
        sigma : ndarray, shape (V, N) or (V, 1), or None
            Normalised σ (None: taken from each voxel's residuals).

        Returns
        -------
        rms : ndarray, shape (V,)
        std : dict of str to ndarray, shape (V,)
            Every free parameter (orientations as an angular std in rad) and ``s0``.
        """
        from ..uncertainty import MAX_CONDITION, SNR_TABLE_MAX, _factor_table

        X = np.ascontiguousarray(np.concatenate([params, s0[:, None]], axis=1), dtype=float)
        Y, SIG = self._sorted(y, sigma)
        with parallel_chunksize(PARALLEL_CHUNK):
            rms, var = quality_voxels(Y, SIG, X, sigma is None, self.plan.arrays,
                                      _factor_table()[1], SNR_TABLE_MAX, MAX_CONDITION,
                                      n_chunks(len(Y)), self.weight_entries,
                                      get_num_threads())
        std = {}
        for p in self.space:
            s = self.space.slice(p.name)
            if p.kind == "orientation":
                theta = X[:, s.start]
                std[p.name] = np.sqrt(var[:, s.start] + np.sin(theta) ** 2
                                      * var[:, s.start + 1])
            else:
                std[p.name] = np.sqrt(var[:, s.start])
        std["s0"] = np.sqrt(var[:, -1])
        return rms, std


class CompiledInteriorPointEngine(CompiledMixEngine):
    """The same start, then the compiled log-barrier interior point on every bounded entry."""

    name = "interior-point"
    convergence = BARRIER_CRITERION
    method_code = 1
    #: Barrier weights relative to the starting cost, one Newton loop each.
    MU_LEVELS = 10.0 ** -np.array([3.0, 5.0, 7.0])

    def __init__(self, model, acq, *, max_iter: int = 6, tol: float = 1e-6, **options):
        super().__init__(model, acq, max_iter=max_iter, tol=tol, **options)

    def _mu_levels(self):
        return self.MU_LEVELS
