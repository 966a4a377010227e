"""``microlearn compare``: fitting engines and learned estimators side by side; with
``--holdout K``, models and methods ranked by how well they predict held-out measurements
(no truth needed)."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from ..cli import echo, echo_table
from ._common import (
    add_input_arguments,
    add_output_arguments,
    input_paths,
    load_input,
    prepare_out,
)
from ._model import model_from_args

#: Files of a report folder that the --out check protects.
REPORT_FILES = ("table.csv", "index.html")
#: Methods compared by default, without and with --holdout.
DEFAULT_METHODS, HOLDOUT_METHODS = "mix,interior-point,dictionary,dnn", "mix"


class _Ordered(argparse.Action):
    """Keep ``--model``, ``--set`` and ``--free`` in the order given (``args.model_items``):
    each ``--set``/``--free`` applies to the ``--model`` before it (or the first one)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, "model_items", None) or [])
        items.append((self.dest, values))
        namespace.model_items = items


def add_parser(sub) -> None:
    from ..models.registry import family_names

    p = sub.add_parser("compare", help="compare fitting and learning: accuracy, runtime, "
                                       "report; --holdout K: which model the scan supports")
    add_input_arguments(p)
    p.add_argument("--model", action=_Ordered, dest="model", metavar="NAME|SPEC.json",
                   help=f"model family ({' | '.join(family_names())}) or a model spec; with "
                        "--holdout give several --model, each followed by its --set/--free")
    p.add_argument("--set", action=_Ordered, dest="set", metavar="NAME=VALUE",
                   help="fix a parameter or change a setting of the --model before it, in its "
                        "display unit (µm²/ms, µm, ms) or with a unit: --set d_par=1.1, "
                        "--set t2_ball=2000 (compartment T2 in ms)")
    p.add_argument("--free", action=_Ordered, dest="free", metavar="NAME",
                   help="make a setting of the --model before it a fitted parameter (e.g. "
                        "--free d_par, --free t2_stick: compartment T2, fitted jointly over "
                        "echo times)")
    p.add_argument("--tissue", default=None, metavar="PRESET",
                   help="tissue preset of the family's settings: invivo, gm, exvivo")
    p.add_argument("--methods", default=None,
                   help="comma-separated: fitting engines, learned estimators "
                        "(estimator[/optimizer]) or saved estimator folders (default "
                        f"{DEFAULT_METHODS}; with --holdout fitting engines, default "
                        f"{HOLDOUT_METHODS})")
    p.add_argument("--truth", type=Path, default=None,
                   help="folder of true maps (the phantom's truth/) for RMSE/bias/correlation")
    p.add_argument("--holdout", type=int, default=None, metavar="K",
                   help="no truth needed: fit each model on K-1 folds of the measurements "
                        "(split within each shell and TE), predict the held-out fold, rank "
                        "by the normalised prediction error (ties within the noise)")
    p.add_argument("--labels", type=Path, default=None,
                   help="with --holdout: label image (NIfTI, integers; 0 = none) for a table "
                        "per tissue or region")
    p.add_argument("--sigma", type=float, default=None,
                   help="with --holdout: noise σ in signal units (default: from the b0s)")
    p.add_argument("--n-samples", type=int, default=50_000,
                   help="training voxels of the learned estimators")
    p.add_argument("--epochs", type=int, default=None, help="epochs of learned networks")
    add_output_arguments(p, "report folder")
    p.set_defaults(run=run, model_items=[])


def models_from_args(args) -> list:
    """One model per ``--model`` (default ``noddi``) with its ``--set``/``--free``."""
    groups = []
    pending = []
    for kind, value in args.model_items:
        if kind == "model":
            groups.append({"model": value, "set": [], "free": []})
            if len(groups) == 1:  # --set/--free given before the first --model
                for k, v in pending:
                    groups[0][k].append(v)
        elif groups:
            groups[-1][kind].append(value)
        else:
            pending.append((kind, value))
    if not groups:
        groups = [{"model": "noddi", "set": [], "free": []}]
        for k, v in pending:
            groups[0][k].append(v)
    return [model_from_args(SimpleNamespace(tissue=args.tissue, **g)) for g in groups]


def run(args) -> int:
    if args.holdout is not None:
        return run_holdout(args)
    from ..data.dataset import load_maps
    from ..data.writers import staged_output
    from ..run.compare import compare

    models = models_from_args(args)
    if len(models) > 1:
        raise ValueError("--model: several models are compared with --holdout K; without it "
                         "give one --model.")
    for name in ("labels", "sigma"):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name} applies with --holdout K.")
    prepare_out(args, REPORT_FILES, inputs=input_paths(args) + [args.truth])
    ds = load_input(args)
    truth = None
    if args.truth is not None:
        if not Path(args.truth).is_dir():
            raise FileNotFoundError(f"--truth {args.truth}: not a folder of maps; give the "
                                    "phantom's truth/ folder.")
        truth = load_maps(args.truth)
    model = models[0]
    n_fibres = model.n_fibres
    options = {"n_samples": args.n_samples, "n_fibres": n_fibres}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    result = compare(ds, model, args.methods or DEFAULT_METHODS, truth=truth,
                     learn_options=options, progress=True)
    with staged_output(args.out, force=args.force) as staging:
        result.save_html(staging)
    page = args.out / "index.html"
    cols = ["method", "vox_per_s", "no_answer"] + [c for c in result.rows[0] if c.startswith(
        ("rmse_", "rmsd_"))]
    echo_table(result.rows, cols)
    echo(f"metrics over the {result.rows[0]['scored_voxels']} voxels every method answered; "
         f"report: {page.resolve()}")
    return 0


def run_holdout(args) -> int:
    """``compare --holdout K``: rank the models by held-out prediction; write the report."""
    from ..data.dataset import load_nifti
    from ..data.writers import staged_output
    from ..run.holdout import holdout_compare

    if args.truth is not None:
        raise ValueError("--truth: --holdout needs no truth (it scores predictions of "
                         "held-out measurements); drop one of them.")
    models = models_from_args(args)
    prepare_out(args, REPORT_FILES, inputs=input_paths(args) + [args.labels])
    ds = load_input(args)
    labels = None
    if args.labels is not None:
        if not Path(args.labels).is_file():
            raise FileNotFoundError(f"--labels {args.labels}: no such file; give a NIfTI "
                                    "label image on the data's grid.")
        labels = load_nifti(args.labels).get_fdata()
    result = holdout_compare(ds, models, args.methods or HOLDOUT_METHODS, k=args.holdout,
                             labels=labels, sigma=args.sigma, progress=True)
    with staged_output(args.out, force=args.force) as staging:
        result.save_html(staging)
    page = args.out / "index.html"
    echo_table(result.rows, ["candidate", "rank", "npe", "diff_low", "diff_high", "aic",
                             "bic", "at_bound"])
    echo(f"best: {' = '.join(result.best)} (npe: held-out RMS error / σ over the "
         f"{result.rows[0]['scored_voxels']} voxels every model answered); "
         f"report: {page.resolve()}")
    return 0
