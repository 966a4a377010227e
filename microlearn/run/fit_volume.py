"""``fit_volume``: one call that fits a model to a dataset and writes its maps and fit.json.

The ``fit`` command parses its arguments and calls this; so can a script or a panel. It
chooses the block (fixed fibre count or per-voxel model selection), σ, runs the chunked
slab loop (resumable, Dask optional) and records what ran in ``fit.json``: the model's spec
and fixed values, the engine and its convergence, noise, timing, quality, identifiability.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NoiseChoice:
    """Where σ comes from: ``sigma`` given (signal units; 0 = Gaussian) or a σ map."""

    sigma: float | None = None
    sigma_map: Path | None = None


def versions() -> dict:
    """Versions of microlearn and the libraries a fit depends on (for the records)."""
    import dipy
    import nibabel
    import numpy
    import scipy

    from .. import __version__

    return {"microlearn": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "dipy": dipy.__version__, "nibabel": nibabel.__version__,
            "python": platform.python_version()}


def timing_fields(timing: dict, run: dict) -> dict:
    """fit.json's fit timings from a block function's ``timing`` (see ``FitBlock``) and the
    counts of :func:`~microlearn.run.chunked.run_chunked`.

    Only the voxels this run fitted count: slabs kept from an interrupted run
    (``--resume``) took no time now, and voxels without a usable signal (NaN samples, a b0
    mean <= 0) are skipped, not fitted. ``fit_seconds`` spans the signals in memory to the
    maps in memory with every first-call cost included; ``setup_seconds`` is its part that
    does not scale with the voxels (engine imports, compiled-kernel loading or compilation,
    dictionaries, tables), timed by fitting the first few voxels alone; ``vox_per_s`` is
    the steady throughput after set-up, None when this run fitted no usable voxel. After a
    Dask run the workers' timings are not seen here: the slab loop's time (reading
    included) stands in and the set-up is not separated.
    """
    from ..fitting.api import throughput

    n = int(run.get("n_answered_fitted", run.get("n_voxels", 0)))
    if timing.get("n_voxels"):
        fit_s, setup = timing["fit_seconds"], timing["setup_seconds"]
        how = ("fit_seconds: signals in memory -> maps in memory, first-call costs included; "
               "setup_seconds: imports, kernel loading/compilation, tables, timed by fitting "
               "the first voxels alone; vox_per_s: voxels with a usable signal fitted by "
               "this run / (fit_seconds - setup_seconds)")
    else:
        fit_s, setup = run.get("seconds", 0.0), 0.0
        how = ("Dask workers: fit_seconds is the slab loop (reading included); set-up not "
               "split" if run.get("n_fitted") else "no slab fitted by this run (all resumed)")
    out = {"fit_seconds": fit_s, "setup_seconds": setup,
           "n_fitted": int(run.get("n_fitted", n)), "n_usable_fitted": n,
           "vox_per_s": None, "overall_vox_per_s": None, "timing": how}
    if n == 0:
        if run.get("n_fitted"):
            out["timing"] = ("no voxel fitted by this run has a usable signal (NaN/infinite "
                             "samples or a b0 mean <= 0): no speed to report")
        return out
    steady = throughput(n, fit_s, setup)
    out["vox_per_s"] = steady if np.isfinite(steady) else n / max(fit_s, 1e-9)
    out["overall_vox_per_s"] = n / max(fit_s, 1e-9)
    return out


def check_sigma(sigma):
    """``sigma`` (signal units) when it is a finite number >= 0 (0: Gaussian noise, no
    Rician floor), else ``ValueError`` naming ``--sigma``."""
    if sigma is None:
        return None
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"--sigma {sigma}: the noise σ must be a finite number > 0 in signal "
                         "units (or 0 for Gaussian noise without a Rician floor); leave it "
                         "out to estimate σ from the b0 repeats.")
    return value


def check_sigma_map(path, dataset) -> str:
    """The σ map's path after checking it: a 3-D map of the DWI's spatial shape and
    position (affine), with a positive finite σ in the brain mask.

    Voxels of the mask whose σ is not positive and finite are fitted without the Rician
    floor (σ 0), with a warning counting them.
    """
    import warnings

    from ..data.dataset import check_same_grid, load_nifti, nifti_errors

    path = Path(path)
    img = load_nifti(path)
    shape = tuple(img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if shape != tuple(dataset.shape):
        raise ValueError(f"{path}: σ map shape {tuple(img.shape)} does not match the DWI's "
                         f"spatial shape {tuple(dataset.shape)}; give the σ map computed on "
                         "this image (e.g. by MP-PCA denoising of it).")
    check_same_grid(img.affine, dataset.affine, dataset.shape, path, "σ map")
    with nifti_errors(path):
        values = np.asarray(img.dataobj, dtype=np.float64).reshape(shape)[dataset.mask]
    good = np.isfinite(values) & (values > 0)
    if not good.any():
        raise ValueError(f"{path}: no voxel of the brain mask has a positive finite σ (the map "
                         "holds NaN, zero or negative values there); give the σ map of this "
                         "image in signal units, or --sigma.")
    if not good.all():
        warnings.warn(f"{path}: {int((~good).sum())} voxel(s) of the mask have a σ that is "
                      "not positive and finite; they are fitted without the Rician floor "
                      "(σ 0).", RuntimeWarning, stacklevel=2)
    return str(path.resolve())


def noise_record(noise: NoiseChoice, sigma, acq) -> dict:
    """What noise model the fit used, for ``fit.json``."""
    if noise.sigma_map is not None:
        return {"model": "rician", "sigma": "map", "source": str(noise.sigma_map)}
    if sigma is None or float(sigma) == 0:
        return {"model": "gaussian", "sigma": None,
                "source": "--sigma 0" if noise.sigma is not None else
                "fewer than 2 b0 per echo time: no Rician floor"}
    if noise.sigma is not None:
        return {"model": "rician", "sigma": float(sigma), "source": "--sigma"}
    from ..data.noise import SIGMA_METHOD

    source = "b0 repeats" + (" of each echo time, pooled" if acq.n_te > 1 else "")
    return {"model": "rician", "sigma": float(sigma), "source": source,
            "estimator": SIGMA_METHOD}


def model_record(model) -> dict:
    """What fit.json and saved estimators record of the model: name, family, its spec (to
    rebuild it with ``--model``), the fixed values (SI) and the free parameters."""
    return {"name": model.name, "family": model.family, "spec": model.to_spec(),
            "fixed": model.fixed_values, "parameters": model.parameter_names}


def output_names(model, auto: bool) -> list[str]:
    """The maps a fit of ``model`` writes (checked against ``--force`` before any work)."""
    from ..fitting.quality import quality_map_names

    names = model.map_names + ["s0", "success"] + (["n_fibres"] if auto else [])
    return names + quality_map_names(model)  # auto: the model selected per voxel


#: Units of the maps that are not model parameters.
OTHER_UNITS = {"s0": "signal units of the input", "success": "1", "at_bound": "1",
               "n_fibres": "1", "residual_rms": "1 (relative to S0)",
               "s0_std": "signal units of the input"}


def map_units(model, names) -> dict:
    """Unit (SI, as written in the files) and display unit of each map, for ``fit.json``
    and the map headers.

    Returns
    -------
    dict
        name -> ``{"unit", "display_unit", "display_scale"}``: a value v in the file is
        ``v / display_scale`` in ``display_unit`` (a diameter of 3e-06 m is 3 µm).
    """
    space = model.parameters
    out = {}
    for name in names:
        base = name[:-4] if name.endswith("_std") else name
        if base in OTHER_UNITS:
            out[name] = {"unit": OTHER_UNITS[base], "display_unit": OTHER_UNITS[base],
                         "display_scale": 1.0}
            continue
        stem = base.rsplit("_", 1)[0] if base.rsplit("_", 1)[-1].isdigit() else base
        key = base if base in space else stem if stem in space else None
        if key is None:
            out[name] = {"unit": "1", "display_unit": "1", "display_scale": 1.0}
            continue
        p = space[key]
        if p.kind == "orientation":
            out[name] = {"unit": "unit vector (x, y, z in voxel axes)",
                         "display_unit": "unit vector", "display_scale": 1.0}
        else:
            out[name] = {"unit": p.unit or "1", "display_unit": p.display_unit or "1",
                         "display_scale": float(p.display_scale)}
    return out


def fit_volume(ds, model, out, *, method: str = "mix", auto: bool = False,
               noise: NoiseChoice = NoiseChoice(), force: bool = False, scale=None,
               started: float | None = None, on_start=None) -> tuple[dict, Path]:
    """Fit ``model`` to every voxel of ``ds`` and write the maps and ``fit.json`` to ``out``.

    Parameters
    ----------
    ds : Dataset
        From :func:`microlearn.data.dataset.load_dataset`.
    model : MultiCompartmentModel
        The model (any settings, or composed); with ``auto`` its 3-fibre version, whose
        0–3 fibre variants are selected per voxel.
    out : Path
        Output folder (a BIDS input writes a BIDS-derivatives folder inside it).
    method : str
        Fitting engine.
    auto : bool
        Choose the fibre count per voxel (model selection).
    noise : NoiseChoice
        σ given, a σ map, or neither (σ from the b0 repeats).
    force : bool
        Replace this run's files already in ``out``.
    scale : dict, optional
        Whole-brain options of :func:`~microlearn.run.chunked.run_chunked`.
    started : float, optional
        ``time.perf_counter()`` at the start of the command (for ``seconds``).
    on_start : callable, optional
        Called when every input and option is checked, before the first slab.

    Returns
    -------
    info : dict
        What ``fit.json`` holds.
    out_dir : Path
        Where the maps are.
    """
    from ..data.writers import write_json
    from ..fitting.api import describe_convergence, engine_class
    from ..fitting.quality import identifiability, summarise
    from ..models.spec import model_reference
    from .chunked import AutoFitBlock, FitBlock, run_chunked, sample_sigma

    started = time.perf_counter() if started is None else started
    if auto and ds.acq.n_te > 1:
        raise ValueError(f"--n-fibres auto does not handle {ds.acq.n_te} echo times yet; give "
                         "a fixed fibre count (each TE is then normalised by its own b0s).")
    if noise.sigma_map is not None and auto:
        raise ValueError("--sigma-map is not supported with --n-fibres auto yet; give --sigma "
                         "(e.g. the map's median) or a fixed fibre count.")
    check_sigma(noise.sigma)
    sigma_map = check_sigma_map(noise.sigma_map, ds) if noise.sigma_map is not None else None
    sigma = noise.sigma if noise.sigma is not None or sigma_map else sample_sigma(ds)
    record_noise = noise_record(noise, sigma, ds.acq)
    scale = dict(scale or {})
    # on Dask (a scheduler or local workers) each block uses one core
    workers = 1 if (scale.get("scheduler") or scale.get("workers")) else None
    reference = model_reference(model)
    if auto:  # slab by slab like any fit (greedy starts: no CSD response needed)
        block = AutoFitBlock(model=reference, method=method, acq=ds.acq.to_dict(),
                             sigma=sigma, workers=workers)
    else:
        block = FitBlock(model=reference, n_fibres=model.n_fibres, method=method,
                         acq=ds.acq.to_dict(), sigma=sigma, workers=workers,
                         sigma_map=sigma_map)

    def describe(maps, run):
        n = run["n_voxels"]
        ok = maps["success"][ds.mask] > 0
        answered = np.isfinite(maps["s0"][ds.mask]) if "s0" in maps else ok
        engine = engine_class(method, model.with_fibres(1) if auto else model, ds.acq)
        ran = block.timing.get("engine")  # in-process runs know what ran (Dask: the choice)
        return {"model": model.family if auto else model.name, "method": method,
                "model_record": model_record(model),
                "n_fibres": "auto" if auto else model.n_fibres,
                "n_voxels": n, "seconds": time.perf_counter() - started,
                **timing_fields(block.timing, run), "n_usable": run.get("n_answered"),
                "sigma": sigma,
                "success_fraction": float(ok.mean()) if ok.size else 0.0,
                "convergence": describe_convergence(ok, answered, engine, ran),
                "noise": record_noise, "quality": summarise(maps, ds.mask),
                "identifiability": identifiability(model, maps, ds.mask),
                "maps": sorted(maps), "units": map_units(model, sorted(maps)),
                "input": str(ds.path), "versions": versions()}

    bids = ds.source.get("form") == "bids"  # BIDS in: BIDS-derivatives layout out
    out_dir = Path(out)
    if bids:
        from ..data.bids import (
            derivative_dir,
            output_files,
            rename_outputs,
            write_dataset_description,
        )
        from ..data.writers import check_existing

        out_dir = derivative_dir(out, ds.source)
        # --force is checked on the real destinations, before any work
        check_existing(out_dir, output_files(ds.source, model.family if auto else model.name,
                                             output_names(model, auto)), force=force)
    done = {}

    def finish(staging, run):
        done["info"] = describe(run["maps"], run)
        write_json(staging / "fit.json", done["info"])
        if bids:
            rename_outputs(staging, ds.source, done["info"]["model"])

    units = {k: v["unit"] for k, v in map_units(model, output_names(model, auto)).items()}
    run_chunked(block, ds, out_dir, on_complete=finish, force=force, units=units,
                on_start=on_start, **scale)
    if bids:
        write_dataset_description(out)
    return done["info"], out_dir


__all__ = ["NoiseChoice", "check_sigma", "check_sigma_map", "fit_volume", "map_units",
           "model_record", "noise_record", "output_names", "timing_fields", "versions"]
