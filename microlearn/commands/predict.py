"""``microlearn predict``: apply a learned estimator to a dataset and write its maps."""

from __future__ import annotations

import time
from pathlib import Path

from ..cli import echo
from ._common import add_input_arguments, load_input


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="apply a learned estimator (from `learn`) to a dataset")
    p.add_argument("estimator", type=Path, help="estimator folder written by `microlearn learn`")
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="output folder for the maps")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..io import check_writable, write_json, write_maps
    from ..learning import load_estimator
    from .fit import _versions

    est = load_estimator(args.estimator)
    ds = load_input(args)
    est.check_acquisition(ds.acq, where=str(ds.path))
    check_writable(args.out)
    t0 = time.perf_counter()
    data = ds.load_data()
    t_read = time.perf_counter() - t0
    maps = est.predict_maps(data, ds.mask, acq=ds.acq, progress=True)
    t_pred = time.perf_counter() - t0 - t_read
    write_maps(args.out, maps, ds.affine, mask=ds.mask)
    seconds = time.perf_counter() - t0
    n = int(ds.mask.sum())
    info = {"estimator": str(args.estimator), "description": est.describe(),
            "model": est.model, "n_voxels": n, "seconds": seconds, "read_seconds": t_read,
            "predict_seconds": t_pred, "vox_per_s": n / max(t_pred, 1e-9),
            "maps": sorted(maps), "input": str(ds.path), "versions": _versions()}
    write_json(Path(args.out) / "predict.json", info)
    echo(f"predicted {n} voxels in {t_pred:.2f} s ({info['vox_per_s']:.0f} vox/s); "
         f"maps in {args.out}")
    return 0
