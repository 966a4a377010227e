"""Outputs that never lose a user's files: staged folders moved in whole, atomic NIfTI and JSON
writes, umask-respecting temporary files, the HCP layout and acquisition files."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np

from ..acquisition import Acquisition
from .dataset import HCP_FILES, PHANTOM_AFFINE

log = logging.getLogger(__name__)

def check_writable(out_dir) -> Path:
    """Create ``out_dir`` if needed (honouring the umask) and check that it is writable."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} is a file; choose another --out.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output folder {out}: {err.strerror}; choose another "
                         "--out.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {out} is not writable; choose another --out.")
    return out


def prepare_output(out_dir, *, inputs=(), names=(), force: bool = False) -> Path:
    """Check an output folder before any work is done, then create it.

    The rules of FSL and MRtrix: microlearn never deletes or replaces a file it did not
    write in this run. An output folder that is one of the ``inputs`` or contains one is
    refused; a file in ``names`` that already exists in it is refused unless ``force``.

    Parameters
    ----------
    out_dir : str or Path
        The ``--out`` folder.
    inputs : sequence of str or Path
        Input files and folders of the run (None entries are skipped).
    names : sequence of str
        Files (relative to ``out_dir``) the run will write.
    force : bool
        Replace existing files of ``names``.

    Returns
    -------
    Path
        The output folder, created if needed.
    """
    out = Path(out_dir)
    target = out.resolve()
    for item in inputs:
        if item is None:
            continue
        src = Path(item).resolve()
        if src == target or target in src.parents:
            raise ValueError(f"--out {out} is the input {item} or contains it; writing there "
                             "could overwrite the data: choose another output folder.")
    check_existing(out, names, force=force)
    return check_writable(out)


def check_existing(out_dir, names, *, force: bool = False) -> None:
    """Refuse (``ValueError``) when a file of ``names`` already exists in ``out_dir``."""
    out = Path(out_dir)
    if not out.is_dir():
        return
    folders = sorted(n for n in names if (out / n).is_dir() and not (out / n).is_symlink()
                     and "." in Path(n).name)
    if folders:
        raise ValueError(f"output folder {out} holds a folder named {folders[0]} where a file "
                         "would go; microlearn never replaces folders: move it or choose "
                         "another --out.")
    if force:
        return
    clash = sorted(n for n in names if (out / n).exists())
    if clash:
        more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
        raise ValueError(f"output folder {out} already holds {clash[0]}{more}; add --force to "
                         "replace them, or choose another --out (other files there are "
                         "never touched).")


def current_umask() -> int:
    """The process umask.

    Read from ``/proc/self/status`` where the kernel offers it: setting and restoring the
    umask to read it would, for that instant, give files created by other threads (a
    dashboard's background run) the wrong mode.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path, *, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would: 0666 (files) or 0777
    (folders) less the umask. ``mkstemp``/``mkdtemp`` create private 0600/0700 entries."""
    base = 0o777 if directory else 0o666
    os.chmod(path, base & ~current_umask())


def _atomic_replace(tmp: Path, final: Path) -> None:
    honour_umask(tmp, directory=Path(tmp).is_dir())
    os.replace(tmp, final)


