"""``microlearn fit``: fit a model to every brain voxel and write its maps."""

from __future__ import annotations

import time
from pathlib import Path

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
from ._model import add_model_arguments, model_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit a model voxel-wise (MIX, interior point, dictionary)")
    add_input_arguments(p)
    add_model_arguments(p)
    p.add_argument("--method", default=None,
                   help="mix | interior-point | dictionary | posterior (default: the model "
                        "family's, mix for most; posterior for sandi)")
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


def run(args) -> int:
    t_start = time.perf_counter()
    from ..run.fit_volume import NoiseChoice, check_sigma, fit_volume, output_names
    from ..run.methods import check_auto_fibres, explain_method, fitting_methods

    if args.method is not None and args.method not in fitting_methods():
        raise ValueError(f"--method {args.method!r} is unknown; choose one of "
                         f"{fitting_methods()}.")
    if args.n_fibres not in ("0", "1", "2", "3", "auto"):
        raise ValueError(f"--n-fibres {args.n_fibres!r}: give 0, 1, 2, 3 or auto.")
    check_sigma(args.sigma)
    auto = args.n_fibres == "auto"
    model = model_from_args(args, 1 if auto else int(args.n_fibres))
    if args.method is None:
        from ..models.registry import default_method

        args.method = default_method(model)
    if auto:
        check_auto_fibres(model)
        model = model.with_fibres(3)
    # --force is needed for every file of the run: checked now, not after the fit
    prepare_out(args, map_files(output_names(model, auto), not args.uncompressed)
                + ["fit.json"])
    ds = load_input(args)
    from ..data.qc import depends_on_timings, input_warnings, timing_warnings

    refusal = timing_warnings(ds.acq)[1]
    if refusal and depends_on_timings(model, ds.acq):
        raise ValueError(f"{refusal}; {model.name}'s signal depends on them, so its maps "
                         "would be wrong.")
    found = input_warnings(ds)  # printed once the run is sure to go ahead (bad input: 1 line)
    if auto:
        from ..crossings.dipy_tools import fibre_cap

        found += [why] if (why := fibre_cap(ds.acq, model.n_fibres)[1]) else []
    if args.explain:
        one = model.with_fibres(1) if auto else model
        for line in [model.describe()] + explain_method(args.method, one, ds.acq):
            echo(line)
    info, out_dir = fit_volume(ds, model, args.out, method=args.method, auto=auto,
                               noise=NoiseChoice(args.sigma, args.sigma_map),
                               force=args.force, scale=scale_options(args), started=t_start,
                               on_start=lambda: [warn(line) for line in found])
    if info["noise"]["sigma"] is None and args.sigma is None:
        warn(f"σ not estimated ({info['noise']['source']}; {ds.acq.n_b0} b0 volume(s) at "
             f"b <= {ds.acq.b0_threshold / 1e6:g} s/mm²): fitted without the Rician noise "
             "floor (Gaussian least squares); give --sigma or --sigma-map")
    for name, row in info["identifiability"].items():
        if not row["determined"]:
            u = info["units"].get(name, {"display_unit": "1", "display_scale": 1.0})
            unit = "" if u["display_unit"] in ("1", "") else f" {u['display_unit']}"
            warn(f"{name}: median Cramér–Rao std {row['std_median'] / u['display_scale']:.3g}"
                 f"{unit} is "
                 f"{row['ratio']:.1f} x the spread of its prior: this acquisition does not "
                 f"determine it (see `microlearn plan --model {args.model}`); read that map "
                 "with care")
    echo(summary(info, args.method, out_dir))
    return 0


def summary(info: dict, method: str, out_dir) -> str:
    """The closing line: voxels fitted by this run and their speed, or why there is none."""
    n, fitted, usable = info["n_voxels"], info.get("n_fitted", 0), info.get("n_usable_fitted", 0)
    tail = f"whole command {info['seconds']:.2f} s; maps in {out_dir}"
    if info.get("n_usable") == 0:
        return (f"no voxel of the {n} in the mask has a usable signal (NaN/infinite samples "
                f"or a b0 mean <= 0): every map is NaN, nothing was fitted; check the data "
                f"and the mask; {tail}")
    resumed = f" ({n - fitted} resumed from the work folder)" if fitted < n else ""
    if info.get("vox_per_s") is None:
        return f"fitted no new voxel: all {n} resumed from the work folder; {tail}"
    skipped = f", {fitted - usable} without a usable signal skipped" if usable < fitted else ""
    return (f"fitted {usable} voxels{resumed}{skipped} with {method} in "
            f"{info['fit_seconds']:.2f} s (set-up {info['setup_seconds']:.2f} s, then "
            f"{info['vox_per_s']:,.0f} vox/s); {tail}")
