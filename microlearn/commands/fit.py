"""``microlearn fit``: fit a model to every brain voxel and write its maps."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from ..cli import echo
from ._common import add_input_arguments, add_scale_arguments, load_input, scale_options
from ._quality import check_sigma_map, noise_record, quality_summary


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit a model voxel-wise (MIX, interior point, dictionary)")
    add_input_arguments(p)
    p.add_argument("--model", default="noddi", help="noddi | activeax | zcd | ivim")
    p.add_argument("--method", default="mix", help="mix | interior-point | dictionary")
    p.add_argument("--n-fibres", default="1",
                   help="fibre populations per voxel: 0, 1, 2, 3 or auto (chosen per voxel)")
    add_scale_arguments(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise σ in signal units (default: from the b0 repeats)")
    p.add_argument("--sigma-map", type=Path, default=None,
                   help="NIfTI map of noise σ in signal units (e.g. from MP-PCA denoising)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the maps")
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


def run(args) -> int:
    from ..fitting import FITTERS
    from ..io import check_writable, write_json
    from ..models import get_model

    if args.method not in FITTERS.names():
        raise ValueError(f"--method {args.method!r} is unknown; choose one of "
                         f"{FITTERS.names()}.")
    if args.n_fibres not in ("0", "1", "2", "3", "auto"):
        raise ValueError(f"--n-fibres {args.n_fibres!r}: give 0, 1, 2, 3 or auto.")
    auto = args.n_fibres == "auto"
    if auto:
        from ..crossings import check_fibre_model

        check_fibre_model(args.model)
    model = get_model(args.model, 3 if auto else int(args.n_fibres))
    check_writable(args.out)
    ds = load_input(args)
    t0 = time.perf_counter()

    def describe(maps, n, fit_seconds, sigma):
        ok = maps["success"][ds.mask] > 0
        return {"model": args.model if auto else model.name, "method": args.method,
                "n_fibres": "auto" if auto else model.n_fibres,
                "n_voxels": n, "seconds": time.perf_counter() - t0, "fit_seconds": fit_seconds,
                "vox_per_s": n / max(fit_seconds, 1e-9), "sigma": sigma,
                "success_fraction": float(ok.mean()) if ok.size else 0.0,
                "noise": noise, "quality": quality_summary(maps, ds.mask),
                "maps": sorted(maps), "input": str(ds.path), "versions": _versions()}

    from ..parallel import AutoFitBlock, FitBlock, run_chunked, sample_response, sample_sigma

    if args.sigma_map and auto:
        raise ValueError("--sigma-map is not supported with --n-fibres auto yet; give --sigma "
                         "(e.g. the map's median) or a fixed fibre count.")
    sigma_map = check_sigma_map(args.sigma_map, ds) if args.sigma_map else None
    sigma = args.sigma if args.sigma is not None or sigma_map else sample_sigma(ds)
    noise = noise_record(args, sigma, ds.acq)
    workers = 1 if (args.scheduler or args.workers) else None
    if auto:  # one CSD response per volume, then slab by slab like any fit
        block = AutoFitBlock(model=args.model, method=args.method, acq=ds.acq.to_dict(),
                             sigma=sigma, response=sample_response(ds), workers=workers)
    else:
        block = FitBlock(model=args.model, n_fibres=model.n_fibres, method=args.method,
                         acq=ds.acq.to_dict(), sigma=sigma, workers=workers,
                         sigma_map=sigma_map)
    done = {}

    def finish(staging, run):
        done["info"] = describe(run["maps"], run["n_voxels"], run["seconds"], sigma)
        write_json(staging / "fit.json", done["info"])

    run_chunked(block, ds, args.out, on_complete=finish, **scale_options(args))
    info = done["info"]
    echo(f"fitted {info['n_voxels']} voxels with {args.method} in {info['fit_seconds']:.1f} s "
         f"({info['vox_per_s']:.0f} vox/s); maps in {args.out}")
    return 0
