"""``microlearn demo``: the main job end to end on the built-in phantom."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from ..cli import echo


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="phantom -> describe -> simulate -> fit -> accuracy report")
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--shape", type=int, nargs=3, default=(20, 20, 6), metavar=("X", "Y", "Z"))
    p.add_argument("--methods", default="mix,interior-point,dictionary",
                   help="fitting engines to run and compare")
    p.set_defaults(run=run)


def _signal_figure(path):
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
    plot_simulated_signals(items).savefig(path, dpi=90)


def run(args) -> int:
    from ..fitting import fit
    from ..io import check_writable, load_dataset, load_maps, write_json, write_maps
    from ..models import noddi
    from ..phantom import make_phantom
    from ..viz.accuracy import plot_truth_vs_estimate
    from .info import run as info_run

    out = check_writable(args.out)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    echo(f"[1/5] building the phantom (NODDI, hcp scheme, SNR 30, shape {tuple(args.shape)})")
    phantom_dir = make_phantom(shape=tuple(args.shape), seed=0).save(out / "phantom")
    echo("[2/5] describing it")
    ns = type("A", (), {"input": phantom_dir, "dwi": None, "bvals": None, "bvecs": None,
                        "mask": None, "acquisition": None})
    info_run(ns)
    echo("[3/5] simulated signals per model and shell -> signals.png")
    _signal_figure(out / "signals.png")
    ds = load_dataset(phantom_dir)
    truth = load_maps(phantom_dir / "truth")
    data = ds.load_data()
    single = ds.mask & (truth["n_fibres"] == 1)
    rows, estimates = [], {}
    echo(f"[4/5] fitting NODDI with {', '.join(methods)}")
    for method in methods:
        t0 = time.perf_counter()
        res = fit(noddi(), ds.acq, data, method=method, mask=ds.mask, progress=True)
        seconds = time.perf_counter() - t0
        maps = res.maps()
        write_maps(out / "fits" / method, maps, ds.affine, mask=ds.mask)
        estimates[method] = {k: maps[k][single] for k in ("odi", "icvf", "fiso")}
        row = {"method": method, "voxels": res.n_voxels, "seconds": round(seconds, 2),
               "vox_per_s": round(res.n_voxels / seconds, 1)}
        for k in ("odi", "icvf", "fiso"):
            err = maps[k][single] - truth[k][single]
            row[f"rmse_{k}"] = round(float(np.sqrt(np.nanmean(err**2))), 4)
        rows.append(row)
    echo("[5/5] accuracy report (single-fibre and grey-matter voxels, vs phantom truth)")
    fig = plot_truth_vs_estimate({k: truth[k][single] for k in ("odi", "icvf", "fiso")},
                                 estimates, ["odi", "icvf", "fiso"], title="NODDI on the phantom")
    fig.savefig(out / "truth_vs_estimate.png", dpi=90)
    with open(out / "table.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_json(out / "demo.json", {"rows": rows})
    header = list(rows[0])
    echo("  ".join(f"{h:>15}" for h in header))
    for r in rows:
        echo("  ".join(f"{r[h]:>15}" for h in header))
    html = ["<html><head><meta charset='utf-8'><title>microlearn demo</title></head><body>",
            "<h1>microlearn demo: NODDI on the phantom</h1><table border=1><tr>"
            + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    html += ["<tr>" + "".join(f"<td>{r[h]}</td>" for h in header) + "</tr>" for r in rows]
    html += ["</table><img src='truth_vs_estimate.png'><img src='signals.png'></body></html>"]
    (out / "index.html").write_text("\n".join(html))
    echo(f"report: {(out / 'index.html').resolve()}")
    return 0
