"""``microlearn fit``: fit a model to every brain voxel and write its maps."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from ..cli import echo, warn
from ._common import (
    add_input_arguments,
    add_output_arguments,
    add_scale_arguments,
    load_input,
    map_files,
    prepare_out,
    scale_options,
)
from ._model import add_model_arguments, model_from_args, model_record
from ._quality import check_sigma_map, identifiability, noise_record, quality_summary


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit a model voxel-wise (MIX, interior point, dictionary)")
    add_input_arguments(p)
    add_model_arguments(p)
    p.add_argument("--method", default="mix", help="mix | interior-point | dictionary")
    p.add_argument("--explain", action="store_true",
                   help="print which engine runs for this model and acquisition, and why")
    p.add_argument("--n-fibres", default="1",
                   help="fibre populations per voxel: 0, 1, 2, 3 or auto (chosen per voxel)")
    add_scale_arguments(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise σ in signal units (default: from the b0 repeats)")
    p.add_argument("--sigma-map", type=Path, default=None,
                   help="NIfTI map of noise σ in signal units (e.g. from MP-PCA denoising)")
    add_output_arguments(p, "output folder for the maps")
    p.set_defaults(run=run)


def _versions() -> dict:
    import dipy
    import nibabel
    import numpy
    import scipy

    from .. import __version__

    return {"microlearn": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "dipy": dipy.__version__, "nibabel": nibabel.__version__,
            "python": platform.python_version()}


def timing_fields(timing: dict, n_voxels: int, fit_seconds: float) -> dict:
    """fit.json's fit timings from a block function's ``timing`` (see ``FitBlock``).

    ``fit_seconds`` spans the signals in memory to the maps in memory with every first-call
    cost included; ``setup_seconds`` is its part that does not scale with the voxels
    (engine imports, compiled-kernel loading or compilation, dictionaries, tables), timed
    by fitting the first few voxels alone; ``vox_per_s`` is the steady throughput after
    set-up. After a Dask run the workers' timings are not seen here: the slab loop's time
    (reading included) stands in and the set-up is not separated.
    """
    from ..fitting.api import throughput

    if timing.get("n_voxels"):
        fit_s, setup = timing["fit_seconds"], timing["setup_seconds"]
        how = ("fit_seconds: signals in memory -> maps in memory, first-call costs included; "
               "setup_seconds: imports, kernel loading/compilation, tables, timed by fitting "
               "the first voxels alone; vox_per_s: voxels / (fit_seconds - setup_seconds)")
    else:
        fit_s, setup = fit_seconds, 0.0
        how = "Dask workers: fit_seconds is the slab loop (reading included); set-up not split"
    steady = throughput(n_voxels, fit_s, setup)
    return {"fit_seconds": fit_s, "setup_seconds": setup,
            "vox_per_s": steady if np.isfinite(steady) else n_voxels / max(fit_s, 1e-9),
            "overall_vox_per_s": n_voxels / max(fit_s, 1e-9), "timing": how}


def run(args) -> int:
    t_start = time.perf_counter()
    from ..fitting import FITTERS
    from ..io import write_json

    if args.method not in FITTERS.names():
        raise ValueError(f"--method {args.method!r} is unknown; choose one of "
                         f"{FITTERS.names()}.")
    if args.n_fibres not in ("0", "1", "2", "3", "auto"):
        raise ValueError(f"--n-fibres {args.n_fibres!r}: give 0, 1, 2, 3 or auto.")
    auto = args.n_fibres == "auto"
    model = model_from_args(args, 1 if auto else int(args.n_fibres))
    if auto:
        from ..crossings import check_fibre_model

        check_fibre_model(model)
        model = model.with_fibres(3)
    from ..fitting.quality import quality_map_names

    names = model.map_names + ["s0", "success"] + (["n_fibres"] if auto else [])
    if not auto:  # --force is needed for these too (checked now, not after the fit)
        names += quality_map_names(model)
    prepare_out(args, map_files(names) + ["fit.json"])
    ds = load_input(args)
    from ..data.qc import input_warnings

    for line in input_warnings(ds):
        warn(line)
    if args.explain:
        from ..fitting.compiled import explain

        for line in [model.describe()] + explain(args.method, model.with_fibres(1) if auto
                                                 else model, ds.acq):
            echo(line)

    def describe(maps, n, loop_seconds, sigma):
        from ..fitting.api import describe_convergence, engine_class

        ok = maps["success"][ds.mask] > 0
        answered = np.isfinite(maps["s0"][ds.mask]) if "s0" in maps else ok
        engine = engine_class(args.method, model.with_fibres(1) if auto else model, ds.acq)
        return {"model": model.family if auto else model.name, "method": args.method,
                "model_record": model_record(model),
                "n_fibres": "auto" if auto else model.n_fibres,
                "n_voxels": n, "seconds": time.perf_counter() - t_start,
                **timing_fields(block.timing, n, loop_seconds), "sigma": sigma,
                "success_fraction": float(ok.mean()) if ok.size else 0.0,
                "convergence": describe_convergence(ok, answered, engine),
                "noise": noise, "quality": quality_summary(maps, ds.mask),
                "identifiability": identifiability(model, maps, ds.mask),
                "maps": sorted(maps), "input": str(ds.path), "versions": _versions()}

    from ..models.spec import model_reference
    from ..run.chunked import AutoFitBlock, FitBlock, run_chunked, sample_sigma

    if auto and ds.acq.n_te > 1:
        raise ValueError(f"--n-fibres auto does not handle {ds.acq.n_te} echo times yet; give "
                         "a fixed fibre count (each TE is then normalised by its own b0s).")
    if args.sigma_map and auto:
        raise ValueError("--sigma-map is not supported with --n-fibres auto yet; give --sigma "
                         "(e.g. the map's median) or a fixed fibre count.")
    sigma_map = check_sigma_map(args.sigma_map, ds) if args.sigma_map else None
    sigma = args.sigma if args.sigma is not None or sigma_map else sample_sigma(ds)
    noise = noise_record(args, sigma, ds.acq)
    workers = 1 if (args.scheduler or args.workers) else None
    if auto:  # slab by slab like any fit (greedy starts: no CSD response needed)
        block = AutoFitBlock(model=model_reference(model), method=args.method, acq=ds.acq.to_dict(),
                             sigma=sigma, workers=workers)
    else:
        block = FitBlock(model=model_reference(model), n_fibres=model.n_fibres, method=args.method,
                         acq=ds.acq.to_dict(), sigma=sigma, workers=workers,
                         sigma_map=sigma_map)
    done = {}

    bids = ds.source.get("form") == "bids"  # BIDS in: BIDS-derivatives layout out
    out_dir = args.out
    if bids:
        from ..data.bids import derivative_dir, rename_outputs, write_dataset_description

        out_dir = derivative_dir(args.out, ds.source)

    def finish(staging, run):
        done["info"] = describe(run["maps"], run["n_voxels"], run["seconds"], sigma)
        write_json(staging / "fit.json", done["info"])
        if bids:
            rename_outputs(staging, ds.source, done["info"]["model"])

    run_chunked(block, ds, out_dir, on_complete=finish, force=args.force,
                **scale_options(args))
    if bids:
        write_dataset_description(args.out)
    info = done["info"]
    for name, row in info["identifiability"].items():
        if not row["determined"]:
            warn(f"{name}: median Cramér–Rao std {row['std_median']:.3g} is "
                 f"{row['ratio']:.1f} x the spread of its prior: this acquisition does not "
                 f"determine it (see `microlearn plan --model {args.model}`); read that map "
                 "with care")
    echo(f"fitted {info['n_voxels']} voxels with {args.method} in {info['fit_seconds']:.2f} s "
         f"(set-up {info['setup_seconds']:.2f} s, then {info['vox_per_s']:,.0f} vox/s); "
         f"whole command {info['seconds']:.2f} s; maps in {out_dir}")
    return 0
