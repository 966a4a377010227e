"""Whole-brain execution: chunked, bounded in memory, resumable, optionally on Dask.

:func:`run_chunked` cuts the volume into slabs along z, reads each slab lazily from the
NIfTI (``dataobj``; gzip files are read through ``indexed_gzip`` so a slab does not
decompress the file from its start), runs a *block function* on the slab's brain voxels,
and keeps each finished slab in a work folder (``.npz``, written atomically). Maps are
assembled and written (atomically) only when every slab is done; an interrupted run
(Ctrl-C, kill) resumes with ``resume=True`` and skips the slabs already kept. Peak memory
is one slab of data plus the output maps.

Block functions are picklable callables ``fn(signal (n, N)) -> {name: (n,) or (n, 3)}``:
:class:`FitBlock` (a fitting engine) and :class:`PredictBlock` (a saved learned
estimator). With ``scheduler="tcp://HOST:PORT"`` (an existing ``dask scheduler``) or
``workers=N`` (a local Dask cluster) slabs are computed on Dask workers, which read the
input files themselves (they must see the same paths); results equal the in-process run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import workdir
from .workdir import MANIFEST, assemble, remove_work_files, save_slab  # noqa: F401 (re-export)

log = logging.getLogger(__name__)

#: Brain voxels aimed at per slab.
CHUNK_VOXELS = 50_000


# ------------------------------------------------------------------ block functions
def _add_timing(timing: dict, n_voxels: int, seconds: float, setup_seconds: float) -> None:
    """Accumulate one block's fit time into ``timing`` (in-process runs only)."""
    timing["n_voxels"] = timing.get("n_voxels", 0) + int(n_voxels)
    timing["fit_seconds"] = timing.get("fit_seconds", 0.0) + float(seconds)
    timing["setup_seconds"] = timing.get("setup_seconds", 0.0) + float(setup_seconds)


@dataclass
class FitBlock:
    """Fit a model to a block of raw signals (picklable for Dask workers).

    Attributes
    ----------
    model : str or dict
        Family name or model spec (:func:`~microlearn.models.spec.model_reference`): a
        composed model or changed settings reach every slab and Dask worker.
    n_fibres : int
    method : str
        Fitting engine.
    acq : dict
        ``Acquisition.to_dict()``.
    sigma : float or None
        Noise σ in signal units, fixed for the whole volume so chunks agree.
    workers : int or None
        Cores used inside one block.
    options : dict
        Engine options.
    timing : dict
        Filled by in-process calls: ``n_voxels``, ``fit_seconds`` (signals in memory ->
        maps in memory, summed over blocks, set-up included) and ``setup_seconds`` (see
        :attr:`microlearn.fitting.FitResult.setup_seconds`). Empty after Dask runs.
    sigma_map : str or None
        A σ map NIfTI (signal units, the image's spatial shape); overrides ``sigma``.
    """

    model: str | dict
    n_fibres: int
    method: str
    acq: dict
    sigma: float | None = None
    workers: int | None = None
    options: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict, compare=False, repr=False)
    sigma_map: str | None = None

    @property
    def needs_slab(self) -> bool:
        """A σ map is read slab by slab, so the block needs to know where it is."""
        return self.sigma_map is not None

    def __call__(self, signal, slab=None):
        import warnings

        t0 = time.perf_counter()
        from ..acquisition import Acquisition
        from ..fitting import fit
        from ..models.spec import resolve_model

        model = resolve_model(self.model, self.n_fibres)
        sigma = 0 if self.sigma is None else self.sigma
        if self.sigma_map is not None:
            (z0, z1), mask_slab = slab
            sigma = read_slab(self.sigma_map, z0, z1, dtype=float, ndim=3)[mask_slab]
            sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 0.0)  # see check_sigma_map
            signal, sigma = signal[:, None, :], sigma[:, None]  # (n, 1) "spatial" axes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # bad voxels are counted below
            res = fit(model, Acquisition.from_dict(self.acq), signal, method=self.method,
                      sigma=sigma, workers=self.workers, **self.options)
        seconds = time.perf_counter() - t0
        _add_timing(self.timing, len(signal), seconds, res.setup_seconds + seconds - res.seconds)
        self.timing["engine"] = res.engine  # what ran (fit.json reports it)
        maps = res.maps()
        maps["success"] = res.success.astype(np.float32)
        if self.sigma_map is not None:  # back from (n, 1) to (n,)
            maps = {k: v.reshape((v.shape[0],) + v.shape[2:]) for k, v in maps.items()}
        return maps

    def key(self) -> dict:
        return {"kind": "fit", "model": self.model, "n_fibres": self.n_fibres,
                "method": self.method, "sigma": self.sigma, "options": self.options,
                "sigma_map": self.sigma_map}


