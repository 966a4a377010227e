"""Learned std on held-out NODDI from an independent simulator, and the predict stage vs AMICO.

Test data: ``tests/learning/independent_noddi.py`` (its own quadrature and noise, not
microlearn's simulator), hcp scheme, SNR 30, 8000 voxels: single fibre (ODI~U(0.05, 0.7),
ICVF~U(0.2, 0.8), FISO~U(0, 0.3)) and 2-fibre crossings (per-fibre values in the same
ranges, truth = fibre-weighted means). Every estimator is trained as ``microlearn learn
--acquisition CASE`` does by default: on the empirical prior of 2000 voxels of the case
fitted by MIX with the fibre count chosen per voxel, 100k samples (20k with ``--quick``).

Per estimator and map: RMSE and its ratio to MIX (single fibre: one-fibre MIX fit;
crossings: ``fit_auto``), 90 % interval coverage, Spearman(std, |error|) and its ceiling
(the Spearman the same std would reach if it were exactly right: errors std x |z|). Then
the predict stage (features + estimator, signals in memory to maps in memory, as
predict.json reports it) of the 8000 single-fibre voxels, median of repeats, next to
AMICO's NODDI fit of the same voxels in the same run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from microlearn import Acquisition
from microlearn.learning import train
from microlearn.learning.empirical import fit_sample

from .common import median_time, print_table, rmse

KEYS = ("odi", "icvf", "fiso")
#: (label, estimator, options) as `learn` builds them.
CONFIGS = [
    ("dnn (default)", "dnn", {}),
    ("deep-ensemble (--uncertainty)", "deep-ensemble", {}),
    ("dnn + residual head", "dnn", {"uncertainty": True}),
    ("bayesian-dnn", "bayesian-dnn", {}),
    ("polynomial + residual head", "polynomial", {"uncertainty": True}),
]


def _independent():
    path = Path(__file__).resolve().parents[1] / "tests" / "learning" / "independent_noddi.py"
    spec = importlib.util.spec_from_file_location("independent_noddi", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mix_maps(acq, data, n_fibres):
    from microlearn.fitting import fit
    from microlearn.fitting.selection import fit_auto
    from microlearn.models import noddi

    if n_fibres == 1:
        return fit(noddi(), acq, data, method="mix").maps()
    return fit_auto("noddi", acq, data, method="mix").maps()


def _ceiling(std, rng) -> float:
    return float(np.median([spearmanr(std, std * np.abs(rng.normal(size=len(std))))[0]
                            for _ in range(5)]))


def main(quick: bool = False) -> None:
    ind = _independent()
    acq = Acquisition.scheme("hcp")
    n_test, n_train = (2000, 20_000) if quick else (8000, 100_000)
    rng = np.random.default_rng(0)
    stage_rows, single_data = [], None
    for case, n_fibres in (("single fibre", 1), ("2-fibre crossings", 2)):
        data, truth = ind.simulate_noddi(acq, n_test, n_fibres=n_fibres, seed=10 + n_fibres)
        single_data = data if n_fibres == 1 else single_data
        mix = _mix_maps(acq, data, n_fibres)
        empirical = fit_sample("noddi", acq, data, n_fit=2000, random_state=0)
        rows = [{"method": "mix (fit)",
                 **{f"rmse_{k}": rmse(mix[k], truth[k]) for k in KEYS}}]
        for label, name, options in CONFIGS:
            est = train("noddi", acq, estimator=name, n_samples=n_train, random_state=0,
                        empirical=empirical, **options)
            maps = est.predict_maps(data, acq=acq)
            row = {"method": label, "train_s": est.info["seconds"]}
            for k in KEYS:
                err = np.abs(maps[k] - truth[k])
                row[f"rmse_{k}"] = rmse(maps[k], truth[k])
                row[f"x_mix_{k}"] = row[f"rmse_{k}"] / rows[0][f"rmse_{k}"]
                if f"{k}_std" not in maps:
                    continue
                std = maps[f"{k}_std"]
                row[f"cover_{k}"] = float(np.mean(err < 1.645 * std))
                row[f"spear_{k}"] = float(spearmanr(std, err)[0])
                row[f"ceil_{k}"] = _ceiling(std, rng)
            rows.append(row)
            if n_fibres == 1:
                seconds, _ = median_time(lambda est=est, data=data: est.predict_block(data), 7)
                stage_rows.append({"method": label, "stage_s": seconds,
                                   "vox_per_s": n_test / seconds})
        print(f"NODDI hcp SNR 30, {case}: {n_test} held-out voxels (independent simulator), "
              f"{n_train} training samples on the empirical prior")
        print_table(rows, ["method", "train_s"] + [f"rmse_{k}" for k in KEYS]
                    + [f"x_mix_{k}" for k in KEYS])
        print_table([r for r in rows[1:] if "cover_odi" in r],
                    ["method"] + [f"{m}_{k}" for m in ("cover", "spear", "ceil") for k in KEYS])
    try:
        from .bench_fitting import amico_noddi

        amico_s, _ = amico_noddi(acq, single_data, 1 if quick else 3)
    except Exception as err:  # the peer is optional
        print(f"AMICO unavailable: {err}")
        amico_s = None
    for row in stage_rows:
        row["x_faster_than_amico"] = amico_s / row["stage_s"] if amico_s else float("nan")
    print(f"predict stage (features + estimator, in memory) on {n_test} voxels; AMICO NODDI "
          f"fit of the same voxels: {amico_s if amico_s else float('nan'):.3f} s")
    print_table(stage_rows, ["method", "stage_s", "vox_per_s", "x_faster_than_amico"])

