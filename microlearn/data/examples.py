"""Small real scans that ship inside DIPY's wheel (read from the installed package, never
downloaded): for tutorials, tests and a first look at real data."""

from __future__ import annotations

from pathlib import Path

#: DIPY's shipped scans: name -> (DWI file, what it is).
DIPY_SCANS = {
    "small_101D": ("small_101D.nii.gz", "6x10x10 voxels, 1 b0 (b=15) + 101 q-space "
                   "b-values to 4000 s/mm² with scanner jitter"),
    "small_64D": ("small_64D.nii", "10x10x10 voxels, 1 b0 + 64 directions at b=1000"),
    "small_25": ("small_25.nii.gz", "10x8x2 voxels, 1 b0 + 25 directions at b=2000"),
}


def dipy_scan_files(name: str = "small_101D") -> dict[str, Path]:
    """Paths of a DIPY-shipped scan: ``dwi``, ``bvals``, ``bvecs``.

    Raises
    ------
    ValueError
        For an unknown name or when DIPY's data files are not installed.
    """
    if name not in DIPY_SCANS:
        raise ValueError(f"unknown DIPY scan {name!r}; choose one of {sorted(DIPY_SCANS)}.")
    import dipy

    folder = Path(dipy.__file__).parent / "data" / "files"
    files = {"dwi": folder / DIPY_SCANS[name][0], "bvals": folder / f"{name}.bval",
             "bvecs": folder / f"{name}.bvec"}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise ValueError(f"DIPY's data files are missing ({missing[0]}); reinstall dipy.")
    return files


def dipy_scan(name: str = "small_101D", **kwargs):
    """A DIPY-shipped real scan as a :class:`~microlearn.data.dataset.Dataset` (FSL form, s/mm²).

    ``kwargs`` go to :func:`microlearn.data.dataset.load_dataset` (e.g. timings in s).
    """
    from .dataset import load_dataset

    return load_dataset(**dipy_scan_files(name), **kwargs)
