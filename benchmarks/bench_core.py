"""Every model on every acquisition: warm and fresh speed, engine and accuracy, one row each.

Rows: every registered family (``models.registry``; NODDI with 1, 2 and 3 fibres), NODDI
with ``--free d_par`` and a stick + zeppelin + ball model composed from a JSON spec (tied
orientation and d∥, tortuous d⊥), each on HCP, the family's own scheme and two rich
protocols (``benchmarks/acquisitions.py``: ISBI 2015-like, 2,820 measurements in 48
groups; ex vivo spinal-cord-like, 1,791 measurements to b = 1.2e5 s/mm², where families
with an ``exvivo`` tissue preset use it). Data: ``simulate_dataset`` at SNR 30 (Rician),
S0 = 1000.

Per row: warm vox/s (median of 3 repeats of ``fit()`` after a warm-up call, quality maps
included; the voxel count is sized from a pilot so one repeat takes about ``BUDGET_S``),
measurement-voxels/s, the target 3e6 / (measurements × fibres) vox/s and whether it is
met, the engine the fit reports, RMSE per compared map (``compared_maps`` of the
registry; diffusivities in µm²/ms, lengths in µm) on a fixed accuracy set, and the fresh
``microlearn fit`` command on a folder written to disk (fit stage and whole command from
fit.json, process wall; median of the runs). Peers in the same run: AMICO NODDI on
NODDI/HCP, AMICO SANDI (kernels + fit) on SANDI/sandi, DIPY IVIM (trr) on IVIM/ivim.

``python -m benchmarks --only core [--quick]``; standalone
``python -m benchmarks.bench_core [--quick] [--model NAME] [--acq NAME] [--no-fresh]
[--json OUT] [--baseline IN]`` (``--baseline``: a ``--json`` of an earlier run, e.g. the
engines before a change: prints the RMSE ratio per map, > 1 is worse).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from microlearn import Acquisition, simulate_dataset
from microlearn.fitting import fit
from microlearn.models.registry import compared_maps, family, family_names
from microlearn.models.spec import load_model

from .acquisitions import RICH
from .bench_fitting import ACTIVEAX_RANGES, IVIM_RANGES, NODDI_RANGES
from .common import print_table, rmse

#: Measurement-voxels per second the core must reach warm on 2 cores (issue 24).
TARGET_MV_PER_S = 3e6
SNR, S0 = 30.0, 1000.0
#: Families whose 2- and 3-fibre variants get rows of their own (issue 24 names NODDI 1–3).
MULTI_FIBRE = ("noddi",)
#: The composed model, as the ModelComposer / ``model.to_json()`` writes it.
COMPOSED_SPEC = {
    "format": "microlearn-model", "version": 1, "name": "stick-zeppelin-ball",
    "compose": [{"compartment": "Stick", "name": "stick"},
                {"compartment": "Zeppelin", "name": "zeppelin"},
                {"compartment": "Ball", "name": "ball"}],
    "steps": [["tie", "zeppelin_mu", "stick_mu"], ["tie", "zeppelin_d_par", "stick_d_par"],
              ["tortuosity", "zeppelin_d_perp", "stick.d_par", "stick", "zeppelin"]]}
#: Display scales of the compared maps (SI -> µm²/ms, µm).
SCALE = {"d": 1e-9, "d_star": 1e-9, "d_par": 1e-9, "d_perp": 1e-9, "d_in": 1e-9, "d_e": 1e-9,
         "stick_d_par": 1e-9, "ball_d_iso": 1e-9, "diameter": 1e-6, "diameter_mean": 1e-6,
         "rs": 1e-6}
#: Simulation ranges of the families the speed/accuracy targets were set on (the same as
#: bench_fitting's); other families sample their parameters' prior bounds.
RANGES = {"noddi": NODDI_RANGES, "ivim": IVIM_RANGES, "activeax": ACTIVEAX_RANGES}
SETTINGS = {True: {"budget": 1.0, "n_acc": 100, "n_min": 16, "n_max": 2000, "fresh_runs": 1},
            False: {"budget": 4.0, "n_acc": 500, "n_min": 64, "n_max": 20000,
                    "fresh_runs": 3}}


# ----------------------------------------------------------------------------- rows
def model_rows(only_model=None):
    """(label, model builder(acq_name) -> (model, cli args), family or None) per model."""
    out = []
    for name in family_names():
        record = family(name)
        counts = ((1, 2, 3) if name in MULTI_FIBRE else (record.default_fibres,)) \
            if record.has_fibres else (None,)
        for k in counts:
            label = name if k is None or len(counts) == 1 else f"{name}({k})"
            out.append((label, _family_builder(name, k), name))
        if name == "noddi":
            out.append(("noddi --free d_par", _family_builder(name, 1, free="d_par"), name))
    out.append(("composed s+z+b (spec)", lambda acq: (load_model(COMPOSED_SPEC), ["spec"]),
                None))
    return [r for r in out if only_model is None or r[0].split("(")[0].split()[0]
            in only_model or r[0] in only_model]


def _family_builder(name, n_fibres, free=None):
    def build(acq_name):
        record = family(name)
        tissue = "exvivo" if acq_name == "exvivo-sc" and "exvivo" in record.tissues else None
        model = record.build(n_fibres, tissue=tissue)
        args = ["--model", name]
        if n_fibres is not None:
            args += ["--n-fibres", str(n_fibres)]
        if tissue:
            args += ["--tissue", tissue]
        if free:
            model = model.free(free)
            args += ["--free", free]
        return model, args
    return build


def acquisitions_for(family_name):
    """HCP, the family's own scheme and the rich protocols (names)."""
    own = family(family_name).scheme if family_name else "hcp"
    return list(dict.fromkeys(["hcp", own, *RICH]))


