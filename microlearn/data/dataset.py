"""Datasets on disk: the Dataset record, NIfTI + gradient loading (every input form),
signal validation, and map folders read back."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ..acquisition import Acquisition

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
    cache : dict
        Blocks already read (e.g. the central slices that σ and the input checks share).
    """

    image: object
    acq: Acquisition
    mask: np.ndarray
    affine: np.ndarray
    path: Path
    source: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

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


#: Two grids agree when their voxel corners are this fraction of a voxel apart at most
#: (headers written by different tools differ by rounding, far below it).
GRID_TOLERANCE = 0.1


def check_same_grid(affine, reference, shape, path, what: str) -> None:
    """``ValueError`` when an image's ``affine`` places its grid elsewhere than the DWI's
    ``reference`` affine (voxel size, orientation or position), beyond
    :data:`GRID_TOLERANCE` of a voxel at any corner of the ``shape`` grid."""
    a, r = np.asarray(affine, float), np.asarray(reference, float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise ValueError(f"{path}: the {what}'s affine is not a finite 4x4 matrix; fix its "
                         "header.")
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0]) for j in (0, shape[1])
                         for k in (0, shape[2])]).T
    gap = float(np.abs(a @ corners - r @ corners)[:3].max())
    voxel = float(np.sqrt((r[:3, :3] ** 2).sum(0)).min())
    if gap > GRID_TOLERANCE * voxel:
        raise ValueError(f"{path}: the {what}'s affine differs from the DWI's (voxels "
                         f"{_sizes(a)} mm vs {_sizes(r)} mm, up to {gap:.3g} mm apart); it was "
                         "made for another image: resample it to the DWI's grid (e.g. "
                         "mrgrid or flirt -applyxfm) or make it from this image.")


def _sizes(affine) -> str:
    return "x".join(f"{v:.3g}" for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0)))


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
    from .readers import read_fsl

    return read_fsl(bvals_path, bvecs_path)


def read_acquisition_json(path) -> dict:
    """Timings from acquisition.json or a BIDS sidecar: delta, Delta, TE in s, G in T/m.

    BIDS keys (``EchoTime``, ...) are accepted; other keys are ignored (logged).
    """
    from .readers import read_sidecar

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
    from .readers import InputFiles, read_acquisition

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
                 grad=None, within=None, b0_threshold=None) -> Dataset:
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
    within : str or Path, optional
        BIDS sidecars are inherited from no folder above this one (a dashboard's data root).
    b0_threshold : float, optional
        b-values (s/m²) at or below this are b0: they normalise the signal and give σ
        (default 50 s/mm², 5 s/mm² for IVIM protocols).
    """
    from .readers import InputFiles, find_inputs, read_acquisition

    if path is not None:
        if not Path(path).exists():
            raise FileNotFoundError(f"input folder not found: {path}")
        files = find_inputs(path, within=within)
    else:
        files = None
        if dwi is not None and Path(dwi).is_file() and scheme is None and grad is None:
            from .readers import beside

            files = beside(dwi)  # a BIDS run's or dcm2niix's sidecars, as for INPUT
        files = files or InputFiles(form="fsl")
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
                           name=Path(path).name if path is not None else None,
                           b0_threshold=b0_threshold)
    mask_p = files.mask
    if mask_p is not None and (mask is not None or mask_p.exists()):
        mask_img = load_nifti(_exists(mask_p, "mask"))
        shape = tuple(mask_img.shape)
        if shape[:3] != tuple(image.shape[:3]) or (len(shape) == 4 and shape[3] != 1):
            raise ValueError(  # checked on the header: a crafted shape is never allocated
                f"{mask_p}: mask shape {shape} does not match the DWI's spatial shape "
                f"{tuple(image.shape[:3])}; use the mask made for this image."
            )
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
        check_same_grid(mask_img.affine, image.affine, image.shape[:3], mask_p, "mask")
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


def load_maps(folder, names=None) -> dict[str, np.ndarray]:
    """The ``<name>.nii.gz`` (or ``.nii``) maps of a folder as arrays (all, or only
    ``names``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"maps folder not found: {folder}")
    def stem(p):
        return p.name[: -len(".nii.gz")] if p.name.endswith(".gz") else p.name[:-4]

    files = sorted([*folder.glob("*.nii.gz"), *folder.glob("*.nii")])
    return {stem(p): np.asarray(nib.load(p).dataobj) for p in files
            if not p.name.startswith(".tmp-") and (names is None or stem(p) in names)}


