"""The compiled NODDI MIX engines called directly for fibre-count selection (``fit_auto``).

Model selection fits the 1-, 2- and 3-fibre NODDI models on overlapping groups of voxels
and compares their costs. Through :func:`microlearn.fitting.fit` each group paid the input
checks, the normalisation, block bookkeeping and a generic (numpy) prediction of every
voxel only to recompute the cost the kernel had just minimised (a third of the selection
time for 2000 voxels). Here the signals are normalised once, the engines' :meth:`solve`
returns the kernels' own costs, and predictions come from the compiled model and only for
the voxels whose residual is needed (the next fibre's start).

The selection fits stop at a relative cost decrease of :data:`SELECT_TOL` (the default
fits use 1e-5): at SNR 30 the cost of an HCP voxel is ~280 σ², so the criterion values
move by < 0.03 σ², far below the 2 σ² per parameter that AIC compares.
"""

from __future__ import annotations

import time

import numpy as np

#: Relative cost decrease that ends the Levenberg–Marquardt loop of a selection fit.
SELECT_TOL = 1e-4
#: Options of ``fit`` this path honours (anything else goes the general way).
HONOURED = {"method", "progress", "workers", "setup_acc", "quality", "block_size"}
#: Voxels fitted first, alone, to time the set-up (kernel loading) apart.
WARM_VOXELS = 4
#: Fibre counts whose kernels this process has run (later fits need no warm split).
_RUN: set = set()
#: Warm start of an n-fibre fit from the (n−1)-fibre solution: the new fibre's share of
#: the tissue amplitude, its ODI, and the largest ODI the earlier fibres start from (a
#: fit with one fibre too few spreads the missing one into dispersion).
NEW_SHARE, NEW_ODI, START_ODI_MAX = 0.3, 0.15, 0.25


def applies(model_name: str, acq, max_fibres: int, options: dict) -> bool:
    """True when every count 1..``max_fibres`` of ``model_name`` has a compiled engine
    on ``acq`` (built-in NODDI, fixed diffusivities, one echo time) and ``options`` ask
    for nothing else (MIX, no engine settings)."""
    if model_name != "noddi" or max_fibres < 1 or acq.n_te != 1:
        return False
    if options.get("method", "mix") != "mix" or set(options) - HONOURED:
        return False
    from ...models import get_model
    from .noddi_fast import NoddiMixEngine
    from .noddi_multi import NoddiMultiMixEngine

    if not NoddiMixEngine.applies(get_model("noddi", 1), acq):
        return False
    return all(NoddiMultiMixEngine.applies(get_model("noddi", n), acq)
               for n in range(2, max_fibres + 1))