def get_acquisition(name):
    return RICH[name]() if name in RICH else Acquisition.scheme(name)


# ------------------------------------------------------------------------ measuring
def engine_name(res, default="?"):
    """The engine the fit reports (FitResult.engine / extra['engine'] / fit.json)."""
    for value in (getattr(res, "engine", None), getattr(res, "engine_name", None),
                  (getattr(res, "extra", None) or {}).get("engine")):
        if value is not None and not isinstance(value, np.ndarray):
            return value if isinstance(value, str) else getattr(value, "__name__", str(value))
    return default


def _reported_engine(model, acq, method):
    """Fallback when FitResult carries no engine: what ``fit --explain`` would name."""
    try:
        from microlearn.fitting.api import engine_class

        return engine_class(method, model, acq).__name__ + "*"
    except Exception:  # noqa: BLE001 - only a label
        return "?"


def accuracy(model, res, truth, n_acc):
    keys = [k for k in compared_maps(model) if k in truth]
    maps = res.maps()
    out = {}
    for k in keys:
        if k not in maps:
            continue
        s = SCALE.get(k, 1.0)
        out[k] = rmse(np.asarray(maps[k])[:n_acc] / s, np.asarray(truth[k])[:n_acc] / s)
    return out


def ranges_for(model):
    """The family's bench ranges, by parameter name (``odi`` -> ``odi_1``... with fibres)."""
    names = set(model.parameter_names)
    out = {}
    for k, v in RANGES.get(getattr(model, "family", None), {}).items():
        for name in [k] + [f"{k}_{i}" for i in (1, 2, 3)]:
            if name in names:
                out[name] = v
    return out


