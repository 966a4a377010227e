"""Learned estimators vs MIX on the NODDI fitting benchmark data, in one run.

Test data: single-fibre NODDI on the hcp scheme, SNR 30, ODI~U(0.05, 0.7),
ICVF~U(0.2, 0.8), FISO~U(0, 0.3) (the ranges of bench_fitting). Every estimator is trained
on single-fibre signals simulated with the same ranges (MIX fits the single-fibre model);
the rows marked [1-3 fibres] are trained on a 1/2/3-fibre mixture, which makes them
usable in crossings without orientations and shows what that costs. Prints RMSE per map,
training seconds and inference vox/s (median of repeats, features included), and the ratio
of each RMSE to MIX's.
"""

from __future__ import annotations

import numpy as np

from microlearn import Acquisition, noddi, simulate_dataset
from microlearn.fitting import fit
from microlearn.learning import train

from .bench_fitting import NODDI_RANGES
from .common import median_time, print_table, rmse

#: (estimator, optimizer, features, options); features "+mix" = 1-3 fibre training set
CONFIGS = [
    ("polynomial", None, "rotation-invariant", {}),
    ("boosted-trees", None, "rotation-invariant", {}),
    ("bayesian", None, "rotation-invariant", {}),
    ("linear-sdca", "sdca", "rotation-invariant", {}),
    ("dnn", "adam", "rotation-invariant", {}),
    ("dnn", "ftrl", "rotation-invariant", {"learning_rate": 0.05}),
    ("dnn", "proximal-adagrad", "rotation-invariant", {"learning_rate": 0.05}),
    ("wide-deep", "ftrl", "rotation-invariant", {}),
    ("wide-deep", "sdca", "rotation-invariant", {}),
    ("bayesian-dnn", "adam", "rotation-invariant", {}),
    ("dnn", "adam", "signal", {}),
    ("dnn", "adam", "hybrid", {}),
    ("dnn", "adam", "rotation-invariant+mix", {}),
    ("polynomial", None, "rotation-invariant+mix", {}),
]
KEYS = ("odi", "icvf", "fiso")


def main(quick: bool = False) -> None:
    acq = Acquisition.scheme("hcp")
    n_test = 2000 if quick else 8000
    n_train = 20_000 if quick else 200_000
    repeats = 1 if quick else 3
    model = noddi()
    params, _, noisy = simulate_dataset(model, acq, n_test, snr=30, random_state=42,
                                        ranges=NODDI_RANGES)
    truth = model.maps(params)
    data = noisy * 1000.0
    rows = []
    seconds, res = median_time(lambda: fit(model, acq, data, method="mix"), repeats)
    mix = {"method": "mix (fit)", "train_s": 0.0, "seconds": seconds,
           "vox_per_s": n_test / seconds}
    mix.update({f"rmse_{k}": rmse(res.maps()[k], truth[k]) for k in KEYS})
    rows.append(mix)
    configs = CONFIGS[:6] + CONFIGS[-1:] if quick else CONFIGS
    for est_name, opt, feats, options in configs:
        opts = dict(options)
        if est_name in ("dnn", "wide-deep", "bayesian-dnn") and quick:
            opts["epochs"] = 10
        kind, _, mixture = feats.partition("+")
        est = train("noddi", acq, estimator=est_name, optimizer=opt, features=kind,
                    n_samples=n_train, snr=30, n_fibres=(1, 2, 3) if mixture else 1,
                    ranges=NODDI_RANGES, random_state=0, **opts)
        seconds, maps = median_time(lambda est=est: est.predict_maps(data, acq=acq), repeats)
        label = est_name + (f"/{opt}" if opt else "") + \
            ("" if kind == "rotation-invariant" else f" [{kind}]") + \
            (" [1-3 fibres]" if mixture else "")
        row = {"method": label, "train_s": est.info["seconds"], "seconds": seconds,
               "vox_per_s": n_test / seconds}
        row.update({f"rmse_{k}": rmse(maps[k], truth[k]) for k in KEYS})
        for k in KEYS:
            row[f"x_mix_{k}"] = row[f"rmse_{k}"] / mix[f"rmse_{k}"]
        rows.append(row)
    cols = ["method", "train_s", "seconds", "vox_per_s"] + [f"rmse_{k}" for k in KEYS] + \
        [f"x_mix_{k}" for k in KEYS]
    print(f"NODDI hcp SNR 30, {n_test} test voxels, {n_train} training samples")
    print_table(rows, cols)
    learned = [r for r in rows[1:]]
    best = min(learned, key=lambda r: sum(r[f"x_mix_{k}"] for k in KEYS))
    print(f"best learned: {best['method']} (x MIX: odi {best['x_mix_odi']:.2f}, icvf "
          f"{best['x_mix_icvf']:.2f}, fiso {best['x_mix_fiso']:.2f}; "
          f"{best['vox_per_s']:.0f} vox/s)")
    print("targets: <= MIX for ICVF/FISO, <= 1.1x for ODI; inference >= 100k vox/s")
    fast = max(r["vox_per_s"] for r in learned)
    print(f"fastest inference: {fast:.0f} vox/s ({np.round(fast / mix['vox_per_s'], 1)}x MIX)")
