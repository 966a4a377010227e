"""NIfTI + bvals/bvecs + HCP folder layout; atomic map and JSON writing."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .acquisition import Acquisition

log = logging.getLogger(__name__)

#: Affine of written phantoms: 1.25 mm voxels, radiological like HCP's (a negative
#: determinant), so FSL's convention reads their bvecs in voxel axes without an x flip.
PHANTOM_AFFINE = np.diag([-1.25, 1.25, 1.25, 1.0])

HCP_FILES = {"dwi": "data.nii.gz", "bvals": "bvals", "bvecs": "bvecs",
             "mask": "nodif_brain_mask.nii.gz", "acquisition": "acquisition.json"}


@dataclass
class Dataset:
    """A diffusion dataset: lazy image, acquisition and brain mask.

    Attributes
    ----------
    image : nibabel image
        The 4-D DWI image (data read lazily through ``image.dataobj``).
    acq : Acquisition
    mask : ndarray of bool, shape (X, Y, Z)
    affine : ndarray, shape (4, 4)
    path : Path
        Folder or DWI file the data came from.
    source : dict
        ``form`` (hcp, fsl, bids, camino, mrtrix) and, for BIDS, ``bids`` (root, entities).
    """

    image: object
    acq: Acquisition
    mask: np.ndarray
    affine: np.ndarray
    path: Path
    source: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape (X, Y, Z)."""
        return tuple(self.image.shape[:3])

    def load_data(self, dtype=np.float32) -> np.ndarray:
        """The whole 4-D signal array, shape (X, Y, Z, N)."""
        with nifti_errors(self.image.get_filename()):
            return np.asarray(self.image.dataobj, dtype=dtype)


@contextmanager
def nifti_errors(path):
    """Turn a failure to read a NIfTI file into one clear ``ValueError`` naming it."""
    try:
        yield
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as err:
        detail = " ".join(str(err).split())  # one line, whatever the reader's message
        raise ValueError(f"{path}: cannot be read as NIfTI ({type(err).__name__}: {detail}); the "
                         "file is truncated or corrupt, copy or export it again.") from None


def load_nifti(path):
    """``nibabel.load`` with a clear error for missing, truncated or corrupt files."""
    path = _exists(Path(path), "NIfTI")
    with nifti_errors(path):
        img = nib.load(path)
        img.header.get_data_shape()
    return img