def warm_row(label, model, acq, method, cfg):
    """Simulate, warm up, size the run from a pilot, time 3 repeats; returns a row."""
    n_acc = cfg["n_acc"]
    params, _, noisy = simulate_dataset(model, acq, n_acc, snr=SNR, random_state=24,
                                        ranges=ranges_for(model))
    truth = model.maps(params)
    base = S0 * noisy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        fit(model, acq, base[:16], method=method)  # first call: compilation, set-up
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit(model, acq, base[:32], method=method)
        rate = 32 / max(time.perf_counter() - t0, 1e-3)
        n = int(np.clip(rate * cfg["budget"], cfg["n_min"], cfg["n_max"]))
        data = np.resize(base, (n, base.shape[1]))  # the accuracy set, repeated or cut
        times, res = [], None
        for _ in range(3):
            t0 = time.perf_counter()
            res = fit(model, acq, data, method=method)
            times.append(time.perf_counter() - t0)
        # accuracy always on the whole accuracy set, whatever the timed size
        acc_res = res if n >= n_acc else fit(model, acq, base, method=method)
    sec = statistics.median(times)
    nf = max(1, model.n_fibres or 0)
    vps = n / sec
    target = TARGET_MV_PER_S / (acq.n_measurements * nf)
    row = {"model": label, "acq": acq.name, "meas": acq.n_measurements, "fibres": nf,
           "method": method, "voxels": n, "first_s": first, "warm_vox_s": vps,
           "meas_vox_s": vps * acq.n_measurements, "target": target,
           "met": "yes" if vps >= target else "NO",
           "engine": engine_name(res, _reported_engine(model, acq, method)),
           "spread": (max(times) - min(times)) / sec}
    row["rmse"] = accuracy(model, acc_res, truth, n_acc)
    return row, (data if n >= n_acc else base), truth


def fresh_command(model, args, acq, data, runs, work):
    """``microlearn fit`` in fresh processes on a folder on disk; median figures."""
    from microlearn.data.writers import write_hcp_folder, write_json

    n = data.shape[0]
    folder = os.path.join(work, "in")
    write_hcp_folder(folder, data.reshape(n, 1, 1, -1), acq, np.ones((n, 1, 1), bool))
    if args == ["spec"]:
        spec = os.path.join(work, "model.json")
        write_json(spec, COMPOSED_SPEC)
        args = ["--model", spec]
    out = os.path.join(work, "out")
    exe = os.path.join(os.path.dirname(sys.executable), "microlearn")
    cmd = [exe, "fit", folder, *args, "--out", out, "--force"]
    walls, infos = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            return {"fresh_error": tail[0][:120]}
        with open(os.path.join(out, "fit.json")) as fh:
            infos.append(json.load(fh))

    def med(key):
        vals = [i[key] for i in infos if isinstance(i.get(key), (int, float))]
        return statistics.median(vals) if vals else float("nan")

    conv = infos[-1].get("convergence") or {}
    return {"fresh_voxels": n, "fresh_fit_s": med("fit_seconds"),
            "fresh_setup_s": med("setup_seconds"),
            "fresh_cmd_s": med("seconds"), "fresh_wall_s": statistics.median(walls),
            "fresh_engine": conv.get("engine", infos[-1].get("engine", "?"))}


# ---------------------------------------------------------------------------- peers
def peer(label, acq, data, truth, n_acc):
    """The peer of a row, in the same run: (name, vox/s, seconds, rmse) or None."""
    try:
        if label == "noddi(1)" and acq.name == "hcp":
            from .bench_fitting import amico_noddi

            sec, maps = amico_noddi(acq, data, 3)
            return _peer("AMICO NODDI fit", data.shape[0], sec, maps, truth, n_acc)
        if label == "sandi" and acq.name == "sandi":
            from .bench_sandi import amico_sandi

            times, maps = amico_sandi(acq.bvals / 1e6, acq.bvecs, data / S0)
            return _peer("AMICO SANDI kernels+fit", data.shape[0],
                         times["kernels"] + times["fit"], maps, truth, n_acc)
        if label == "ivim" and acq.name == "ivim":
            from .bench_fitting import dipy_ivim

            m = min(data.shape[0], 500)
            sec, maps = dipy_ivim(acq, data[:m])
            return _peer("DIPY IVIM trr", m, sec, maps, truth, min(n_acc, m))
    except Exception as err:  # noqa: BLE001 - a peer is optional
        return {"peer": f"unavailable: {type(err).__name__}: {str(err)[:60]}"}
    return None


def _peer(name, n, sec, maps, truth, n_acc):
    out = {"peer": name, "peer_vox_s": n / sec, "peer_s": sec}
    out["peer_rmse"] = {k: rmse(np.asarray(maps[k])[:n_acc] / SCALE.get(k, 1.0),
                                np.asarray(truth[k])[:n_acc] / SCALE.get(k, 1.0))
                        for k in maps if k in truth}
    return out


