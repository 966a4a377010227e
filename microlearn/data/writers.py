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
    """Check an output folder before any work is done (it is created only when the run
    writes into it, so a failed run leaves no empty folder behind).

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
        The output folder (not created here).
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
    return check_creatable(out)


def check_creatable(out_dir) -> Path:
    """``out_dir`` when it is a writable folder or could be created (nothing is made)."""
    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ValueError(f"output folder {out} is a file (or a broken link); choose "
                             "another --out.")
        if not os.access(out, os.W_OK | os.X_OK):
            raise ValueError(f"output folder {out} is not writable; choose another --out.")
        return out
    parent = out.absolute().parent
    while not (parent.exists() or parent.is_symlink()):
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot create output folder {out}: {parent} is a file; choose "
                         "another --out.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create output folder {out}: {parent} is not writable; "
                         "choose another --out.")
    return out


def check_existing(out_dir, names, *, force: bool = False) -> None:
    """Refuse (``ValueError``) when a file of ``names`` already exists in ``out_dir``.

    A link counts as a file even when it points nowhere (a dangling link is replaced only
    with ``force``, and then the link itself, never what it points to); a file whose folder
    inside ``out_dir`` is a link leading out of it is refused whatever ``force`` says.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return
    root = out.resolve()
    for n in names:
        parent = (out / n).parent.resolve()
        if parent != root and root not in parent.parents:
            raise ValueError(f"output folder {out}: {Path(n).parent} leads out of it (a link "
                             f"to {parent}); microlearn writes only inside --out: remove the "
                             "link or choose another --out.")
    folders = sorted(n for n in names if (out / n).is_dir() and not (out / n).is_symlink()
                     and "." in Path(n).name)
    if folders:
        raise ValueError(f"output folder {out} holds a folder named {folders[0]} where a file "
                         "would go; microlearn never replaces folders: move it or choose "
                         "another --out.")
    if force:
        return
    clash = sorted(n for n in names if os.path.lexists(out / n))
    if clash:
        more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
        raise ValueError(f"output folder {out} already holds {clash[0]}{more}; add --force to "
                         "replace them, or choose another --out (other files there are "
                         "never touched).")


def inside(path, root) -> Path:
    """``path`` after checking that it resolves inside the folder ``root`` (``ValueError``
    otherwise): the last gate before a file is written."""
    path, real = Path(path), Path(root).resolve()
    final = path.parent.resolve() / path.name
    if real not in final.parents:
        raise ValueError(f"refusing to write {path}: it resolves to {final}, outside "
                         f"{root}; microlearn writes only inside its output folder.")
    return path


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


def named(err: BaseException, path) -> BaseException:
    """``err`` with ``path`` as its file name when it is an ``OSError`` without one (a
    full disk reported by a write names no file): the message can name the file."""
    if isinstance(err, OSError) and err.filename is None:
        err.filename = str(path)
    return err


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
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        named(err, path)
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


#: Lock file of an output folder while a run moves its files in.
OUT_LOCK = ".microlearn.lock"
#: Prefix of the staging folders inside an output folder.
STAGING_PREFIX = ".microlearn-staging-"


@contextmanager
def staged_output(out_dir, *, force: bool = False):
    """Write a run's outputs together: yields a staging folder, then moves its files in.

    ``out_dir`` keeps every file this run did not write. A file of the run that already
    exists in ``out_dir`` (a dangling link included) is replaced only with ``force``
    (otherwise ``ValueError`` naming it, and nothing moves). One run at a time: the folder
    is locked (:data:`OUT_LOCK`, see :mod:`microlearn.data.locks`) from staging to the last
    move, and staging folders left by a killed run are removed. The files are moved in one
    by one and moved back if any move fails; an exception or interruption inside the block
    leaves ``out_dir`` as it was, removes the staging folder, and removes ``out_dir`` when
    this run created it.
    """
    import shutil

    from . import locks

    out_dir = Path(out_dir)
    check_creatable(out_dir)
    made = [p for p in [out_dir, *out_dir.parents] if not (p.exists() or p.is_symlink())]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create output folder {out_dir}: {err.strerror}; choose "
                         "another --out.") from None
    for d in reversed(made):
        honour_umask(d, directory=True)
    staging = None
    try:
        with locks.holding(out_dir / OUT_LOCK, what=f"output folder {out_dir}"):
            _remove_stale_staging(out_dir)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
            yield staging
            files = sorted(p.relative_to(staging) for p in staging.rglob("*")
                           if not p.is_dir())
            check_existing(out_dir, [str(f) for f in files], force=force)
            for d in [p for p in staging.rglob("*") if p.is_dir()]:
                honour_umask(d, directory=True)
            _move_in(staging, out_dir, files)
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for d in made:  # folders this run created and left empty
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of runs killed before they finished (the caller holds the lock, so
    no live run is staging here). Older versions staged beside the folder."""
    import shutil

    old = list(out_dir.parent.glob(f".{out_dir.name}.staging-*"))
    for p in [*out_dir.glob(f"{STAGING_PREFIX}*"), *old]:
        if p.is_dir() and not p.is_symlink():
            log.info("removing %s, left by an interrupted run", p)
            shutil.rmtree(p, ignore_errors=True)


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
            if os.path.lexists(target):
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

    from ..names import check_name

    out = check_writable(out_dir)
    m = None if mask is None else np.asarray(mask, bool)
    units = units or {}
    for name in maps:
        check_name(name, field="map name")

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
        return save_nifti_atomic(arr, affine, inside(out / f"{name}{ext}", out),
                                 header=header, description=text)

    if workers <= 1 or len(maps) < 2:
        return [one(item) for item in maps.items()]
    with ThreadPoolExecutor(workers, thread_name_prefix="microlearn-write") as pool:
        return list(pool.map(one, maps.items()))


def write_json(path, obj) -> Path:
    """Write JSON atomically; always valid JSON: NaN and infinities are written as null."""
    path = Path(path)
    check_writable(path.parent)
    text = json.dumps(json_safe(obj), indent=2, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        _atomic_replace(Path(tmp), path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        named(err, path)
        raise
    return path


def json_safe(obj):
    """``obj`` with numpy values as Python ones and NaN/±inf as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        named(err, path)
        raise
