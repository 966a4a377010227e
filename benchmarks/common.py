"""Timing and table helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time

import numpy as np


def median_time(fn, repeats: int):
    """Run ``fn`` ``repeats`` times; return (median seconds, last result)."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def rmse(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))


def print_table(rows, columns) -> None:
    """Print rows (dicts) as an aligned text table."""
    widths = {c: max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c, "")).rjust(widths[c]) for c in columns), flush=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def amico_subject(study: str, data, bvals_s_per_mm2, bvecs) -> str:
    """Write voxels as AMICO's one-subject study (``study/subj``: dwi.nii as (n, 1, 1, N),
    an all-ones mask, FSL bvals in s/mm² and bvecs as 3 rows); returns the subject folder."""
    import os

    import nibabel as nib

    n = data.shape[0]
    subj = os.path.join(study, "subj")
    os.makedirs(subj)
    nib.save(nib.Nifti1Image(data.reshape(n, 1, 1, -1).astype(np.float32), np.eye(4)),
             os.path.join(subj, "dwi.nii"))
    nib.save(nib.Nifti1Image(np.ones((n, 1, 1), np.uint8), np.eye(4)),
             os.path.join(subj, "mask.nii"))
    np.savetxt(os.path.join(subj, "bvals"), np.asarray(bvals_s_per_mm2)[None])
    np.savetxt(os.path.join(subj, "bvecs"), np.asarray(bvecs).T)
    return subj
