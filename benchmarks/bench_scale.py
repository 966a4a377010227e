"""Whole-brain scale: an HCP-size phantom through `predict` and `fit`, peak memory, Dask.

Builds (once, cached in bench_output/) a 145×174×145×288 NODDI phantom (~0.98 M brain
voxels, written slab by slab), then times the CLI end to end in fresh processes (read,
features or fit, write): a learned NODDI estimator (`predict`) and the MIX fit (`fit`),
with the peak resident memory of each process. Dask with 2 local workers is compared with
the in-process run on the same prediction. Targets: predict < 30 s, fit < 2 min, both
< 4 GB.

Measured 2026-11-25 on the shared 2-core machine under load 4-6 (other jobs running), full
size, 984,396 brain voxels: predict 27.5 s in-command (33.8 s process wall incl. imports,
1.71 GB peak RSS); Dask 2 local workers 16.9 s (21.7 s wall, 1.76 GB largest process);
MIX fit 284 s (3,461 vox/s, 1.25 GB) -- the fit target (< 120 s) was not met under that
load. Maps from in-process and Dask runs are identical.

Re-measured 2026-11-25 10:30 UTC after the vectorised NODDI kernel (quiet machine):
predict 20.6 s wall (15.2 s in-command, 1.38 GB); Dask 2 workers 21.8 s (1.23 GB); MIX fit
33.0 s wall, 31.0 s in-command (31,785 vox/s end to end incl. reading and writing), 0.96 GB.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path("bench_output")
HCP_SHAPE = (145, 174, 145)
QUICK_SHAPE = (60, 70, 50)


#: Runs one command and prints its peak RSS (KiB): a fresh parent per measured command,
#: so RUSAGE_CHILDREN holds that command only.
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(r.returncode)")


def _cli(*args) -> tuple[float, float, str]:
    """Run ``microlearn ARGS`` in a fresh process: (seconds, peak RSS in GB, last line)."""
    exe = Path(sys.executable).parent / "microlearn"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(exe), *map(str, args)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"microlearn {' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    rss = int(proc.stderr.strip().splitlines()[-1]) / 1024**2  # KiB -> GiB
    return seconds, rss, proc.stdout.strip().splitlines()[-1]


def _phantom(shape) -> Path:
    folder = CACHE / ("phantom_" + "x".join(map(str, shape)))
    if not (folder / "truth" / "odi.nii.gz").exists():
        shutil.rmtree(folder, ignore_errors=True)
        seconds, rss, _ = _cli("phantom", "--out", folder, "--shape", *shape, "--slab-wise")
        print(f"phantom {shape}: {seconds:.0f} s, peak RSS {rss:.2f} GB (cached in {folder})")
    return folder


def main(quick: bool = False) -> None:
    shape = QUICK_SHAPE if quick else HCP_SHAPE
    folder = _phantom(shape)
    est = CACHE / "estimator_noddi_dnn"
    if not (est / "estimator.json").exists():
        _cli("learn", "--model", "noddi", "--scheme", "hcp", "--estimator", "dnn",
             "--n-fibres", "1", "--n-samples", 20_000 if quick else 100_000, "--out", est)
    rows = []
    for label, args in [
        ("learned NODDI (dnn) predict", ("predict", est, folder, "--out", CACHE / "pred",
                                         "--force")),
        ("learned NODDI predict, Dask 2 local workers",
         ("predict", est, folder, "--workers", 2, "--out", CACHE / "pred_dask", "--force")),
        ("NODDI MIX fit", ("fit", folder, "--out", CACHE / "fit_mix", "--force")),
    ]:
        seconds, rss, line = _cli(*args)
        rows.append((label, seconds, rss, line))
        print(f"{label:46s} {seconds:7.1f} s  peak RSS {rss:5.2f} GB  | {line}", flush=True)
    print(f"shape {shape}; targets (HCP size): predict < 30 s, MIX fit < 120 s, RSS < 4 GB")
    print(f"Dask overhead: {rows[1][1] - rows[0][1]:+.1f} s vs in-process")