def save_nifti_atomic(array, affine, path, *, header=None, description: str = "") -> Path:
    """Write a NIfTI image to a temporary name in the same folder, then rename.

    Parameters
    ----------
    array : ndarray
    affine : ndarray, shape (4, 4)
    path : str or Path
    header : nibabel header, optional
        The input image's header: its qform and sform (matrices and codes) and spatial
        unit are kept, so every program places the map where it placed the input.
    description : str
        Written to the header's ``descrip`` field (80 characters; e.g. the map's unit).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        nib.save(_image(array, affine, header, description), tmp)
        _atomic_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _image(array, affine, header, description):
    img = nib.Nifti1Image(array, affine)
    if header is not None:
        try:
            qform, qcode = header.get_qform(coded=True)
            sform, scode = header.get_sform(coded=True)
            space = header.get_xyzt_units()[0]
        except Exception:  # not a NIfTI header: nibabel's defaults
            qcode = scode = 0
            space = "unknown"
        if qcode:
            img.set_qform(qform, code=int(qcode))
        else:
            img.set_qform(affine, code=0)
        if scode:
            img.set_sform(sform, code=int(scode))
        elif qcode:
            img.set_sform(affine, code=0)
        img.header.set_xyzt_units(xyz=space if space != "unknown" else "mm", t="sec")
    else:
        img.header.set_xyzt_units(xyz="mm", t="sec")
    if description:
        img.header["descrip"] = description.encode("utf-8")[:79]
    return img


@contextmanager
def staged_output(out_dir, *, force: bool = False):
    """Write a run's outputs together: yields a staging folder, then moves its files in.

    ``out_dir`` keeps every file this run did not write. A file of the run that already
    exists in ``out_dir`` is replaced only with ``force`` (otherwise ``ValueError`` naming
    it, and nothing moves). When ``out_dir`` does not exist yet the staging folder is
    renamed into place (atomic); otherwise the files are moved in one by one and moved back
    if any move fails. An exception or interruption inside the block leaves ``out_dir`` as
    it was and removes the staging folder.
    """
    import shutil

    out_dir = Path(out_dir)
    if out_dir.is_dir():  # stage inside: its parent need not be writable
        staging = Path(tempfile.mkdtemp(prefix=".microlearn-staging-", dir=out_dir))
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        yield staging
        files = sorted(p.relative_to(staging) for p in staging.rglob("*") if not p.is_dir())
        if not out_dir.exists():
            for d in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
                honour_umask(d, directory=True)
            os.replace(staging, out_dir)
            return
        check_existing(out_dir, [str(f) for f in files], force=force)
        _move_in(staging, out_dir, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(staging: Path, out_dir: Path, files) -> None:
    """Move ``files`` from ``staging`` into ``out_dir``; all of them or (on error) none."""
    backup = staging / ".replaced"
    done = []
    try:
        for rel in files:
            target = out_dir / rel
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True)
            kept = None
            if target.exists():
                kept = backup / rel
                kept.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, kept)
            os.replace(staging / rel, target)
            done.append((rel, kept))
    except BaseException:
        for rel, kept in reversed(done):
            target = out_dir / rel
            os.replace(target, staging / rel)
            if kept is not None:
                os.replace(kept, target)
        raise


def write_maps(out_dir, maps, affine, *, mask=None, header=None, units=None,
               workers: int = 2, compress: bool = True) -> list[Path]:
    """Write maps as ``<name>.nii.gz`` atomically (float32; ``n_fibres`` as uint8).

    Maps are compressed by ``workers`` threads at once (zlib releases the GIL).

    Parameters
    ----------
    maps : dict of str to ndarray, shape (X, Y, Z) or (X, Y, Z, k)
    affine : ndarray, shape (4, 4)
    mask : ndarray of bool, optional
        Voxels outside are set to 0 (NaN stays NaN inside).
    header : nibabel header, optional
        The input's: qform/sform codes and spatial unit are kept (:func:`save_nifti_atomic`).
    units : dict of str to str, optional
        Unit of each map's values, written in its header (``descrip``: "diameter [m]").
    workers : int
        Maps written at once.
    compress : bool
        ``False`` writes ``<name>.nii`` (no gzip: faster, about 3x larger).
    """
    from concurrent.futures import ThreadPoolExecutor

    out = check_writable(out_dir)
    m = None if mask is None else np.asarray(mask, bool)
    units = units or {}

    def one(item):
        name, value = item
        arr = np.asarray(value)
        if name == "n_fibres":
            arr = np.nan_to_num(arr).astype(np.uint8)
        else:
            arr = arr.astype(np.float32)
        if m is not None:
            arr = arr.copy()
            arr[~m] = 0
        text = f"microlearn {name} [{units[name]}]" if units.get(name) is not None else ""
        ext = ".nii.gz" if compress else ".nii"
        return save_nifti_atomic(arr, affine, out / f"{name}{ext}", header=header,
                                 description=text)

    if workers <= 1 or len(maps) < 2:
        return [one(item) for item in maps.items()]
    with ThreadPoolExecutor(workers, thread_name_prefix="microlearn-write") as pool:
        return list(pool.map(one, maps.items()))


def write_json(path, obj) -> Path:
    """Write JSON atomically."""
    path = Path(path)
    check_writable(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=_json_default)
        _atomic_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_hcp_folder(out_dir, data, acq: Acquisition, mask, affine=None) -> Path:
    """Write data.nii.gz, bvals (s/mm²), bvecs (3 rows), mask and acquisition.json."""
    out = check_writable(out_dir)
    affine = PHANTOM_AFFINE if affine is None else affine
    save_nifti_atomic(np.asarray(data, np.float32), affine, out / HCP_FILES["dwi"])
    save_nifti_atomic(np.asarray(mask, np.uint8), affine, out / HCP_FILES["mask"])
    write_acquisition_files(out, acq)
    return out


def write_acquisition_files(out: Path, acq: Acquisition) -> None:
    """bvals (s/mm²), bvecs (3 rows) and acquisition.json (timings) into folder ``out``."""
    _write_text(out / "bvals", " ".join(f"{b:g}" for b in acq.bvals / 1e6) + "\n")
    _write_text(out / "bvecs", "\n".join(" ".join(f"{v:.8f}" for v in row)
                                         for row in acq.bvecs.T) + "\n")
    timing = {"delta": _compact(acq.delta), "Delta": _compact(acq.Delta),
              "TE": None if acq.TE is None else _compact(acq.TE), "G": acq.G.tolist()}
    write_json(out / HCP_FILES["acquisition"], {k: v for k, v in timing.items() if v is not None})


def _compact(arr):
    arr = np.asarray(arr)
    return float(arr[0]) if np.allclose(arr, arr[0]) else arr.tolist()


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        _atomic_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