# ------------------------------------------------------------------- workshop click
def workshop_click():
    """The composed spec on the dashboards' brain phantom, as one "run" click fits it:
    ``fit()`` on the phantom's mask plus ``maps()``; first click and median of 3 later
    ones, or of 1 when it takes over 20 s (target < 1 s per click)."""
    from microlearn.data.phantom import make_phantom

    try:
        from microlearn.panels.fit_or_learn import PHANTOM_SHAPE
    except ImportError:  # the panels' extra is absent
        PHANTOM_SHAPE = (32, 38, 4)
    model = load_model(COMPOSED_SPEC)
    ph = make_phantom(model=COMPOSED_SPEC, shape=PHANTOM_SHAPE, seed=0, kind="brain")
    times, res = [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(4):
            t0 = time.perf_counter()
            res = fit(model, ph.acq, ph.data, mask=ph.mask)
            res.maps()
            times.append(time.perf_counter() - t0)
            if i >= 1 and times[-1] > 20.0:  # far from the target: one warm click will do
                break
    maps = res.maps()
    row = {"model": "composed s+z+b (spec)", "acq": f"phantom {PHANTOM_SHAPE}",
           "voxels": int(ph.mask.sum()), "first_click_s": times[0],
           "warm_clicks": len(times) - 1,
           "click_s": statistics.median(times[1:]),
           "met": "yes" if statistics.median(times[1:]) < 1.0 else "NO",
           "engine": engine_name(res, _reported_engine(model, ph.acq, "mix"))}
    errs = {k: rmse(maps[k][ph.mask] / SCALE.get(k, 1.0), ph.truth[k][ph.mask] / SCALE.get(k, 1.0))
            for k in compared_maps(model) if k in maps and k in ph.truth}
    row["rmse_maps"] = " ".join(f"{k}={v:.3g}" for k, v in errs.items())
    print("\nWorkshop click: the composed spec on the brain phantom (target < 1 s per click)")
    print_table([row], ["model", "acq", "voxels", "first_click_s", "click_s", "warm_clicks",
                        "met", "engine", "rmse_maps"])
    return row


# ------------------------------------------------------------------------------ run
def run(quick=False, only_model=None, only_acq=None, fresh=True, json_out=None,
        baseline=None):
    logging.getLogger("amico").setLevel(logging.ERROR)
    cfg = SETTINGS[bool(quick)]
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f}; {'quick' if quick else 'full'}: ~{cfg['budget']} s per "
          f"repeat, accuracy on {cfg['n_acc']} voxels, fresh runs {cfg['fresh_runs']}",
          flush=True)
    for label, build, fam in model_rows(only_model):
        for acq_name in acquisitions_for(fam):
            if only_acq and acq_name not in only_acq:
                continue
            acq = get_acquisition(acq_name)
            model, args = build(acq_name)
            method = family(fam).method if fam else "mix"
            t0 = time.perf_counter()
            try:
                row, data, truth = warm_row(label, model, acq, method, cfg)
            except Exception as err:  # noqa: BLE001 - one failing row must not end the run
                row = {"model": label, "acq": acq_name, "met": "ERROR",
                       "engine": f"{type(err).__name__}: {str(err)[:80]}"}
                rows.append(row)
                print(f"  {label} on {acq_name}: {row['engine']}", flush=True)
                continue
            own = acq_name == (family(fam).scheme if fam else "hcp")
            if fresh and (not quick or own):
                with tempfile.TemporaryDirectory() as work:
                    row.update(fresh_command(model, args, acq, data,
                                             cfg["fresh_runs"], work))
            p = peer(label, acq, data, truth, cfg["n_acc"])
            if p:
                row.update(p)
            rows.append(row)
            print(f"  {label} on {acq_name}: {row['warm_vox_s']:.0f} vox/s (target "
                  f"{row['target']:.0f}, {row['met']}), {row['engine']}, RMSE "
                  + " ".join(f"{k}={v:.3g}" for k, v in row["rmse"].items())
                  + f", {time.perf_counter() - t0:.0f} s", flush=True)
    report(rows, baseline)
    if only_model is None or "composed" in " ".join(only_model):
        try:
            rows.append(workshop_click())
        except Exception as err:  # noqa: BLE001 - reported, the rest stands
            print(f"workshop click failed: {type(err).__name__}: {err}")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump({"quick": bool(quick), "load": load, "rows": rows}, fh, indent=1,
                      default=float)
        print(f"rows written to {json_out}")
    return rows


