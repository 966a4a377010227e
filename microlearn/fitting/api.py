"""FitResult, the engine registry and :func:`fit`, the one entry point for fitting."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..data.voxels import check_fit_input
from ..models.registry import uses_segmented_start
from .quality import quality_maps

log = logging.getLogger(__name__)

#: Voxels per block handed to an engine (cache-friendly sizes are fastest).
BLOCK_SIZE = 512
#: In-process time (s) the remaining voxels must need before a process pool is started.
POOL_MIN_SECONDS = 2.0
#: Voxels fitted first, alone, so that the set-up (engine imports, construction, compiled
#: kernel loading, tables) is timed apart from the per-voxel throughput.
WARM_VOXELS = 4


class _Fitters(dict):
    """Method name -> :class:`~microlearn.fitting.registry.Method` (the registry's table);
    unknown names raise a clear error listing the valid ones."""

    def __missing__(self, key):
        from .registry import method

        return method(key)

    def names(self):
        from .registry import method_names

        return method_names()


#: The fitting methods (read-only view of :data:`microlearn.fitting.registry.METHODS`).
FITTERS = _Fitters()


def methods_for(model) -> list[str]:
    """The fitting methods that can fit ``model`` (``posterior`` needs no orientations)."""
    from .registry import methods_for as _methods_for

    return _methods_for(model)


def fitted_acquisition(model, acq):
    """The acquisition an engine sees for ``model``: the spherical means of ``acq`` for a
    direction-averaged model, ``acq`` itself otherwise."""
    if getattr(model, "spherical_mean", False):
        from ..data.powder import powder_groups, spherical_mean_acquisition

        if powder_groups(acq)[1] != acq.n_measurements:
            return spherical_mean_acquisition(acq)
    return acq


def engine_class(method: str, model, acq, **options):
    """The engine class ``fit(..., method=method, **options)`` runs for ``model`` on ``acq``
    (the same choice: :func:`microlearn.fitting.registry.choose`)."""
    from .registry import check_options, choose

    check_options(method, options)
    return choose(method, model, fitted_acquisition(model, acq),
                  fast=options.get("fast", True))


def describe_convergence(success, params_finite, engine, ran: str | None = None) -> dict:
    """What ``fit.json`` says of convergence: the engine, its criterion and the counts.

    Parameters
    ----------
    success : ndarray of bool, shape (V,)
        The engine's success flags of the fitted voxels.
    params_finite : ndarray of bool, shape (V,)
        Voxels that have an answer (finite parameters).
    engine : type
        The engine class chosen (:func:`engine_class`).
    ran : str, optional
        Class name of the engine that ran (``FitResult.engine``), when known.
    """
    success = np.asarray(success, bool)
    finite = np.asarray(params_finite, bool)
    return {"engine": ran or engine.__name__, "criterion": engine.convergence,
            "n_converged": int((success & finite).sum()),
            "n_not_converged": int((~success & finite).sum()),
            "n_no_answer": int((~finite).sum())}


@dataclass
class FitResult:
    """Fitted parameters over space: a view over one ``(*spatial, size)`` array.

    Attributes
    ----------
    params : ndarray, shape (*spatial, size)
        Packed free parameters (SI, orientations as angles); NaN where not fitted.
    s0 : ndarray, shape (*spatial,)
        Fitted non-diffusion-weighted signal.
    success : ndarray of bool, shape (*spatial,)
    mask : ndarray of bool, shape (*spatial,)
    sigma : float, ndarray of shape (*spatial) or None
        Noise standard deviation (signal units) used for the Rician floor (a map when a
        σ map was given).
    s0_te : ndarray, shape (*spatial, n_te) or None
        Fitted S0 of every echo-time group when there are several (``s0`` is the first,
        shortest TE).
    seconds : float
        Whole fit in s: data in memory -> parameters in memory, set-up included.
    setup_seconds : float
        Part of ``seconds`` that does not scale with the voxels: engine imports and
        construction, compiled-kernel loading or compilation, dictionaries and tables, and
        the fit of the first ``WARM_VOXELS`` voxels that triggers them (measured), plus
        what an engine reports as one-off work done later (``engine.setup_extra``: the
        dictionary engine's dictionaries of directions met after those voxels).
    engine : str
        Class name of the engine that ran (:func:`microlearn.fitting.registry.choose`).
    """

    model: object
    acq: object
    params: np.ndarray
    s0: np.ndarray
    success: np.ndarray
    mask: np.ndarray
    method: str = ""
    sigma: float | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    setup_seconds: float = 0.0
    s0_te: np.ndarray | None = None
    engine: str = ""

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())

    @property
    def vox_per_s(self) -> float:
        """Steady throughput: voxels per second once set up (``seconds - setup_seconds``)."""
        return throughput(self.n_voxels, self.seconds, self.setup_seconds)

    def maps(self) -> dict[str, np.ndarray]:
        """Every map: free parameters, derived maps and ``s0`` (orientations (...,3))."""
        out = self.model.maps(self.params)
        out = {k: np.where(self.mask[..., None] if np.ndim(v) == self.mask.ndim + 1
                           else self.mask, v, np.nan) for k, v in out.items()}
        out["s0"] = self.s0
        out.update(self.extra)
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        maps = self.maps()
        if name not in maps:
            raise KeyError(f"No map {name!r}; available: {sorted(maps)}.")
        return maps[name]

    def predict(self) -> np.ndarray:
        """Model signals ``s0 · S/S0``, shape (*spatial, N); NaN outside the mask."""
        out = np.full(self.mask.shape + (self.acq.n_measurements,), np.nan)
        ok = self.mask & np.all(np.isfinite(self.params), axis=-1)
        scale = (self.s0[ok, None] if self.s0_te is None
                 else self.s0_te[ok][:, self.acq.te_index])
        out[ok] = scale * self.model.signal(self.acq, self.params[ok])
        return out

    def residuals(self, data) -> np.ndarray:
        """``data - predict()``, shape (*spatial, N)."""
        return np.asarray(data, dtype=float) - self.predict()


def throughput(n_voxels: int, seconds: float, setup_seconds: float) -> float:
    """Steady voxels per second: ``n_voxels`` over the time after set-up (NaN if none)."""
    steady = seconds - setup_seconds
    return float(n_voxels / steady) if steady > 0 and n_voxels > 0 else float("nan")


def _run_blocks(engine, y, sigma, directions, block, progress, workers):
    V = y.shape[0]
    starts = list(range(0, V, block))
    params = np.empty((V, engine.space.size))
    s0 = np.empty(V)
    ok = np.empty(V, bool)

    def one(s):
        sl = slice(s, s + block)
        d = None if directions is None else directions[sl]
        sg = None if sigma is None else sigma[sl]
        return s, engine.fit_block(y[sl], sg, d)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=V, desc=f"fit {engine.name}", unit="vox")
    if workers > 1 and len(starts) > 1:
        if engine.n_orient <= 1 and not uses_segmented_start(engine.model):
            _ = engine.table  # build once here, not in every worker

        from .engines.pool import discard_pool, fit_block_job, process_pool

        pool = process_pool(workers)
        futures = [pool.submit(fit_block_job, engine, y[s:s + block],
                               None if sigma is None else sigma[s:s + block],
                               None if directions is None else directions[s:s + block], s)
                   for s in starts]
        try:
            for fut in futures:
                s, (p, z, k) = fut.result()
                n = p.shape[0]
                params[s:s + n], s0[s:s + n], ok[s:s + n] = p, z, k
                if bar:
                    bar.update(n)
        except BaseException:
            for fut in futures:
                fut.cancel()
            discard_pool(workers)  # a worker may have died; start afresh next time
            raise
    else:
        for s in starts:
            _, (p, z, k) = one(s)
            n = p.shape[0]
            params[s:s + n], s0[s:s + n], ok[s:s + n] = p, z, k
            if bar:
                bar.update(n)
    if bar:
        bar.close()
    return params, s0, ok


def default_workers() -> int:
    """Processes used by default: both cores (at most 2)."""
    return max(1, min(2, os.cpu_count() or 1))


def fit(model, acq, data, *, method="mix", mask=None, sigma=None, progress=False,
        directions=None, workers=None, block_size=BLOCK_SIZE, quality=True,
        **options) -> FitResult:
    """Fit ``model`` to every voxel of ``data`` with engine ``method``.

    Each echo-time group is normalised by its own b0 mean. Negative and zero
    diffusion-weighted samples are data (the Rician model explains them); only voxels with
    a NaN/infinite sample or a b0 mean <= 0 at some TE get NaN maps (counted, warned).

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
    data : ndarray, shape (*spatial, N)
        Raw signals (not normalised).
    method : {"mix", "interior-point", "dictionary"}
    mask : ndarray of bool, shape (*spatial), optional
    sigma : float or ndarray, shape (*spatial), optional
        Noise standard deviation in signal units, one value or a map (e.g. from MP-PCA);
        estimated from the b0 repeats of each TE when absent (``sigma=0`` disables the
        Rician-floor model). Voxels whose σ is NaN or negative get NaN maps.
    directions : ndarray, shape (*spatial, n_fibres, 3), optional
        Starting fibre orientations (e.g. CSD peaks); DTI otherwise.
    workers : int, optional
        Processes (default: both cores, through a process pool only for the generic engines
        and only when the voxels left after one timed block would take more than
        ``POOL_MIN_SECONDS`` in this process; the compiled engines use numba threads).
    quality : bool
        Also compute the ``residual_rms``, ``at_bound`` and ``<name>_std`` maps
        (:mod:`microlearn.fitting.quality`).
    options
        Passed to the engine (``n_candidates``, ``max_iter``).
    """
    from ..data.voxels import b0_means, estimate_sigma_by_te, normalise
    from .registry import check_options, choose

    t0 = time.perf_counter()
    check_options(method, options)  # unknown options: a clear error listing the valid ones
    t_prep = time.perf_counter()  # input checks, normalising, σ: per-voxel work, not set-up
    data, mask = check_fit_input(acq, data, mask)
    vox = np.asarray(data[mask], dtype=float)
    full_acq, full_vox = acq, vox
    if getattr(model, "spherical_mean", False):
        # direction-averaged model: fit the powder averages (σ comes from the full data)
        acq, vox = powder_averaged(acq, vox)
    relaxed = bool(getattr(model, "relaxation", None))  # compartment T2: one S0 at TE = 0
    y_all, scale, usable = normalise(vox, acq, joint=relaxed)
    sigma_vox = _sigma_per_voxel(sigma, mask)
    if sigma_vox is not None:
        usable &= np.isfinite(sigma_vox) & (sigma_vox >= 0)
    skip = ~usable
    if skip.any():
        warnings.warn(f"{int(skip.sum())} voxel(s) have NaN/infinite samples or a b0 mean <= 0"
                      f"{' or no valid sigma' if sigma_vox is not None else ''}; they get NaN "
                      "maps.", RuntimeWarning, stacklevel=2)
    use = ~skip
    map_given = sigma_vox is not None
    if not map_given:
        if sigma is None:
            sigma = estimate_sigma_by_te(full_vox[use], full_acq) if use.any() else None
        sigma_vox = None if sigma is None or float(sigma) == 0 else np.full(len(vox),
                                                                            float(sigma))
    elif not np.any(sigma_vox[use] > 0):
        sigma_vox = None
    sigma_used = None if sigma_vox is None or map_given else float(sigma)
    y = y_all[use]
    sig_n = None if sigma_vox is None else sigma_vox[use, None] / scale[use]  # (V, N)
    prep_seconds = time.perf_counter() - t_prep
    fast = options.pop("fast", True)
    engine_cls = choose(method, model, acq, fast=fast)
    if fast and engine_cls is FITTERS[method].generic and len(FITTERS[method].engines) > 1:
        from .registry import why_not

        reasons = "; ".join(f"{c.__name__}: {why_not(c, model, acq)}"
                            for c in FITTERS[method].engines[:-1])
        warnings.warn(f"no compiled engine fits model {model.name!r} here ({reasons}); the "
                      f"generic {engine_cls.__name__} runs, typically 10-100x slower.",
                      RuntimeWarning, stacklevel=2)
    engine = engine_cls(model, acq, **options)
    sig = sig_n
    if sig_n is not None and not getattr(engine, "sigma_per_measurement", False) and (
            acq.n_te == 1 or getattr(engine, "threaded", False)):
        # one σ per voxel: exact for one TE, the median over TEs for the per-model kernels
        sig = sig_n[:, 0] if acq.n_te == 1 else np.median(sig_n, axis=1)
    dirs = None
    if directions is not None:
        dirs = np.asarray(directions, dtype=float)[mask][use]
    adaptive = workers is None
    workers = default_workers() if workers is None else max(1, int(workers))
    if getattr(engine, "threaded", False):
        from numba import config, set_num_threads

        # at most the threads numba was started with (NUMBA_NUM_THREADS may cap them)
        set_num_threads(min(workers, config.NUMBA_NUM_THREADS))
        workers, block_size = 1, max(block_size, 8192)
    if use.sum() <= block_size:
        workers = 1

    def run(a, b, n_workers, show):
        return _run_blocks(engine, y[a:b], None if sig is None else sig[a:b],
                           None if dirs is None else dirs[a:b], block_size, show, n_workers)

    prepare = getattr(engine, "prepare", None)  # a prior estimated from all the voxels
    if prepare is not None and len(y):
        prepare(y, sig)
    # set-up: the first few voxels alone pay every first-call cost (kernel loading, tables)
    V = y.shape[0]
    warm = min(WARM_VOXELS, V)
    parts = [run(0, warm, 1, False)]
    setup_seconds = time.perf_counter() - t0 - prep_seconds
    extra_before = getattr(engine, "setup_extra", 0.0)  # already inside setup_seconds
    done = warm
    if adaptive and workers > 1 and V - done > block_size:
        # a process pool costs ~1 s to start: time one block here, and start the pool only
        # when the rest would take longer than POOL_MIN_SECONDS in this process
        t1 = time.perf_counter()
        parts.append(run(done, done + block_size, 1, False))
        done += block_size
        if (time.perf_counter() - t1) / block_size * (V - done) < POOL_MIN_SECONDS:
            workers = 1
    if V > done:
        parts.append(run(done, V, workers, progress))
    p, s0, ok = (np.concatenate(a) for a in zip(*parts))
    # one-off work an engine does later (e.g. the dictionaries of directions met after the
    # first voxels) is set-up too
    setup_seconds += getattr(engine, "setup_extra", 0.0) - extra_before
    n_all = int(np.prod(mask.shape))
    idx = np.flatnonzero(mask.ravel())[use]

    def to_map(values, fill=np.nan):
        out = np.full(n_all, fill, dtype=float)
        out[idx] = values
        return out.reshape(mask.shape)

    params = np.full(mask.shape + (model.parameters.size,), np.nan)
    params.reshape(n_all, params.shape[-1])[idx] = p
    b0 = b0_means(vox[use], acq)  # (V, n_te)
    s0_te = np.full(mask.shape + (acq.n_te,), np.nan)
    s0_te.reshape(n_all, acq.n_te)[idx] = s0[:, None] * b0
    success = to_map(ok, 0).astype(bool)
    extra = {}
    if quality and len(y):
        sig_q = sig_n
        if sig_n is not None and acq is not full_acq:  # a powder mean of n directions
            from .engines.posterior import powder_counts

            sig_q = sig_n / np.sqrt(powder_counts(acq))
        for name, value in quality_maps(engine, acq, p, s0, y, sig_q).items():
            extra[name] = to_map(value * (b0[:, 0] if name == "s0_std" else 1.0))
    if sigma_vox is not None and map_given:
        sigma_used = to_map(sigma_vox[use])
    seconds = time.perf_counter() - t0
    log.info("%s fit of %d voxels in %.2f s (set-up %.2f s)", method, int(use.sum()), seconds,
             setup_seconds)
    return FitResult(model=model, acq=acq, params=params, s0=s0_te[..., 0], success=success,
                     mask=mask, method=method, sigma=sigma_used, seconds=seconds, extra=extra,
                     s0_te=s0_te if acq.n_te > 1 and not relaxed else None,
                     setup_seconds=setup_seconds, engine=engine_cls.__name__)


def powder_averaged(acq, vox):
    """The spherical-mean acquisition and the powder averages of ``vox`` (V, N).

    An acquisition with one measurement per shell and echo time is returned unchanged.
    """
    from ..data.powder import powder_average, powder_groups, spherical_mean_acquisition

    if powder_groups(acq)[1] == acq.n_measurements:
        return acq, vox
    return spherical_mean_acquisition(acq), powder_average(acq, vox)


def _sigma_per_voxel(sigma, mask):
    """σ of every masked voxel (V,) from a σ map (*spatial), or None for a scalar/None."""
    if sigma is None or np.ndim(sigma) == 0:
        return None
    arr = np.asarray(sigma, dtype=float)
    if arr.shape != mask.shape:
        raise ValueError(f"sigma map shape {arr.shape} does not match the data's spatial "
                         f"shape {mask.shape}; give a σ map computed on this image.")
    return arr[mask]
