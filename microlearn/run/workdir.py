"""The work folder of a chunked run (``OUT.work``): manifest, finished slabs, lock.

One run at a time: the folder is locked (:data:`WORK_LOCK`, see
:mod:`microlearn.data.locks`) for the whole run, so a second run on the same output
folder stops with one line naming the first, and a lock left by a killed run is
recognised as stale. Everything read back from the folder is checked before it is used:
the manifest (the very same job, and unchanged by another run before the maps are
assembled) and every slab (a readable ``.npz`` whose keys are valid map names and whose
arrays have one row per brain voxel of the slab). A damaged work file ends the run with
one line naming it and the fix.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..data.writers import named

#: Manifest file of a work folder.
MANIFEST = "manifest.json"
#: Lock file of a work folder while a run uses it.
WORK_LOCK = "run.lock"
#: Manifest keys that describe the folder, not the job (not compared on --resume).
_FOLDER_KEYS = ("made_folder",)


def manifest(dataset, block_fn, slabs) -> dict:
    """What identifies a job: microlearn version, input file, mask, settings, slabs."""
    from .. import __version__

    img = Path(dataset.image.get_filename())
    st = img.stat()
    return {"microlearn": __version__, "input": str(img.resolve()), "size": st.st_size,
            "mtime": int(st.st_mtime), "shape": list(dataset.image.shape),
            "acquisition": dataset.acq.fingerprint(),
            "mask": hashlib.sha1(np.packbits(dataset.mask).tobytes()).hexdigest()[:16],
            "job": block_fn.key(), "slabs": [list(s) for s in slabs]}


def _job(man: dict) -> dict:
    return {k: v for k, v in man.items() if k not in _FOLDER_KEYS}


def _read_manifest(man_file: Path) -> dict:
    try:
        old = json.loads(man_file.read_text())
    except (ValueError, RecursionError):
        raise ValueError(f"{man_file}: damaged work file (not JSON); run without --resume "
                         "to start over.") from None
    if not isinstance(old, dict):
        raise ValueError(f"{man_file}: damaged work file (not a manifest); run without "
                         "--resume to start over.")
    return old


def _ours(p: Path) -> bool:
    name = p.name
    return (name in (MANIFEST, MANIFEST[:-5] + ".tmp", WORK_LOCK) or
            (name.startswith("slab_") and name.endswith(".npz")) or
            (name.startswith(".slab_") and name.endswith(".tmp.npz")) or
            name.startswith((".lock-", f"{WORK_LOCK}.stale-")))


def check_work_dir(work_dir: Path) -> None:
    """Refuse a work folder that holds files microlearn did not write (never emptied)."""
    if work_dir.is_symlink() and not work_dir.exists():
        raise ValueError(f"work folder {work_dir} is a broken link; remove it or give another "
                         "--work-dir.")
    if not work_dir.exists():
        return
    if not work_dir.is_dir():
        raise ValueError(f"work folder {work_dir} exists and is not a folder; give an empty "
                         "or new --work-dir.")
    man_file = work_dir / MANIFEST
    if not man_file.is_file():
        if any(not _ours(p) for p in work_dir.iterdir()):
            raise ValueError(f"work folder {work_dir} exists and is not a microlearn work "
                             "folder (no manifest.json); give an empty or new --work-dir.")
        return
    try:  # a manifest.json of another program is not ours: its folder is never emptied
        man = json.loads(man_file.read_text())
    except (ValueError, RecursionError, OSError):
        man = None
    damaged_but_ours = man is None and all(_ours(p) for p in work_dir.iterdir())
    if not (isinstance(man, dict) and "microlearn" in man) and not damaged_but_ours:
        raise ValueError(f"work folder {work_dir} holds a manifest.json that microlearn did "
                         "not write; give an empty or new --work-dir.")


def prepare_work_dir(work_dir: Path, man: dict, resume: bool, *, made: bool,
                     mask=None) -> tuple[set[int], bool]:
    """Done slab indices, and whether microlearn made the folder (removed after success).

    A fresh folder unless resuming the very same job; only the work files microlearn wrote
    are removed. On ``--resume`` every kept slab is checked (:func:`check_slab`).
    """
    man_file = work_dir / MANIFEST
    if resume and man_file.is_file():
        old = _read_manifest(man_file)
        if old.get("microlearn") != man["microlearn"]:
            raise ValueError(f"--resume: the work folder {work_dir} was written by microlearn "
                             f"{old.get('microlearn', '(older, unrecorded)')}, this is "
                             f"{man['microlearn']}; slabs of two versions would be mixed: "
                             "run without --resume to start over.")
        if _job(old) != _job(json.loads(json.dumps(man))):
            raise ValueError(f"--resume: the work folder {work_dir} belongs to another job "
                             "(input, mask or settings differ); run without --resume to "
                             "start over.")
        for p in work_dir.glob(".slab_*.tmp.npz"):  # half-written by the killed run
            p.unlink(missing_ok=True)
        done = set()
        for p in sorted(work_dir.glob("slab_*.npz")):
            index = _slab_index(p, len(man["slabs"]))
            if mask is not None:
                z0, z1 = man["slabs"][index]
                check_slab(p, int(mask[..., z0:z1].sum()))
            done.add(index)
        return done, bool(old.get("made_folder", True))
    if man_file.is_file():
        try:
            made = bool(_read_manifest(man_file).get("made_folder", made))
        except ValueError:
            pass
    remove_work_files(work_dir, keep_folder=True)
    write_manifest(work_dir, {**man, "made_folder": made})
    return set(), made


def write_manifest(work_dir: Path, man: dict) -> None:
    man_file = work_dir / MANIFEST
    tmp = man_file.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(man, indent=1))
        os.replace(tmp, man_file)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        named(err, man_file)
        raise


def recheck_manifest(work_dir: Path, man: dict) -> None:
    """Before assembling: the manifest on disk is still this job's (no other run replaced
    the folder's contents meanwhile)."""
    man_file = work_dir / MANIFEST
    if not man_file.is_file():
        raise ValueError(f"{man_file} disappeared during the run (another run or a clean-up "
                         "removed the work folder); run again.")
    if _job(_read_manifest(man_file)) != _job(json.loads(json.dumps(man))):
        raise ValueError(f"{man_file} was replaced during the run by another job; its slabs "
                         "cannot be trusted: run again (one run per output folder).")


