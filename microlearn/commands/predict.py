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
    p.add_argument("--check-voxels", type=int, default=300,
                   help="voxels of a random sample fitted to check that the learned maps "
                        "agree with the fit the estimator emulates (reported in "
                        "predict.json, warned about when they disagree beyond the stated "
                        "std; default 300, 0 skips the check)")
    add_scale_arguments(p)
    p.set_defaults(run=run)


#: Share of sampled voxels flagged out_of_prior above which predict warns.
OUT_OF_PRIOR_WARN = 0.05


def _check(args, est, ds) -> dict | None:
    """The agreement check (:mod:`microlearn.learning.agreement`) and the out-of-prior
    share of a random sample of the data's voxels; warnings printed."""
    from ..cli import warn
    from ..learning.agreement import agreement_check, describe
    from ..run.chunked import sample_voxels

    if args.check_voxels <= 0:
        return None
    vox = sample_voxels(ds, max_voxels=max(20 * args.check_voxels, 2000))
    check = agreement_check(est, vox, n_voxels=args.check_voxels)
    line = describe(check)
    if line:
        warn(line)
    share = check.get("out_of_prior_share")
    if share is not None and share > OUT_OF_PRIOR_WARN:
        warn(f"{share:.0%} of sampled voxels lie outside the training distribution "
             "(out_of_prior map): their learned maps extrapolate; train for this data "
             "(microlearn learn --acquisition DATA) or use microlearn fit.")
    return check


def run(args) -> int:
    from ..data.writers import write_json
    from ..learning import load_estimator
    from ..run import chunked as parallel
    from ..run.chunked import PredictBlock, run_chunked
    from ..run.fit_volume import versions as _versions

    t_start = time.perf_counter()
    path = str(Path(args.estimator).resolve())
    est = load_estimator(args.estimator)
    t_load = time.perf_counter() - t_start
    parallel._ESTIMATORS[path] = est  # in-process blocks use (and time) this very copy
    ds = load_input(args)
    est.check_acquisition(ds.acq, where=str(ds.path))
    setup = est.prepare()  # SH projection, NumPy graph: reused by every block
    prepare_out(args, map_files(est.map_names(), not args.uncompressed) + ["predict.json"],
                inputs=input_paths(args) + [args.estimator])
    from ..models.spec import resolve_model
    from ..run.fit_volume import map_units

    units = map_units(resolve_model(est.model), est.map_names())
    units["out_of_prior"] = {"unit": "1", "display_unit": "1", "display_scale": 1.0}
    t_check = time.perf_counter()
    check = _check(args, est, ds)
    t_check = time.perf_counter() - t_check
    est.timing.clear()  # the predict stage is timed on the volume alone
    t0 = time.perf_counter()
    done = {}

    def finish(staging, result):
        seconds = time.perf_counter() - t0
        n = result["n_voxels"]
        n_run = result.get("n_fitted", n)  # --resume: kept slabs took no time now
        staged = est.timing.get("n_voxels", 0)
        stage = est.timing.get("predict_seconds") if staged else None
        done["info"] = {
            "estimator": str(args.estimator), "description": est.describe(),
            "model": est.model, "n_voxels": n,
            "seconds": time.perf_counter() - t_start,
            "load_estimator_seconds": t_load,
            "check_seconds": t_check, "agreement": check,
            "setup_seconds": setup,
            "predict_seconds": stage,
            "predict_vox_per_s": staged / max(stage, 1e-9) if stage is not None else None,
            "chunked_seconds": seconds,
            "timing": ("predict_seconds: features + estimator, signals in memory -> maps in "
                       "memory; setup_seconds (before it): the features' SH projection and "
                       "the network's NumPy graph, built once; check_seconds: the agreement "
                       "check (a fit of --check-voxels sampled voxels); chunked_seconds "
                       "adds reading slabs and assembling; seconds is the whole command "
                       "after start-up"
                       if stage is not None else
                       "Dask workers: the predict stage is not timed apart; chunked_seconds "
                       "includes reading"),
            "per_fibre_maps": ("none: learned maps of fibre models are fibre-weighted means "
                               "(rotation-invariant features do not tell fibres apart), "
                               "so there are no per-fibre maps to carry a std; fit "
                               "--n-fibres auto gives per-fibre maps"),
            "n_predicted": n_run,
            "vox_per_s": n_run / max(seconds, 1e-9) if n_run else None,
            "slabs": result["slabs"],
            "resumed_slabs": result["resumed"], "maps": sorted(result["maps"]),
            "units": {k: units[k] for k in sorted(result["maps"]) if k in units},
            "input": str(ds.path), "versions": _versions()}
        write_json(staging / "predict.json", done["info"])

    run_chunked(PredictBlock(path), ds, args.out, on_complete=finish, force=args.force,
                units={k: v["unit"] for k, v in units.items()}, **scale_options(args))
    info = done["info"]
    resumed = (f" ({info['n_voxels'] - info['n_predicted']} resumed from the work folder)"
               if info["n_predicted"] < info["n_voxels"] else "")
    stage = (f"predict stage {info['predict_seconds']:.3f} s "
             f"({info['predict_vox_per_s']:,.0f} vox/s, features + estimator; set-up "
             f"{info['setup_seconds']:.3f} s apart); "
             if info["predict_seconds"] is not None else "")
    echo(f"predicted {info['n_predicted']} voxels{resumed}: {stage}whole command "
         f"{info['seconds']:.2f} s (load estimator, read, predict, write); maps in {args.out}")
    if check is not None and check.get("agree") is not None:
        judged = {k: v for k, v in check["maps"].items() if v["determined"]}
        summary = ", ".join(f"{k} {v['share_within']:.0%}" for k, v in judged.items())
        echo(f"agreement with a fit of {check['n_voxels']} sampled voxels "
             f"({t_check:.2f} s): within the stated std {summary}"
             + ("" if check["agree"] else " - see the warning above"))
    return 0
