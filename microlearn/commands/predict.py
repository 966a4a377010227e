"""``microlearn predict``: apply a learned estimator to a dataset and write its maps."""

from __future__ import annotations

import time
from pathlib import Path

from ..cli import echo
from ._common import (
    add_input_arguments,
    add_output_arguments,
    add_scale_arguments,
    input_paths,
    load_input,
    map_files,
    prepare_out,
    scale_options,
)


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="apply a learned estimator (from `learn`) to a dataset")
    p.add_argument("estimator", type=Path, help="estimator folder written by `microlearn learn`")
    add_input_arguments(p)
    add_output_arguments(p, "output folder for the maps")
    add_scale_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..io import write_json
    from ..learning import load_estimator
    from ..parallel import PredictBlock, run_chunked
    from .fit import _versions

    est = load_estimator(args.estimator)
    ds = load_input(args)
    est.check_acquisition(ds.acq, where=str(ds.path))
    prepare_out(args, map_files(est.target_names) + ["predict.json"],
                inputs=input_paths(args) + [args.estimator])
    t0 = time.perf_counter()
    done = {}

    def finish(staging, result):
        seconds = time.perf_counter() - t0
        n = result["n_voxels"]
        done["info"] = {
            "estimator": str(args.estimator), "description": est.describe(),
            "model": est.model, "n_voxels": n, "seconds": seconds,
            "vox_per_s": n / max(seconds, 1e-9), "slabs": result["slabs"],
            "resumed_slabs": result["resumed"], "maps": sorted(result["maps"]),
            "input": str(ds.path), "versions": _versions()}
        write_json(staging / "predict.json", done["info"])

    run_chunked(PredictBlock(str(Path(args.estimator).resolve())), ds, args.out,
                on_complete=finish, force=args.force, **scale_options(args))
    info = done["info"]
    echo(f"predicted {info['n_voxels']} voxels in {info['seconds']:.2f} s "
         f"({info['vox_per_s']:.0f} vox/s, read + features + predict + write); "
         f"maps in {args.out}")
    return 0
