"""Fitting engines vs peers (AMICO for NODDI, DIPY IvimModel for IVIM), in one run.

Prints method, voxels, seconds, vox/s, ratio to the peer's vox/s and RMSE per map.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings

import numpy as np

from microlearn import Acquisition, activeax, ivim, noddi, simulate_dataset
from microlearn.fitting import fit

from .common import amico_subject, median_time, print_table, rmse

NODDI_RANGES = {"odi": (0.05, 0.7), "icvf": (0.2, 0.8), "fiso": (0.0, 0.3)}
IVIM_RANGES = {"f": (0.05, 0.3), "d_star": (5e-9, 20e-9), "d": (0.5e-9, 2e-9)}
ACTIVEAX_RANGES = {"diameter": (1e-6, 10e-6), "icvf": (0.3, 0.8), "fiso": (0.0, 0.2)}


def _row(name, n, seconds, truth, maps, keys, scale=None):
    row = {"method": name, "voxels": n, "seconds": seconds, "vox_per_s": n / seconds}
    for k in keys:
        s = (scale or {}).get(k, 1.0)
        row[f"rmse_{k}"] = rmse(np.asarray(maps[k]) / s, np.asarray(truth[k]) / s)
    return row


def amico_noddi(acq, data, repeats=1):
    """Fit NODDI with AMICO (2 threads); returns (median seconds of ``repeats``, maps)."""
    import amico

    amico.util.set_verbose(0) if hasattr(amico.util, "set_verbose") else None
    amico.core.setup()
    n = data.shape[0]
    with tempfile.TemporaryDirectory() as study:
        subj = amico_subject(study, data, acq.bvals / 1e6, acq.bvecs)
        amico.util.fsl2scheme(os.path.join(subj, "bvals"), os.path.join(subj, "bvecs"),
                              os.path.join(subj, "dwi.scheme"))
        ae = amico.Evaluation(study, "subj")
        ae.load_data("dwi.nii", "dwi.scheme", mask_filename="mask.nii", b0_thr=0)
        ae.set_model("NODDI")
        ae.generate_kernels(regenerate=True)
        ae.load_kernels()
        ae.set_config("nthreads", 2)
        seconds, _ = median_time(ae.fit, repeats)
        maps = ae.RESULTS["MAPs"].reshape(n, -1)
    names = list(ae.model.maps_name)
    return seconds, {"icvf": maps[:, names.index("NDI")], "odi": maps[:, names.index("ODI")],
                     "fiso": maps[:, names.index("FWF")]}


def bench_noddi(quick, repeats):
    acq = Acquisition.scheme("hcp")
    model = noddi()
    n = 1000 if quick else 8000
    p, _, y = simulate_dataset(model, acq, n, snr=30, random_state=1, ranges=NODDI_RANGES)
    data, truth = 1000.0 * y, model.maps(p)
    keys = ("odi", "icvf", "fiso")
    rows = []
    try:
        seconds, maps = amico_noddi(acq, data, repeats)
        rows.append(_row("AMICO (peer)", n, seconds, truth, maps, keys))
    except Exception as err:  # the peer is optional
        print(f"AMICO unavailable: {err}")
    for method in ("mix", "interior-point", "dictionary"):
        fit(model, acq, data[:64], method=method)  # load the compiled kernels once
        seconds, res = median_time(lambda method=method: fit(model, acq, data, method=method),
                                   repeats)
        rows.append(_row(method, n, seconds, truth, res.maps(), keys))
    return rows, keys


def dipy_ivim(acq, data, fit_method="trr"):
    """Fit IVIM with DIPY's IvimModel once; returns (seconds, maps in SI)."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.ivim import IvimModel

    gtab = gradient_table(acq.bvals / 1e6, bvecs=acq.bvecs, b0_threshold=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = IvimModel(gtab, fit_method=fit_method)
        seconds, res = median_time(lambda: peer.fit(data), 1)
    return seconds, {"f": res.perfusion_fraction, "d": np.asarray(res.D) * 1e-6,
                     "d_star": np.asarray(res.D_star) * 1e-6}


def bench_ivim(quick, repeats):
    acq = Acquisition.scheme("ivim")
    model = ivim()
    n = 1000 if quick else 8000
    p, _, y = simulate_dataset(model, acq, n, snr=30, random_state=2, ranges=IVIM_RANGES)
    data, truth = 1000.0 * y, model.maps(p)
    keys = ("f", "d", "d_star")
    scale = {"d": 1e-9, "d_star": 1e-9}
    rows = []
    m_peer = 200 if quick else 1000
    for fit_method in ("trr", "VarPro"):
        try:
            seconds, maps = dipy_ivim(acq, data[:m_peer], fit_method)
            sub = {k: v[:m_peer] for k, v in truth.items()}
            rows.append(_row(f"DIPY {fit_method} (peer)", m_peer, seconds, sub, maps, keys,
                             scale))
        except Exception as err:
            print(f"DIPY IVIM {fit_method} unavailable: {type(err).__name__}: {err}")
    for method in ("mix", "interior-point", "dictionary"):
        seconds, res = median_time(lambda method=method: fit(model, acq, data, method=method),
                                   repeats)
        row = _row(method, n, seconds, truth, res.maps(), keys, scale)
        row["corr_d"] = float(np.corrcoef(res["d"], truth["d"])[0, 1])
        rows.append(row)
    return rows, keys


def bench_activeax(quick, repeats):
    acq = Acquisition.scheme("activeax")
    model = activeax()
    n = 500 if quick else 2000
    p, _, y = simulate_dataset(model, acq, n, snr=50, random_state=3, ranges=ACTIVEAX_RANGES)
    data, truth = 1000.0 * y, model.maps(p)
    keys = ("diameter", "icvf", "fiso")
    rows = []
    for method in ("mix", "interior-point", "dictionary"):
        seconds, res = median_time(lambda method=method: fit(model, acq, data, method=method),
                                   repeats)
        row = _row(method, n, seconds, truth, res.maps(), keys, {"diameter": 1e-6})
        big = truth["diameter"] >= 2e-6
        row["rmse_diam_ge2um"] = rmse(res["diameter"][big] * 1e6, truth["diameter"][big] * 1e6)
        rows.append(row)
    return rows, keys


def _with_ratio(rows, peer_prefix):
    peer = next((r for r in rows if r["method"].startswith(peer_prefix)), None)
    for r in rows:
        r["ratio"] = r["vox_per_s"] / peer["vox_per_s"] if peer else float("nan")
    return rows


def main(quick: bool = False) -> None:
    logging.getLogger("amico").setLevel(logging.ERROR)
    repeats = 1 if quick else 3
    rows, keys = bench_noddi(quick, repeats)
    print("\nNODDI, hcp, SNR 30 (targets: MIX >= 25x AMICO, RMSE ODI <= 0.033, ICVF <= 0.024,"
          " FISO <= 0.031)")
    print_table(_with_ratio(rows, "AMICO"), ["method", "voxels", "seconds", "vox_per_s", "ratio"]
                + [f"rmse_{k}" for k in keys])
    rows, keys = bench_ivim(quick, repeats)
    print("\nIVIM, 21 b-values, SNR 30 (targets: >= 300x DIPY trr, f RMSE <= 0.06, "
          "corr(D) >= 0.95; D in µm²/ms)")
    print_table(_with_ratio(rows, "DIPY trr"), ["method", "voxels", "seconds", "vox_per_s",
                                                 "ratio"] + [f"rmse_{k}" for k in keys]
                + ["corr_d"])
    rows, keys = bench_activeax(quick, repeats)
    print("\nActiveAx, activeax scheme, SNR 50 (targets: diameter RMSE <= 0.5 µm, ICVF/FISO "
          "<= 0.012, >= 2000 vox/s; diameter in µm)")
    print_table(rows, ["method", "voxels", "seconds", "vox_per_s"] + [f"rmse_{k}" for k in keys]
                + ["rmse_diam_ge2um"])