def _exists(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path


def read_bvals_bvecs(bvals_path, bvecs_path):
    """Read FSL-style bvals (as written) and bvecs (3 rows or N x 3) text files."""
    from .data.readers import read_fsl

    return read_fsl(bvals_path, bvecs_path)


def read_acquisition_json(path) -> dict:
    """Timings from acquisition.json or a BIDS sidecar: delta, Delta, TE in s, G in T/m.

    BIDS keys (``EchoTime``, ...) are accepted; other keys are ignored (logged).
    """
    from .data.readers import read_sidecar

    return read_sidecar(path)[0]


def load_acquisition(bvals_path=None, bvecs_path=None, *, acquisition=None, delta=None,
                     Delta=None, TE=None, n_volumes=None, bvals_unit=None, scheme=None,
                     grad=None, affine=None) -> Acquisition:
    """Acquisition from bvals/bvecs files (bvals in s/mm² unless ``bvals_unit``), a Camino
    ``scheme`` file or an MRtrix ``grad`` table, and timings.

    Timing priority: the scheme file, then ``acquisition`` (acquisition.json or a BIDS
    sidecar path) when it exists, then the explicit ``delta``/``Delta``/``TE`` (s), else
    the HCP timings (logged). See :mod:`microlearn.data.readers`.
    """
    from .data.readers import InputFiles, read_acquisition

    form = "camino" if scheme is not None else "mrtrix" if grad is not None else "fsl"
    sidecars = []
    for side in ([] if acquisition is None else
                 acquisition if isinstance(acquisition, (list, tuple)) else [acquisition]):
        if Path(side).exists():
            sidecars.append(Path(side))
    files = InputFiles(form=form, bvals=None if bvals_path is None else Path(bvals_path),
                       bvecs=None if bvecs_path is None else Path(bvecs_path),
                       scheme=None if scheme is None else Path(scheme),
                       grad=None if grad is None else Path(grad), sidecars=sidecars)
    return read_acquisition(files, bvals_unit=bvals_unit, affine=affine, n_volumes=n_volumes,
                            delta=delta, Delta=Delta, TE=TE)


def load_dataset(path=None, *, dwi=None, bvals=None, bvecs=None, mask=None, acquisition=None,
                 delta=None, Delta=None, TE=None, bvals_unit=None, scheme=None,
                 grad=None) -> Dataset:
    """Load a dataset folder of any supported form, or explicit files.

    Parameters
    ----------
    path : str or Path, optional
        A folder in HCP layout (data.nii.gz, bvals, bvecs, nodif_brain_mask.nii.gz,
        optionally acquisition.json), a folder with data.nii.gz and a Camino ``*.scheme``
        or MRtrix ``*.b`` file, or BIDS (a dataset/subject/dwi folder with one run, or a
        ``*_dwi.nii.gz``). Explicit file arguments override its files.
    dwi, bvals, bvecs, mask, acquisition, scheme, grad : str or Path, optional
        Explicit files (``acquisition``: acquisition.json or a BIDS JSON sidecar).
        Without a mask every voxel with a positive b0 is used.
    delta, Delta, TE : float, optional
        Timings in s when neither scheme nor sidecar gives them.
    bvals_unit : str, optional
        Unit of the b-values in the file: ``"s/mm2"`` (FSL, BIDS, MRtrix default),
        ``"s/m2"`` (Camino default) or ``"ms/um2"``.
    """
    from .data.readers import InputFiles, find_inputs, read_acquisition

    if path is not None:
        if not Path(path).exists():
            raise FileNotFoundError(f"input folder not found: {path}")
        files = find_inputs(path)
    else:
        files = InputFiles(form="fsl")
    if scheme is not None or grad is not None:
        files.bvals = files.bvecs = None
        files.scheme = None if scheme is None else Path(scheme)
        files.grad = None if grad is None else Path(grad)
        files.form = "camino" if scheme is not None else "mrtrix"
    for name, value in (("dwi", dwi), ("bvals", bvals), ("bvecs", bvecs), ("mask", mask)):
        if value is not None:
            setattr(files, name, Path(value))
    if acquisition is not None:
        files.sidecars = [Path(acquisition)]
    if files.dwi is None or (files.scheme is None and files.grad is None
                             and (files.bvals is None or files.bvecs is None)):
        raise ValueError("give an input folder (HCP, BIDS) or --dwi with --bvals/--bvecs, "
                         "--scheme-file or --grad.")
    dwi_p = files.dwi
    image = load_nifti(_exists(dwi_p, "DWI"))
    if len(image.shape) != 4:
        raise ValueError(f"{dwi_p}: expected a 4-D image, got shape {image.shape}.")
    acq = read_acquisition(files, bvals_unit=bvals_unit, affine=image.affine,
                           n_volumes=image.shape[3], delta=delta, Delta=Delta, TE=TE,
                           name=Path(path).name if path is not None else None)
    mask_p = files.mask
    if mask_p is not None and (mask is not None or mask_p.exists()):
        mask_img = load_nifti(_exists(mask_p, "mask"))
        with nifti_errors(mask_p):
            m = np.asarray(mask_img.dataobj)
        if m.ndim == 4 and m.shape[3] == 1:
            m = m[..., 0]
        if m.shape != tuple(image.shape[:3]):
            raise ValueError(
                f"{mask_p}: mask shape {m.shape} does not match the DWI's spatial shape "
                f"{tuple(image.shape[:3])}; use the mask made for this image."
            )
        m = m > 0
        if not m.any():
            raise ValueError(f"{mask_p}: the mask is empty; give a mask with brain voxels.")
    else:
        with nifti_errors(dwi_p):
            b0 = np.asarray(image.dataobj[..., int(np.flatnonzero(acq.b0_mask)[0])])
        m = np.isfinite(b0) & (b0 > 0)
        log.info("No mask given: using the %d voxels with a positive b0.", int(m.sum()))
    source = {"form": files.form}
    if files.bids:
        source["bids"] = {"root": str(files.bids["root"]), "entities": files.bids["entities"]}
    return Dataset(image=image, acq=acq, mask=m, affine=image.affine,
                   path=Path(path) if path is not None else dwi_p, source=source)


def check_data_and_mask(data, n_measurements: int, mask=None, *, expected: str, fix: str):
    """The signal array and a boolean mask of its spatial shape (all voxels by default).

    Raises ``ValueError`` when the last axis is not ``n_measurements`` long (saying what
    ``expected`` it and the ``fix``) or when the mask has another shape.
    """
    data = np.asarray(data)
    if data.shape[-1] != n_measurements:
        raise ValueError(f"data has {data.shape[-1]} measurements on its last axis but "
                         f"{expected} has {n_measurements}; {fix}.")
    spatial = data.shape[:-1]
    mask = np.ones(spatial, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != spatial:
        raise ValueError(f"mask shape {mask.shape} does not match the data's {spatial}.")
    return data, mask


def validate_signal(data, mask=None, acq=None):
    """Find voxels that cannot be fitted: a NaN/infinite sample, or (with ``acq``) a b0 mean
    that is not positive at some echo time.

    Negative and zero diffusion-weighted samples are data, not errors (denoised and
    eddy-corrected scans have them; the Rician model explains them).

    Returns
    -------
    bad : ndarray of bool, shape (*spatial)
        Voxels to skip (inside ``mask`` when given).
    message : str
        Empty when all voxels are fine, else a one-line summary.
    """
    data = np.asarray(data)
    bad = ~np.all(np.isfinite(data), axis=-1)
    if acq is not None:
        from .data.voxels import usable_voxels

        flat = data.reshape(-1, data.shape[-1])
        bad |= ~usable_voxels(flat, acq).reshape(data.shape[:-1])
    if mask is not None:
        bad &= np.asarray(mask, bool)
    n = int(bad.sum())
    what = "NaN/infinite samples" + (" or a b0 mean <= 0" if acq is not None else "")
    msg = "" if n == 0 else f"{n} voxel(s) have {what}; they get NaN maps."
    return bad, msg


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


def save_nifti_atomic(array, affine, path) -> Path:
    """Write a NIfTI image to a temporary name in the same folder, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        nib.save(nib.Nifti1Image(array, affine), tmp)
        _atomic_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def write_maps(out_dir, maps, affine, *, mask=None) -> list[Path]:
    """Write maps as ``<name>.nii.gz`` atomically (float32; ``n_fibres`` as uint8).

    Parameters
    ----------
    maps : dict of str to ndarray, shape (X, Y, Z) or (X, Y, Z, k)
    mask : ndarray of bool, optional
        Voxels outside are set to 0 (NaN stays NaN inside).
    """
    out = check_writable(out_dir)
    paths = []
    for name, value in maps.items():
        arr = np.asarray(value)
        if name == "n_fibres":
            arr = np.nan_to_num(arr).astype(np.uint8)
        else:
            arr = arr.astype(np.float32)
        if mask is not None:
            m = np.asarray(mask, bool)
            arr = arr.copy()
            arr[~m] = 0
        paths.append(save_nifti_atomic(arr, affine, out / f"{name}.nii.gz"))
    return paths


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


def load_maps(folder, names=None) -> dict[str, np.ndarray]:
    """The ``<name>.nii.gz`` maps of a folder as arrays (all, or only ``names``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"maps folder not found: {folder}")
    return {p.name[: -len(".nii.gz")]: np.asarray(nib.load(p).dataobj)
            for p in sorted(folder.glob("*.nii.gz")) if not p.name.startswith(".tmp-")
            and (names is None or p.name[: -len(".nii.gz")] in names)}


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