def report(rows, baseline=None):
    ok = [r for r in rows if "warm_vox_s" in r]
    for r in ok:
        r["rmse_maps"] = " ".join(f"{k}={v:.3g}" for k, v in r["rmse"].items())
    print("\nWarm fit() (median of 3, quality maps included); target = 3e6 / (measurements "
          "x fibres) vox/s; engine as the fit reports it (* = not reported by FitResult, "
          "from engine_class); RMSE on the accuracy set (d in µm²/ms, lengths in µm)")
    print_table(ok, ["model", "acq", "meas", "fibres", "method", "voxels", "first_s",
                     "warm_vox_s", "meas_vox_s", "target", "met", "spread", "engine",
                     "rmse_maps"])
    fresh = [r for r in ok if "fresh_cmd_s" in r or "fresh_error" in r]
    if fresh:
        print("\nFresh `microlearn fit` on a folder on disk (median of the runs): fit stage "
              "and whole command from fit.json, process wall")
        print_table(fresh, ["model", "acq", "fresh_voxels", "fresh_fit_s", "fresh_setup_s",
                            "fresh_cmd_s", "fresh_wall_s", "fresh_engine", "fresh_error"])
    peers = [r for r in ok if "peer" in r]
    if peers:
        for r in peers:
            r["peer_rmse_maps"] = " ".join(f"{k}={v:.3g}"
                                           for k, v in r.get("peer_rmse", {}).items())
            r["ours_vs_peer"] = r["warm_vox_s"] / r["peer_vox_s"] if "peer_vox_s" in r else ""
        print("\nPeers on the same data (SANDI: compare AMICO's kernels + fit seconds with "
              "fresh_cmd_s above)")
        print_table(peers, ["model", "acq", "peer", "peer_vox_s", "peer_s", "ours_vs_peer",
                            "peer_rmse_maps"])
    bad = [r for r in rows if r.get("met") == "ERROR"]
    print(f"\n{sum(r.get('met') == 'yes' for r in ok)}/{len(ok)} rows meet the speed target; "
          f"{len(bad)} failed")
    if baseline:
        with open(baseline) as fh:
            old = {(r["model"], r["acq"]): r for r in json.load(fh)["rows"] if "rmse" in r}
        cmp_rows = []
        for r in ok:
            o = old.get((r["model"], r["acq"]))
            if o is None:
                continue
            ratios = {k: v / o["rmse"][k] for k, v in r["rmse"].items()
                      if o["rmse"].get(k, 0) > 0}
            cmp_rows.append({"model": r["model"], "acq": r["acq"],
                             "speedup": r["warm_vox_s"] / o["warm_vox_s"],
                             "worst_rmse_ratio": max(ratios.values(), default=float("nan")),
                             "rmse_ratios": " ".join(f"{k}={v:.2f}" for k, v in
                                                     ratios.items())})
        print(f"\nAgainst {baseline} (RMSE ratio > 1: less accurate than the baseline)")
        print_table(cmp_rows, ["model", "acq", "speedup", "worst_rmse_ratio", "rmse_ratios"])


def main(quick: bool = False) -> None:
    run(quick=quick)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_core")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", action="append", help="row label or family (repeatable)")
    ap.add_argument("--acq", action="append", help="acquisition name (repeatable)")
    ap.add_argument("--no-fresh", action="store_true", help="skip the fresh CLI runs")
    ap.add_argument("--json", help="write the rows to this JSON file")
    ap.add_argument("--baseline", help="a --json of an earlier run to compare RMSE with")
    a = ap.parse_args()
    run(quick=a.quick, only_model=a.model, only_acq=a.acq, fresh=not a.no_fresh,
        json_out=a.json, baseline=a.baseline)