class CompiledFibreFits:
    """1..``max_fibres``-fibre NODDI fits on raw signals, with costs in the criterion's units.

    Parameters
    ----------
    acq : Acquisition
    max_fibres : int
    workers : int, optional
        numba threads (default: both cores).
    tol : float
        Relative tolerance of the Levenberg–Marquardt stop.
    setup_acc : list, optional
        Receives the set-up seconds (engine construction, first kernel call) of each count.
    """

    def __init__(self, acq, max_fibres, *, workers=None, tol=SELECT_TOL, setup_acc=None):
        self.acq = acq
        self.max_fibres = max_fibres
        self.workers = workers
        self.tol = tol
        self.setup_acc = setup_acc
        self._engines = {}

    def engine(self, n):
        """The compiled engine of ``noddi(n)`` (built on first use)."""
        if n not in self._engines:
            from ...models import get_model
            from .noddi_fast import NoddiMixEngine
            from .noddi_multi import NoddiMultiMixEngine

            cls = NoddiMixEngine if n == 1 else NoddiMultiMixEngine
            self._engines[n] = cls(get_model("noddi", n), self.acq, tol=self.tol)
        return self._engines[n]

    def _threads(self):
        from numba import config, set_num_threads

        from ..api import default_workers

        workers = default_workers() if self.workers is None else max(1, int(self.workers))
        set_num_threads(min(workers, config.NUMBA_NUM_THREADS))

    def fit(self, n, y, b0, sigma, dirs, previous=None):
        """Fit ``noddi(n)`` to raw signals.

        Parameters
        ----------
        n : int
        y : ndarray, shape (V, N)
            Raw signals.
        b0 : ndarray, shape (V,)
            Their b0 means (> 0).
        sigma : float or None
            Noise σ in signal units (None: Gaussian model, plain SSE).
        dirs : ndarray, shape (V, n, 3)
            Starting fibre directions.
        previous : ndarray, shape (V, ·), optional
            ``rows`` of an (n−1)-fibre fit of the same voxels: the fit starts from it plus
            a new fibre along ``dirs[:, -1]`` (:func:`warm_start`) instead of the grid
            search. The warm start needs fewer iterations and ends on lower costs (on the
            crossing bench's voxels: 2 fibres 0.08 vs 0.13 ms a voxel, 3 fibres 0.15 vs
            0.23, summed costs 0.4 % and 0.6 % lower).

        Returns
        -------
        params : ndarray, shape (V, size)
            Packed parameters (μ in the upper hemisphere).
        s0 : ndarray, shape (V,)
            Fitted S0 in signal units.
        success : ndarray of bool, shape (V,)
            Finite and converged.
        cost : ndarray, shape (V,)
            Σ (sqrt(S² + σ²) − y)² / σ² (SSE when σ is None), inf where not successful.
        rows : ndarray, shape (V, size + 1)
            The engine's rows, for :meth:`predict`.
        """
        t0 = time.perf_counter()
        first = n not in _RUN
        _RUN.add(n)
        eng = self.engine(n)
        self._threads()
        yn = y / b0[:, None]
        sig_n = None if sigma is None else sigma / b0
        start = None
        if previous is not None and n > 1:
            start = warm_start(previous, dirs[:, -1], n - 1, self.engine(n - 1))
        parts = []
        cut = min(WARM_VOXELS, len(y)) if first else 0
        for a, b in ((0, cut), (cut, len(y))):
            if b > a:
                kw = {} if start is None else {"start": start[a:b]}
                parts.append(eng.solve(yn[a:b], None if sig_n is None else sig_n[a:b],
                                       dirs[a:b], **kw))
            if first and b == cut and self.setup_acc is not None:
                self.setup_acc.append(time.perf_counter() - t0)
        X, cost, conv = (np.concatenate(p) for p in zip(*parts))
        params, s0, ok = eng.finish(X.copy(), cost, conv)
        cost = cost / sig_n**2 if sig_n is not None else cost * b0**2
        cost = np.where(ok, cost, np.inf)
        return params, s0 * b0, ok, cost, X

    def predict(self, n, rows, b0):
        """Raw signals (V, N) of rows returned by :meth:`fit` (``b0`` their b0 means).

        One fibre goes through the multi-fibre signal kernel too (its layout with one
        fibre): one compiled kernel fewer to load in a fresh process.
        """
        self._threads()
        if n > 1:
            return self.engine(n).predict(rows) * b0[:, None]
        from .noddi_multi_kernel import signals

        eng = self.engine(1)
        S, _ = signals(_one_fibre_rows(rows), 1, *eng._tables()[:12], False)
        return eng._unsort(S) * b0[:, None]


def warm_start(previous, direction, m, engine):
    """Kernel-layout start of an (m+1)-fibre fit from ``m``-fibre rows plus one fibre.

    Parameters
    ----------
    previous : ndarray, shape (V, size_m + 1)
        Packed ``noddi(m)`` parameters with S0 (normalised), as :meth:`CompiledFibreFits.fit`
        returns them.
    direction : ndarray, shape (V, 3)
        The new fibre's unit direction.
    m : int
    engine : NoddiMixEngine or NoddiMultiMixEngine
        The ``noddi(m)`` engine (its parameter layout).

    Returns
    -------
    ndarray, shape (V, 5 (m + 1) + 1)
        θ, φ, ODI, ICVF, amplitude per fibre, then the ball amplitude: the earlier fibres
        keep their directions and ICVF, their ODI capped at :data:`START_ODI_MAX`, and give
        :data:`NEW_SHARE` of their amplitude to the new fibre (ODI :data:`NEW_ODI`, the
        dominant fibre's ICVF).
    """
    from ...parameters import cartesian_to_angles

    V = previous.shape[0]
    if m == 1:
        k = _one_fibre_rows(previous)
    else:
        k = engine.kernel_rows(previous)
    x = np.empty((V, 5 * (m + 1) + 1))
    x[:, :5 * m] = k[:, :5 * m]
    x[:, 2:5 * m:5] = np.minimum(x[:, 2:5 * m:5], START_ODI_MAX)
    tissue = k[:, 4:5 * m:5].sum(1)
    x[:, 4:5 * m:5] *= 1.0 - NEW_SHARE
    x[:, 5 * m:5 * m + 2] = cartesian_to_angles(direction)
    x[:, 5 * m + 2] = NEW_ODI
    x[:, 5 * m + 3] = k[:, 3]
    x[:, 5 * m + 4] = NEW_SHARE * tissue
    x[:, 5 * m + 5] = k[:, 5 * m]
    bad = ~np.all(np.isfinite(x), axis=1)
    x[bad, 0] = np.nan  # the grid search starts these
    return x


def _one_fibre_rows(rows):
    """Single-fibre engine rows (θ, φ, ODI, ICVF, FISO, S0) in the multi-fibre kernels'
    layout with one fibre (θ, φ, ODI, ICVF, fibre amplitude, ball amplitude)."""
    k = np.empty((len(rows), 6))
    k[:, :4] = rows[:, :4]
    k[:, 4] = rows[:, 5] * (1.0 - rows[:, 4])
    k[:, 5] = rows[:, 5] * rows[:, 4]
    return k
