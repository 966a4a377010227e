"""``microlearn demo``: the main job end to end on the built-in phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..cli import echo, echo_table
from ._common import prepare_out

#: What the demo writes into --out.
DEMO_PARTS = ("phantom", "fit_mix", "estimator", "predict", "report")


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="phantom -> fit -> learn -> compare -> report, end to end")
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--shape", type=int, nargs=3, default=(36, 44, 6), metavar=("X", "Y", "Z"),
                   help="grid of the brain phantom (HCP field of view)")
    p.add_argument("--methods", default="mix,interior-point,dictionary",
                   help="fitting engines to compare")
    p.add_argument("--estimator", default="dnn", help="learned estimator to train and apply")
    p.add_argument("--n-samples", type=int, default=50_000, help="training voxels")
    p.add_argument("--epochs", type=int, default=None, help="epochs of a network estimator")
    p.add_argument("--force", action="store_true",
                   help="replace the outputs of an earlier demo in --out")
    p.set_defaults(run=run)


def _signal_figure():
    from ..acquisition import Acquisition
    from ..models import activeax, ivim, noddi, zcd
    from ..viz.signals import plot_simulated_signals

    def params(model, values):
        return model.parameters.pack({**values, **{n: np.array([0.0, 0.0, 1.0])
                                                   for n in model.orientation_names}})

    hcp, ax, iv = (Acquisition.scheme(s) for s in ("hcp", "activeax", "ivim"))
    items = [
        (noddi(), hcp, params(noddi(), {"odi": 0.2, "icvf": 0.6, "fiso": 0.1})),
        (activeax(), ax, params(activeax(), {"diameter": 4e-6, "icvf": 0.6, "fiso": 0.1})),
        (zcd(), ax, params(zcd(), {"diameter": 4e-6, "d_perp": 0.5e-9, "icvf": 0.6,
                                   "f_dot": 0.05})),
        (ivim(), iv, params(ivim(), {"d": 1e-9, "d_star": 10e-9, "f": 0.15})),
    ]
    return plot_simulated_signals(items)


def run(args) -> int:
    from ..data.dataset import load_dataset, load_maps
    from ..data.phantom import make_phantom
    from ..data.writers import staged_output
    from ..learning import load_estimator
    from ..run.compare import compare

    def command(*argv):  # the real parser: the demo runs exactly what a user would type
        from ..cli import build_parser

        sub = build_parser().parse_args([str(a) for a in argv])
        sub.run(sub)

    force = ["--force"] if args.force else []
    out = prepare_out(args, DEMO_PARTS, inputs=[])
    fitting = [m.strip() for m in args.methods.split(",") if m.strip()]
    echo("[1/6] building the brain phantom (NODDI, hcp scheme, SNR 30, shape "
         f"{tuple(args.shape)})")
    phantom_dir = make_phantom(shape=tuple(args.shape), seed=0, kind="brain").save(
        out / "phantom", force=args.force)
    echo("[2/6] describing it")
    command("info", phantom_dir)
    echo("[3/6] fitting NODDI with MIX -> fit_mix/")
    command("fit", phantom_dir, "--model", "noddi", "--method", "mix", "--out",
            out / "fit_mix", *force)
    echo(f"[4/6] learning with the defaults of `microlearn learn` ({args.estimator}, data "
         f"prior, the data's noise, {args.n_samples} simulated voxels) and applying it "
         "-> estimator/, predict/")
    ds = load_dataset(phantom_dir)
    epochs = [] if args.epochs is None else ["--epochs", args.epochs]
    command("learn", "--model", "noddi", "--acquisition", phantom_dir, "--estimator",
            args.estimator, "--n-samples", args.n_samples, *epochs, "--out",
            out / "estimator", *force)
    est = load_estimator(out / "estimator")
    command("predict", out / "estimator", phantom_dir, "--out", out / "predict", *force)
    echo("[5/6] comparing fitting and learning against the phantom's truth")
    result = compare(ds, "noddi", fitting + [(f"{args.estimator} (learned)", est)],
                     truth=load_maps(phantom_dir / "truth"), progress=True)
    echo("[6/6] report")
    with staged_output(out / "report", force=args.force) as staging:
        result.save_html(staging, extra_figures={"signals": _signal_figure()})
    page = out / "report" / "index.html"
    cols = ["method", "vox_per_s", "rmse_odi", "rmse_icvf", "rmse_fiso"]
    echo_table(result.rows, cols, width=18)
    echo(f"report: {page.resolve()}")
    return 0
