"""``microlearn plan``: can this acquisition support this model? (bounds, fits, learning)."""

from __future__ import annotations

import math
from pathlib import Path

from ..cli import echo
from ._common import add_b0_threshold_argument
from ._model import add_model_arguments, model_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="per parameter: Cramér–Rao bound, expected fit and "
                                    "learning error, and whether the protocol supports it")
    add_model_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scheme", help="built-in acquisition: hcp | activeax | ivim")
    src.add_argument("--acquisition", type=Path, metavar="DIR",
                     help="folder with bvals/bvecs (and acquisition.json timings)")
    p.add_argument("--bvals-unit", default=None, choices=("s/mm2", "s/m2", "ms/um2"),
                   help="unit of the b-values in the folder's files (default s/mm2)")
    add_b0_threshold_argument(p)
    p.add_argument("--snr", type=float, default=30.0, help="b0 signal over noise σ")
    p.add_argument("--n-fibres", type=int, default=1, help="fibre populations (1-3)")
    p.add_argument("--n-voxels", type=int, default=500, help="Monte-Carlo voxels")
    p.add_argument("--method", default=None,
                   help="fitting engine of the Monte-Carlo fits (default: the family's, mix "
                        "for most; posterior for sandi)")
    p.add_argument("--estimator", default="polynomial",
                   help="learned estimator to score (see `learn`)")
    p.add_argument("--n-train", type=int, default=20_000, help="its training voxels")
    p.add_argument("--no-learn", action="store_true", help="skip the learned estimator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.set_defaults(run=run)


def _fmt(value, scale=1.0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value / scale:.3g}"


def _jsonable(report):
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(report)


def run(args) -> int:
    from ..data.writers import write_json
    from ..run.plan import plan
    from .learn import _acquisition

    if args.json is not None and args.json.is_dir():
        raise ValueError(f"--json {args.json}: is a folder; give a file name.")
    acq = _acquisition(args)
    model = model_from_args(args)
    if args.method is None:
        from ..models.registry import default_method

        args.method = default_method(model)
    report = plan(model, acq, snr=args.snr, n_fibres=args.n_fibres,
                  n_voxels=args.n_voxels, method=args.method, learn=not args.no_learn,
                  estimator=args.estimator, n_train=args.n_train, random_state=args.seed)
    echo(f"{report['model']} on {report['n_measurements']} measurements (b = "
         f"{', '.join(str(b) for b in report['shells_s_per_mm2'])} s/mm²), SNR "
         f"{report['snr']:g}, {report['n_voxels']} Monte-Carlo voxels from the prior")
    cols = ("map", "unit", "prior_sd", "crb_sd", "fit_rmse", "fit_bias", "learn_rmse",
            "learn_bias", "verdict")
    echo("  ".join(f"{c:>11}" for c in cols))
    for r in report["rows"]:
        sc = r["display_scale"]
        cells = [r["name"], r["display_unit"] or "1", _fmt(r["prior_std"], sc),
                 _fmt(r["crb_median"], sc), _fmt(r["fit_rmse"], sc), _fmt(r["fit_bias"], sc),
                 _fmt(r["learn_rmse"], sc), _fmt(r["learn_bias"], sc), r["verdict"]]
        echo("  ".join(f"{c:>11}" for c in cells))
    for r in report["rows"]:
        if r["verdict"] != "supported":
            echo(f"  {r['name']}: {r['verdict']} ({r['reason']})")
    if args.json is not None:
        write_json(args.json, _jsonable(report))
        echo(f"report written to {args.json}")
    return 0
