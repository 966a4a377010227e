"""A brain-shaped phantom layout: tissue classes from real anatomy, fibres along known tracts.

The anatomy is DIPY's ``S0_10slices.nii.gz``, a real b0 volume (128×128 voxels of 2 mm,
10 axial slices through the ventricles) that ships inside DIPY's wheel, so nothing is
downloaded. It is segmented once (cached) into background, CSF, grey and white matter:

* brain mask: :func:`dipy.segment.mask.median_otsu`, holes filled slice by slice;
* CSF: the brightest voxels of the lightly smoothed b0 (T2-weighted: free water is bright);
* white matter: tissue darker than the tissue median and at least ``6 mm`` from the brain
  surface, cleaned by a morphological opening and closing; grey matter: the rest.

:func:`brain_layout` resamples those classes onto any grid up to HCP's 145×174×145
(field of view 181.25×217.5×181.25 mm, the HCP one, so the HCP shape has 1.25 mm voxels).
The 10 slices cover the middle 45 mm of the brain; above and below them the nearest slice
gives the outline, shrunk towards an ellipsoidal dome (65 mm half-height), and the tissue
there is a grey-matter ribbon (:data:`CORTEX_MM`, at least one voxel) over a white-matter
core: that part of the anatomy is extrapolated, not measured.

White-matter fibres follow three named tract systems (RAS axes: x left→right, y
posterior→anterior, z inferior→superior; ``u, v, w`` are x, y, z divided by the brain's
half-extents :data:`BRAIN_HALF_MM`):

=============  ======================================  =====================================
tract          where (normalised brain coordinates)    direction
=============  ======================================  =====================================
callosal       ``w > -0.2``, ``|u| < 0.25`` at the        left-right, arching upwards laterally
               bottom, widening to 0.55 above
corticospinal  a tube ``|u| ≈ 0.22 ± 0.12`` below,     inferior-superior, fanning laterally
               ``0.37 ± 0.18`` at the top;
               ``-0.5 < v < 0.15``
association    ``|u| > 0.3``, ``w > -0.3``             anterior-posterior (SLF-like)
=============  ======================================  =====================================

White matter covered by one tract is single-fibre (label ``wm``); by two, a 2-fibre
crossing (``cross2``, e.g. callosal × corticospinal in the centrum semiovale); by three,
a 3-fibre crossing (``cross3``). White matter outside every tract carries association
fibres (anterior–posterior). Grey matter is dispersed around the radial direction
(perpendicular to the brain surface); CSF is free water.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

log = logging.getLogger(__name__)

#: Labels shared with :mod:`microlearn.data.phantom` (same codes as the ring phantom).
LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3, "cross2": 4, "cross3": 5}
#: Bit of each tract system in the ``tracts`` map.
TRACTS = {"callosal": 1, "corticospinal": 2, "association": 4}
#: HCP WU-Minn diffusion grid and its field of view in mm.
HCP_SHAPE = (145, 174, 145)
HCP_FOV_MM = (181.25, 217.5, 181.25)
ANATOMY_FILE = "S0_10slices.nii.gz"
#: In-plane voxel size (mm) and assumed slice spacing (mm) of the anatomy.
ANATOMY_VOXEL_MM = 2.0
ANATOMY_SLICE_MM = 5.0
#: Grey-matter ribbon (mm) over the white matter above and below the measured slices.
CORTEX_MM = 11.0
#: Brain half-extents in mm (left-right, posterior-anterior, inferior-superior).
BRAIN_HALF_MM = (70.0, 88.0, 65.0)


@dataclass(frozen=True)
class BrainLayout:
    """Tissue labels and fibre directions of a brain phantom grid.

    Attributes
    ----------
    labels : ndarray of uint8, shape (X, Y, Z)
        Codes of :data:`LABELS` (0 background, 1 CSF, 2 GM, 3 WM, 4/5 crossings).
    directions : ndarray of float32, shape (X, Y, Z, 3, 3)
        Unit fibre directions; fibre ``k`` of a voxel is ``directions[..., k, :]``. Only
        the first ``n_fibres`` rows of a voxel are meaningful (the others are 0).
    tracts : ndarray of uint8, shape (X, Y, Z)
        Bitmask of the tract systems (:data:`TRACTS`) through each white-matter voxel.
    affine : ndarray, shape (4, 4)
        Voxel-to-mm affine (RAS, origin at the brain centre).
    """

    labels: np.ndarray
    directions: np.ndarray
    tracts: np.ndarray
    affine: np.ndarray

    @property
    def n_fibres(self) -> np.ndarray:
        """Number of fibres per voxel, shape (X, Y, Z) (0 in CSF and background)."""
        table = np.array([0, 0, 1, 1, 2, 3], np.uint8)
        return table[self.labels]


def _anatomy_path() -> Path:
    import dipy.data

    path = Path(dipy.data.__file__).parent / "files" / ANATOMY_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the brain phantom needs DIPY's bundled {ANATOMY_FILE} "
            "(reinstall dipy>=1.9), or use the ring phantom (kind='rings').")
    return path


def segment_b0(b0, *, csf_percentile: float = 85.0, wm_percentile: float = 50.0,
               min_wm_depth_mm: float = 6.0, voxel_mm: float = ANATOMY_VOXEL_MM) -> np.ndarray:
    """Segment a b0 volume into background, CSF, grey and white matter.

    Parameters
    ----------
    b0 : ndarray, shape (X, Y, Z)
        A T2-weighted (b = 0) volume, axial slices along the last axis.
    csf_percentile : float
        Brain voxels brighter than this percentile of the smoothed b0 are CSF.
    wm_percentile : float
        Non-CSF voxels darker than this percentile (and deep enough) are white matter.
    min_wm_depth_mm : float
        White matter is at least this far (mm) from the brain surface.
    voxel_mm : float
        In-plane voxel size of ``b0`` in mm.

    Returns
    -------
    ndarray of uint8, shape (X, Y, Z)
        0 background, 1 CSF, 2 grey matter, 3 white matter.
    """
    from dipy.segment.mask import median_otsu

    b0 = np.asarray(b0, dtype=np.float64)
    if b0.ndim != 3 or not np.isfinite(b0).all():
        raise ValueError(f"b0 must be a finite 3-D volume, got shape {b0.shape}.")
    if np.ptp(b0) == 0:
        raise ValueError("b0 is constant (no contrast to segment); is this a b = 0 volume?")
    _, mask = median_otsu(b0, median_radius=2, numpass=1)
    mask = np.stack([ndi.binary_fill_holes(mask[..., k]) for k in range(mask.shape[2])], -1)
    if not mask.any():
        raise ValueError("b0: the brain mask is empty; is this a b = 0 volume?")
    smooth = ndi.gaussian_filter(b0, (1.0, 1.0, 0.0))
    csf = mask & (smooth > np.percentile(smooth[mask], csf_percentile))
    tissue = mask & ~csf
    depth = np.stack([ndi.distance_transform_edt(mask[..., k]) for k in range(mask.shape[2])],
                     -1) * voxel_mm
    wm = tissue & (smooth < np.percentile(smooth[tissue], wm_percentile))
    wm &= depth > min_wm_depth_mm
    plane = np.ones((2, 2, 1), bool)
    wm = ndi.binary_closing(ndi.binary_opening(wm, structure=plane),
                            structure=np.ones((3, 3, 1), bool)) & tissue
    labels = np.zeros(b0.shape, np.uint8)
    labels[tissue] = 2
    labels[wm] = 3
    labels[csf] = 1
    return labels


@functools.lru_cache(maxsize=1)
def anatomy_classes() -> tuple[np.ndarray, np.ndarray]:
    """Tissue classes of DIPY's bundled b0 and the brain's centre in its voxels.

    Returns
    -------
    classes : ndarray of uint8, shape (128, 128, 10)
        0 background, 1 CSF, 2 grey matter, 3 white matter (read-only, cached).
    centre : ndarray, shape (2,)
        In-plane centroid of the brain mask in anatomy voxels.
    """
    import nibabel as nib

    b0 = np.asarray(nib.load(_anatomy_path()).dataobj, dtype=np.float64)
    b0 = b0.reshape(b0.shape[:3])
    classes = segment_b0(b0)
    centre = np.array(ndi.center_of_mass(classes > 0))[:2]
    classes.setflags(write=False)
    centre.setflags(write=False)
    log.debug("brain anatomy: %s", {k: int((classes == k).sum()) for k in range(4)})
    return classes, centre


def _grid_mm(shape):
    """Voxel-centre coordinates in mm (voxel axes, origin at the brain centre) and the
    radiological affine."""
    vox = np.array(HCP_FOV_MM) / np.array(shape)
    axes = [((np.arange(n) - (n - 1) / 2) * v).astype(np.float32) for n, v in zip(shape, vox)]
    # radiological like HCP (voxel x runs right to left: a negative determinant), so FSL's
    # convention reads the bvecs in voxel axes, the frame the fibres are drawn in
    affine = np.diag([-vox[0], vox[1], vox[2], 1.0])
    affine[:3, 3] = [(shape[0] - 1) / 2 * vox[0],
                     *(-(n - 1) / 2 * v for n, v in zip(shape[1:], vox[1:]))]
    return np.meshgrid(*axes, indexing="ij"), vox, affine


def _resample_classes(shape, x, y, z, vox):
    """Tissue classes on the grid: smoothed class indicators, interpolated, argmax."""
    classes, centre = anatomy_classes()
    half = ANATOMY_SLICE_MM * (classes.shape[2] - 1) / 2
    top = BRAIN_HALF_MM[2]
    excess = np.clip((np.abs(z) - half) / (top - half), 0.0, None)
    shrink = np.sqrt(np.clip(1.0 - excess**2, 0.0, None))
    inside = shrink > 0
    safe = np.where(inside, shrink, 1.0)
    coords = np.stack([
        centre[0] + x / ANATOMY_VOXEL_MM / safe,
        centre[1] + y / ANATOMY_VOXEL_MM / safe,
        np.clip(z / ANATOMY_SLICE_MM + (classes.shape[2] - 1) / 2, 0, classes.shape[2] - 1),
    ])
    sigma = [max(0.0, 0.4 * (vox[0] / ANATOMY_VOXEL_MM - 1)),
             max(0.0, 0.4 * (vox[1] / ANATOMY_VOXEL_MM - 1)), 0.0]
    score = np.empty((4,) + tuple(shape), np.float32)
    for k in range(4):
        ind = ndi.gaussian_filter((classes == k).astype(np.float32), sigma)
        score[k] = ndi.map_coordinates(ind, coords, order=1, mode="constant", cval=float(k == 0))
    labels = np.argmax(score, axis=0).astype(np.uint8)
    labels[~inside] = 0
    # Above and below the measured slices only the outline is known: a cortical ribbon of
    # grey matter (at least one voxel thick) over a white-matter core, no ventricles.
    beyond = (np.abs(z) > half + ANATOMY_SLICE_MM / 2) & (labels > 0)
    if beyond.any():
        depth = ndi.distance_transform_edt(labels > 0, sampling=vox)
        ribbon = max(CORTEX_MM, 1.01 * float(max(vox[:2])))
        labels[beyond] = np.where(depth[beyond] <= ribbon, 2, 3)
    return labels


def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 0, v / np.where(n > 0, n, 1), 0.0)


def brain_layout(shape=HCP_SHAPE) -> BrainLayout:
    """Labels, fibre directions and tracts of a brain phantom of ``shape``.

    Parameters
    ----------
    shape : tuple of 3 int
        Grid (X, Y, Z), each between 1 and the HCP grid's 145×174×145. The field of view
        is HCP's (181.25×217.5×181.25 mm) whatever the shape, so smaller grids have
        coarser voxels.

    Returns
    -------
    BrainLayout
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < 1 for s in shape) or any(
            s > h for s, h in zip(shape, HCP_SHAPE)):
        raise ValueError(f"shape {shape}: the brain phantom needs three sizes between 1 and "
                         f"HCP's {HCP_SHAPE}.")
    (x, y, z), vox, affine = _grid_mm(shape)
    labels = _resample_classes(shape, x, y, z, vox)
    u, v, w = x / BRAIN_HALF_MM[0], y / BRAIN_HALF_MM[1], z / BRAIN_HALF_MM[2]
    au = np.abs(u)
    wm = labels == LABELS["wm"]
    up = np.clip(w, 0.0, 1.0)
    # the callosum is narrow where it crosses the midline and fans out superiorly
    callosal = wm & (w > -0.2) & (au < 0.25 + 0.3 * np.clip((w + 0.2) / 0.9, 0.0, 1.0))
    # the corticospinal tract is a tube (internal capsule) that fans laterally as it rises
    centre, half_width = 0.22 + 0.15 * up, 0.12 + 0.06 * up
    cst = wm & (np.abs(au - centre) < half_width) & (v > -0.5) & (v < 0.15)
    assoc = wm & (au > 0.3) & (w > -0.3)
    assoc |= wm & ~callosal & ~cst
    tracts = (callosal * TRACTS["callosal"] + cst * TRACTS["corticospinal"]
              + assoc * TRACTS["association"]).astype(np.uint8)
    n_tracts = callosal.astype(np.uint8) + cst + assoc
    labels[wm & (n_tracts == 2)] = LABELS["cross2"]
    labels[wm & (n_tracts == 3)] = LABELS["cross3"]
    # directions are evaluated on each tract's voxels only (bounded memory at HCP size)
    tilt = 0.15 * BRAIN_HALF_MM[0] / BRAIN_HALF_MM[2]
    rules = [
        (callosal, lambda uu, ww: np.stack([np.ones_like(uu), np.zeros_like(uu), 0.9 * uu], -1)),
        (cst, lambda uu, ww: np.stack([np.sign(uu) * tilt * (ww > 0), np.full_like(uu, -0.1),
                                       np.ones_like(uu)], -1)),
        (assoc, lambda uu, ww: np.stack([np.zeros_like(uu), np.ones_like(uu), 0.2 * ww], -1)),
    ]
    directions = np.zeros(shape + (3, 3), np.float32)
    slot = np.zeros(shape, np.uint8)
    for present, rule in rules:
        idx = np.nonzero(present)
        directions[idx + (slot[idx],)] = _unit(rule(u[idx], w[idx]))
        slot[idx] += 1
    gm = np.nonzero(labels == LABELS["gm"])
    brain = ndi.gaussian_filter((labels > 0).astype(np.float32), 1.0)
    radial = np.stack([g[gm] for g in np.gradient(brain, *vox)], -1)
    outward = np.stack([x[gm], y[gm], z[gm]], -1)  # where the mask gradient vanishes
    radial = np.where(np.linalg.norm(radial, axis=-1, keepdims=True) > 0, radial, outward)
    directions[gm + (0,)] = _unit(radial)
    log.info("brain phantom %s: %s", shape,
             {k: int((labels == c).sum()) for k, c in LABELS.items() if c})
    return BrainLayout(labels=labels, directions=directions, tracts=tracts, affine=affine)


__all__ = ["LABELS", "TRACTS", "BrainLayout", "anatomy_classes", "brain_layout", "segment_b0"]