@dataclass
class AutoFitBlock:
    """``fit --n-fibres auto`` on a block of raw signals (picklable for Dask workers).

    The single-fibre response of the CSD peaks and σ are estimated once per volume
    (:func:`sample_response`, :func:`sample_sigma`) so every slab selects fibres the same
    way as the in-memory :func:`microlearn.fitting.selection.fit_auto`. The maps include
    the quality maps (``residual_rms``, ``at_bound``, ``<name>_std``) of the model selected
    in each voxel (:mod:`microlearn.fitting.selection_quality`).

    Attributes
    ----------
    model, method : str
    acq : dict
        ``Acquisition.to_dict()``.
    sigma : float or None
    response : tuple or None
        DIPY single-fibre response ``(evals (3,), S0)`` for CSD-peak starts (``csd_starts``
        of :func:`~microlearn.fitting.selection.fit_auto`); None without them.
    workers : int or None
    criterion : str
    timing : dict
        As :attr:`FitBlock.timing`.
    """

    model: str | dict
    method: str
    acq: dict
    sigma: float | None
    response: tuple | None = None
    workers: int | None = None
    criterion: str = "aic"
    timing: dict = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, signal):
        import warnings

        t0 = time.perf_counter()
        from ..acquisition import Acquisition
        from ..fitting.selection import fit_auto

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # bad voxels are counted later
            # the command says it once (commands/fit.py), not once per slab
            warnings.filterwarnings("ignore", message=".*gradient directions on the CSD shell")
            try:
                res = fit_auto(self.model, Acquisition.from_dict(self.acq), signal,
                               method=self.method, sigma=0 if self.sigma is None else self.sigma,
                               response=self.response, workers=self.workers,
                               criterion=self.criterion, csd_starts=self.response is not None)
            except ValueError as err:
                if "no voxel has a valid signal" in str(err):
                    return {}  # a slab of unusable voxels: NaN maps
                raise
        seconds = time.perf_counter() - t0
        _add_timing(self.timing, len(signal), seconds,
                    getattr(res, "setup_seconds", 0.0) + seconds - res.seconds)
        maps = res.maps()
        maps["success"] = res.success.astype(np.float32)
        return maps

    def key(self) -> dict:
        response = None
        if self.response is not None:
            evals, s0 = self.response
            response = [float(v) for v in np.ravel(evals)] + [float(s0)]
        return {"kind": "fit-auto", "model": self.model, "method": self.method,
                "sigma": self.sigma, "criterion": self.criterion, "response": response}


@dataclass
class PredictBlock:
    """Apply a saved learned estimator to a block of raw signals (picklable)."""

    estimator_path: str

    def __call__(self, signal):
        return _cached_estimator(self.estimator_path).predict_block(signal)

    def key(self) -> dict:
        meta = Path(self.estimator_path) / "estimator.json"
        digest = hashlib.sha1(meta.read_bytes()).hexdigest()[:16] if meta.exists() else ""
        return {"kind": "predict", "estimator": str(self.estimator_path), "meta": digest}


_ESTIMATORS: dict = {}


def _cached_estimator(path):
    if path not in _ESTIMATORS:
        from ..learning import load_estimator

        _ESTIMATORS[path] = load_estimator(path)
    return _ESTIMATORS[path]


