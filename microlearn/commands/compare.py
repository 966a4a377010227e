"""``microlearn compare``: fitting engines and learned estimators side by side."""

from __future__ import annotations

from pathlib import Path

from ..cli import echo, echo_table
from ._common import (
    add_input_arguments,
    add_output_arguments,
    input_paths,
    load_input,
    prepare_out,
)
from ._model import add_model_arguments, model_from_args

#: Files of a report folder that the --out check protects.
REPORT_FILES = ("table.csv", "index.html")


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare fitting and learning: accuracy, runtime, report")
    add_input_arguments(p)
    add_model_arguments(p)
    p.add_argument("--methods", default="mix,interior-point,dictionary,dnn",
                   help="comma-separated: fitting engines, learned estimators "
                        "(estimator[/optimizer]) or saved estimator folders")
    p.add_argument("--truth", type=Path, default=None,
                   help="folder of true maps (the phantom's truth/) for RMSE/bias/correlation")
    p.add_argument("--n-samples", type=int, default=50_000,
                   help="training voxels of the learned estimators")
    p.add_argument("--epochs", type=int, default=None, help="epochs of learned networks")
    add_output_arguments(p, "report folder")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..data.dataset import load_maps
    from ..data.writers import staged_output
    from ..run.compare import compare

    prepare_out(args, REPORT_FILES, inputs=input_paths(args) + [args.truth])
    ds = load_input(args)
    truth = None
    if args.truth is not None:
        if not Path(args.truth).is_dir():
            raise FileNotFoundError(f"--truth {args.truth}: not a folder of maps; give the "
                                    "phantom's truth/ folder.")
        truth = load_maps(args.truth)
    model = model_from_args(args)
    n_fibres = model.n_fibres
    options = {"n_samples": args.n_samples, "n_fibres": n_fibres}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    result = compare(ds, model, args.methods, truth=truth, learn_options=options,
                     progress=True)
    with staged_output(args.out, force=args.force) as staging:
        result.save_html(staging)
    page = args.out / "index.html"
    cols = ["method", "vox_per_s", "no_answer"] + [c for c in result.rows[0] if c.startswith(
        ("rmse_", "rmsd_"))]
    echo_table(result.rows, cols)
    echo(f"metrics over the {result.rows[0]['scored_voxels']} voxels every method answered; "
         f"report: {page.resolve()}")
    return 0