def _slab_index(p: Path, n_slabs: int) -> int:
    try:
        index = int(p.stem.split("_", 1)[1])
    except ValueError:
        index = -1
    if p.name != f"slab_{index:05d}.npz" or not 0 <= index < n_slabs:
        raise ValueError(f"{p}: not a slab of this job (the work folder has {n_slabs} slabs);"
                         " remove it, or run without --resume to start over.")
    return index


def _damaged(path: Path, why: str) -> ValueError:
    return ValueError(f"{path}: damaged work file ({why}); delete it and run again with "
                      "--resume (that slab is computed again), or run without --resume.")


def read_slab_maps(path: Path, n_voxels: int) -> dict[str, np.ndarray]:
    """The maps of one kept slab, checked: valid map names as keys, numeric arrays with
    ``n_voxels`` rows (and at most one more axis, of at most 3 values). Shapes and types
    are checked on the ``.npy`` headers before any array is read, so a crafted shape is
    never allocated."""
    from ..names import is_safe_name

    for name, shape, dtype in _guarded(path, _headers, path):
        if not is_safe_name(name):
            raise _damaged(path, f"key {name[:40]!r} is not a map name")
        if (dtype.kind not in "fiub" or len(shape) not in (1, 2) or shape[0] != n_voxels
                or (len(shape) == 2 and not 1 <= shape[1] <= 3)):
            raise _damaged(path, f"{name} has shape {shape} and type {dtype}, expected "
                           f"{n_voxels} rows of numbers")
    return _guarded(path, _arrays, path)


def _guarded(path: Path, fn, *args):
    """``fn(*args)``, a damaged file (truncated, not a zip, bad CRC) as one clear error."""
    try:
        return fn(*args)
    except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, KeyError) as err:
        raise _damaged(path, f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
                       ) from None
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise _damaged(path, f"{type(err).__name__}: {err}") from None


def _headers(path: Path) -> list:
    """``(name, shape, dtype)`` of every array of an ``.npz``, from the headers only."""
    from numpy.lib import format as npy

    out = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as fh:
                version = npy.read_magic(fh)
                read = (npy.read_array_header_1_0 if version == (1, 0)
                        else npy.read_array_header_2_0)
                shape, _, dtype = read(fh)
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            out.append((name, shape, dtype))
    return out


def _arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def check_slab(path: Path, n_voxels: int) -> None:
    """:func:`read_slab_maps` without keeping the arrays."""
    read_slab_maps(path, n_voxels)


def save_slab(work_dir: Path, index: int, maps: dict) -> None:
    """Keep a finished slab (atomic: a temporary name, then renamed)."""
    tmp = work_dir / f".slab_{index:05d}.tmp.npz"
    try:
        np.savez(tmp, **maps)
        os.replace(tmp, work_dir / f"slab_{index:05d}.npz")
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        named(err, tmp)
        raise


def remove_work_files(work_dir: Path, *, keep_folder: bool = False) -> None:
    """Remove the slabs and manifest microlearn wrote; the folder too when left empty
    (unless ``keep_folder``)."""
    for p in [*work_dir.glob("slab_*.npz"), *work_dir.glob(".slab_*.tmp.npz"),
              work_dir / MANIFEST, work_dir / (MANIFEST[:-5] + ".tmp")]:
        p.unlink(missing_ok=True)
    if keep_folder:
        return
    try:
        work_dir.rmdir()
    except OSError:
        pass  # other files are there (or the lock): they stay


def assemble(work_dir, slabs, mask) -> dict:
    """Volume maps from the kept slabs (NaN outside the mask), each slab checked."""
    maps: dict = {}
    for i, (z0, z1) in enumerate(slabs):
        sub = mask[..., z0:z1]
        if not sub.any():
            continue
        path = Path(work_dir) / f"slab_{i:05d}.npz"
        if not path.is_file():
            raise ValueError(f"{path} is missing (removed during the run?); run again with "
                             "--resume to compute it.")
        for name, v in read_slab_maps(path, int(sub.sum())).items():
            if name not in maps:
                maps[name] = np.full(mask.shape + v.shape[1:], np.nan, dtype=np.float32)
            elif maps[name].shape[3:] != v.shape[1:]:
                raise _damaged(path, f"{name} has {v.shape[1:]} values per voxel, other "
                               f"slabs {maps[name].shape[3:]}")
            target = maps[name][:, :, z0:z1]
            target[sub] = v
    return maps