# ------------------------------------------------------------------ slabs
def plan_slabs(mask, chunk_voxels: int = CHUNK_VOXELS) -> list[tuple[int, int]]:
    """z ranges ``(z0, z1)`` holding about ``chunk_voxels`` brain voxels each."""
    per_z = np.asarray(mask).reshape(-1, mask.shape[-1]).sum(0) if mask.ndim == 3 else None
    if per_z is None:
        raise ValueError("mask must be 3-D to plan slabs.")
    slabs, start, count = [], 0, 0
    for z, n in enumerate(per_z):
        count += int(n)
        if count >= chunk_voxels:
            slabs.append((start, z + 1))
            start, count = z + 1, 0
    if start < mask.shape[-1]:
        slabs.append((start, mask.shape[-1]))
    return slabs


#: A whole small volume read once (by :func:`central_block`) and handed to the slab loop:
#: ``(path, size, mtime_ns, z0, z1, dtype, ndim) -> array``, one entry, taken by its next
#: read.
_READ_ONCE: dict = {}
#: Volumes with at most this many values are read whole by :func:`central_block`.
SMALL_VOLUME = 50_000_000


def _read_key(image_path, z0, z1, dtype, ndim):
    st = os.stat(image_path)
    return (str(image_path), st.st_size, st.st_mtime_ns, int(z0), int(z1),
            np.dtype(dtype).str, int(ndim))


def read_slab(image_path, z0: int, z1: int, dtype=np.float32, ndim=4, *,
              keep=False) -> np.ndarray:
    """``data[:, :, z0:z1, ...]`` read lazily from a NIfTI file (4-D, or 3-D maps).

    ``keep=True`` keeps the array for the next read of the same slab of the unchanged file
    (a small volume checked, sampled for σ and then fitted is decompressed once); a read
    without ``keep`` takes it.
    """
    import nibabel as nib

    from ..data.dataset import nifti_errors

    key = _read_key(image_path, z0, z1, dtype, ndim)
    kept = _READ_ONCE.pop(key, None)
    if kept is not None:
        if keep:  # another reader of the same slab still follows
            _READ_ONCE[key] = kept
        return kept
    _READ_ONCE.clear()
    with nifti_errors(image_path):
        img = nib.load(str(image_path), keep_file_open=True)
        index = (slice(None), slice(None), slice(z0, z1)) + ((slice(None),) if ndim == 4 else ())
        out = np.asarray(img.dataobj[index], dtype=dtype)
    if keep:
        _READ_ONCE[key] = out
    return out


def _read_voxels(image_path, mask_slab, z0, z1) -> np.ndarray:
    """Brain voxels ``(n, N)`` of one slab."""
    return read_slab(image_path, z0, z1)[mask_slab]


def _run_block(block_fn, vox, slab=None) -> dict:
    if not len(vox):
        return {}
    out = block_fn(vox, slab=slab) if getattr(block_fn, "needs_slab", False) else block_fn(vox)
    return {k: np.asarray(v) for k, v in out.items()}


def _slab_job(block_fn, image_path, mask_slab, z0, z1):
    return _run_block(block_fn, _read_voxels(image_path, mask_slab, z0, z1),
                      ((z0, z1), mask_slab))


def _run_local(block_fn, image_path, mask, slabs, todo, work_dir, bar) -> None:
    """In-process loop; the next slab is read in a thread while this one is computed.

    Reading (decompression, int -> float casting) and the block function both release the
    GIL for most of their time, so the read-ahead hides most of the I/O; at most two slabs
    are in memory at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    def read(i):
        z0, z1 = slabs[i]
        return _read_voxels(image_path, mask[..., z0:z1], z0, z1)

    with ThreadPoolExecutor(1, thread_name_prefix="microlearn-read") as pool:
        pending = pool.submit(read, todo[0]) if todo else None
        for k, i in enumerate(todo):
            vox = pending.result()
            pending = pool.submit(read, todo[k + 1]) if k + 1 < len(todo) else None
            save_slab(work_dir, i, _run_block(block_fn, vox, (slabs[i], mask[..., slice(
                *slabs[i])])))
            del vox
            if bar:
                z0, z1 = slabs[i]
                bar.update(int(mask[..., z0:z1].sum()))


# ------------------------------------------------------------------ work folder (see workdir)
def _manifest(dataset, block_fn, slabs) -> dict:
    """:func:`microlearn.run.workdir.manifest` (the old name, kept for callers)."""
    return workdir.manifest(dataset, block_fn, slabs)


def _prepare_work_dir(work_dir, manifest: dict, resume: bool) -> set[int]:
    """Done slab indices of ``work_dir`` prepared for the job (no lock: tests and tools)."""
    work_dir = Path(work_dir)
    workdir.check_work_dir(work_dir)
    made = not work_dir.exists()
    work_dir.mkdir(parents=True, exist_ok=True)
    return workdir.prepare_work_dir(work_dir, manifest, resume, made=made)[0]


_save_slab = save_slab


# ------------------------------------------------------------------ driver
def _client(scheduler, workers):
    if scheduler is None and not workers:
        return None, None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--scheduler/--workers with Dask need the dask extra: "
                         "pip install 'microlearn[dask]'.") from None
    if scheduler is not None:
        return Client(scheduler, timeout="20s"), None
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1")
    return Client(cluster), cluster


def run_chunked(block_fn, dataset, out_dir, *, work_dir=None, resume=False,
                chunk_voxels=CHUNK_VOXELS, scheduler=None, workers=None, progress=True,
                keep_work=False, extra_maps=None, on_complete=None, force=False,
                units=None, compress=True, on_start=None) -> dict:
    """Run ``block_fn`` over a dataset slab by slab and write the maps to ``out_dir``.

    Parameters
    ----------
    block_fn : callable
        ``fn(signal (n, N)) -> {name: (n,) | (n, 3)}`` with a ``key()`` describing the job.
    dataset : Dataset
        From :func:`microlearn.data.dataset.load_dataset` (the image is read lazily).
    out_dir : path
        Output folder for ``<map>.nii.gz``.
    work_dir : path, optional
        Where finished slabs are kept (default ``<out_dir>.work``).
    resume : bool
        Continue a previous run of the same job from its work folder.
    chunk_voxels : int
        Brain voxels per slab (memory and granularity).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:port``).
    workers : int, optional
        Start a local Dask cluster with this many worker processes.
    progress : bool
    keep_work : bool
        Keep the work folder after success.
    extra_maps : dict, optional
        Spatial maps written alongside (e.g. ``n_fibres``).
    on_complete : callable, optional
        ``fn(staging_folder, result)`` writes more files (e.g. ``fit.json``) that appear
        together with the maps.
    force : bool
        Replace maps that already exist in ``out_dir`` (other files there are never
        touched; see :func:`microlearn.data.writers.staged_output`).
    units : dict, optional
        Unit of each map, written in its header.
    compress : bool
        ``False``: ``<map>.nii`` without gzip (faster to write).
    on_start : callable, optional
        Called once every option is checked and the work folder is ready, before the
        first slab (e.g. to print input warnings only for a run that goes ahead).

    Returns
    -------
    dict
        ``maps`` (name -> spatial array), ``n_voxels`` (brain voxels), ``seconds`` (the slab
        loop of this run), ``slabs``, ``resumed`` (slabs kept from an earlier run),
        ``n_fitted`` (brain voxels of the slabs this run computed), ``n_answered`` (voxels
        with an answer), ``n_answered_fitted`` (of them, those this run computed),
        ``n_bad``.

    Raises
    ------
    ValueError
        Another live run uses the work or output folder (one run per output folder), the
        work folder is not microlearn's or belongs to another job, or a kept slab is
        damaged; each naming the file and the fix.
    """
    from ..data import locks
    from ..data.writers import OUT_LOCK, check_creatable, staged_output, write_maps

    out_dir = check_creatable(out_dir)
    locks.check_free(out_dir / OUT_LOCK, what=f"output folder {out_dir}")
    work_dir = Path(work_dir) if work_dir else out_dir.with_name(out_dir.name + ".work")
    mask = np.asarray(dataset.mask, bool)
    slabs = plan_slabs(mask, int(chunk_voxels))
    job = workdir.manifest(dataset, block_fn, slabs)
    workdir.check_work_dir(work_dir)
    made_now = not work_dir.exists()
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the work folder {work_dir}: {err.strerror}; give "
                         "--work-dir on a writable disk.") from None
    lock = work_dir / workdir.WORK_LOCK
    what = f"work folder {work_dir} (of --out {out_dir})"
    record = locks.acquire(lock, what=what)
    made = made_now
    try:
        done, made = workdir.prepare_work_dir(work_dir, job, resume, made=made_now, mask=mask)
        if on_start is not None:
            on_start()
        result = _compute(block_fn, dataset, mask, slabs, done, work_dir, progress,
                          scheduler, workers)
        if not locks.still_held(lock, record):
            raise ValueError(f"{what}: another run took over the work folder during this one;"
                             " its slabs cannot be trusted: run again (one run per output "
                             "folder).")
        workdir.recheck_manifest(work_dir, job)
        maps = assemble(work_dir, slabs, mask)
        result.update(_answered(maps, mask, slabs, done))
        maps.update(extra_maps or {})
        result["maps"] = maps
        with staged_output(out_dir, force=force) as staging:  # all maps appear at once
            write_maps(staging, maps, dataset.affine, mask=mask, units=units,
                       compress=compress, header=getattr(dataset.image, "header", None))
            if on_complete is not None:
                on_complete(staging, result)
    except BaseException:
        locks.release(lock, record)
        if made_now and not any(work_dir.glob("slab_*.npz")):  # nothing worth resuming
            workdir.remove_work_files(work_dir)
        raise
    if not keep_work:
        workdir.remove_work_files(work_dir, keep_folder=True)
    locks.release(lock, record)
    if not keep_work and (made or work_dir == out_dir.with_name(out_dir.name + ".work")):
        try:
            work_dir.rmdir()  # a --work-dir the user made stays
        except OSError:
            pass
    return result


def _compute(block_fn, dataset, mask, slabs, done, work_dir, progress, scheduler,
             workers) -> dict:
    """Run the slabs not yet ``done``, keeping each in ``work_dir``; counts and time."""
    todo = [i for i in range(len(slabs)) if i not in done]
    image_path = dataset.image.get_filename()
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(mask.sum()), desc=f"{block_fn.key()['kind']} (slabs)", unit="vox")
        bar.update(int(sum(mask[..., slabs[i][0]:slabs[i][1]].sum() for i in done)))
    client, cluster = _client(scheduler, workers)
    try:
        if client is None:
            _run_local(block_fn, image_path, mask, slabs, todo, work_dir, bar)
        else:
            from distributed import as_completed

            futures = {client.submit(_slab_job, block_fn, image_path,
                                     mask[..., slabs[i][0]:slabs[i][1]], *slabs[i],
                                     pure=False, retries=2): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                save_slab(work_dir, i, fut.result())
                if bar:
                    bar.update(int(mask[..., slabs[i][0]:slabs[i][1]].sum()))
    finally:
        if bar:
            bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        _READ_ONCE.clear()
    return {"n_voxels": int(mask.sum()), "seconds": time.perf_counter() - t0,
            "slabs": len(slabs), "resumed": len(done),
            "n_fitted": int(sum(mask[..., slabs[i][0]:slabs[i][1]].sum() for i in todo))}


def _answered(maps, mask, slabs, done) -> dict:
    """Voxels with an answer: all of them, and those of the slabs computed by this run.

    A voxel without an answer has no S0 (fits) or no value in any map (learned maps); a
    NaN in one map alone is by design (e.g. odi of a 0-fibre voxel of an auto fit).
    """
    scalar = [v for k, v in maps.items() if v.ndim == mask.ndim and k != "n_fibres"]
    answered = (np.isfinite(maps["s0"]) if "s0" in maps else
                np.logical_or.reduce([np.isfinite(v) for v in scalar]) if scalar
                else np.zeros(mask.shape, bool)) & mask
    n_bad = int((mask & ~answered).sum())
    if n_bad:
        import warnings

        what = ("no voxel has a usable signal" if not answered.any() else
                f"{n_bad} voxel(s) have NaN/infinite samples or a b0 mean <= 0")
        warnings.warn(f"{what}; they get NaN maps.", RuntimeWarning, stacklevel=3)
    this_run = np.zeros(mask.shape[-1], bool)
    for i, (z0, z1) in enumerate(slabs):
        this_run[z0:z1] = i not in done
    return {"n_bad": n_bad, "n_answered": int(answered.sum()),
            "n_answered_fitted": int((answered & this_run).sum())}


def central_block(dataset, max_voxels: int = 20_000):
    """Signals and mask of the contiguous z-slices around the fullest one, about
    ``max_voxels`` brain voxels, read once per dataset (σ, the input checks and the
    fibre response share it; a small volume is read whole and kept for the fit too).

    Returns
    -------
    data : ndarray, shape (X, Y, z1 - z0, N), float32
    mask : ndarray of bool, shape (X, Y, z1 - z0)
    """
    key = ("central", int(max_voxels))
    cache = getattr(dataset, "cache", None)
    if cache is not None and key in cache:
        return cache[key]
    mask = np.asarray(dataset.mask, bool)
    per_z = mask.reshape(-1, mask.shape[-1]).sum(0)
    if per_z.sum() == 0:
        raise ValueError("the brain mask is empty; give a mask with brain voxels (--mask).")
    z0 = z1 = int(np.argmax(per_z))
    total = per_z[z0]
    while total < max_voxels and (z0 > 0 or z1 < mask.shape[-1] - 1):
        if z0 > 0:
            z0 -= 1
            total += per_z[z0]
        if z1 < mask.shape[-1] - 1:
            z1 += 1
            total += per_z[z1]
    path = dataset.image.get_filename()
    if np.prod(dataset.image.shape, dtype=float) <= SMALL_VOLUME:  # read once, fit from it
        data = read_slab(path, 0, mask.shape[-1], keep=True)[:, :, z0:z1 + 1]
    else:
        data = read_slab(path, z0, z1 + 1)
    out = (data, mask[..., z0:z1 + 1])
    if cache is not None:
        cache[key] = out
    return out


def sample_voxels(dataset, max_voxels: int | None = None) -> np.ndarray:
    """Raw signals (n, N) of the brain voxels of the central slices, about ``max_voxels``
    (:func:`central_block`; default the block the input checks read); voxels with NaN/inf
    values or a non-positive b0 are left out.
    """
    from ..data.qc import SAMPLE_VOXELS
    from ..data.voxels import usable_voxels

    max_voxels = SAMPLE_VOXELS if max_voxels is None else max_voxels
    data, mask = central_block(dataset, max_voxels)
    vox = data[mask]
    return vox[usable_voxels(vox, dataset.acq)].astype(float)


def sample_sigma(dataset, max_voxels: int | None = None):
    """Noise σ (signal units) from the b0 repeats (of each TE) of brain voxels in the
    central slices (by default the block the input checks read: one read for both)."""
    from ..data.qc import SAMPLE_VOXELS
    from ..data.voxels import estimate_sigma_by_te

    max_voxels = SAMPLE_VOXELS if max_voxels is None else max_voxels
    sigma = estimate_sigma_by_te(sample_voxels(dataset, max_voxels), dataset.acq)
    return None if sigma is None else float(sigma)


def sample_response(dataset, max_voxels: int = 100_000) -> tuple:
    """DIPY single-fibre response ``(evals, S0)`` from the brain voxels of the fullest
    slices (one response for the whole volume, as CSD expects)."""
    from ..crossings.dipy_tools import ssst_response

    vox = sample_voxels(dataset, max_voxels)
    b0 = vox[:, dataset.acq.b0_mask].mean(1)
    response, _ = ssst_response(dataset.acq, vox / b0[:, None])
    evals, s0 = response
    return (np.asarray(evals, dtype=float), float(s0))
