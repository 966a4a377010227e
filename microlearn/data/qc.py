"""Input quality checks a lab would want before trusting maps: gradient orientation, header
affines and b-value jitter.

Each check returns warnings (one line each, with the fix); none changes the data.

* :func:`gradient_orientation`: the fibre-coherence test of Schilling et al. 2019
  ("Quality control of diffusion-weighted images: a test of gradient table orientation",
  Magn Reson Imaging 2019): in white matter the principal diffusion direction of a voxel
  points at a neighbour whose own principal direction is parallel to it. A flipped or
  permuted gradient table breaks that coherence; the transformation of the table that
  makes it largest is the right one. Permuting or flipping the gradient table transforms
  every tensor as ``T D Tᵀ``, so the principal eigenvectors are computed once and each of
  the 24 candidate tables is scored by transforming them.
* :func:`affine_agreement`: qform and sform that disagree place the image (and the
  gradient frame) differently in different programs.
* :func:`shell_jitter`: b-values of one nominal shell spread wider than the shell
  tolerance split it into several shells (each fitted with too few directions).
"""

from __future__ import annotations

import itertools

import numpy as np

#: Candidate tables: every axis permutation with every flip of one axis (or none).
FLIPS = ("", "x", "y", "z")
#: A candidate must beat the given table's coherence by this factor to be reported.
COHERENCE_MARGIN = 1.15
#: Fewer white-matter voxels (FA >= min_fa) than this cannot tell tables apart reliably
#: (DIPY's 6x10x10 and 10x10x10 real samples rank tables by noise).
MIN_WM_VOXELS = 1000
#: A neighbour continues a fibre when their directions are within 25 degrees.
CONTINUES = float(np.cos(np.deg2rad(25.0)))


def tensor_eigen(acq, signal, *, b_max=1.6e9):
    """Principal eigenvector and FA of the OLS diffusion tensor of every voxel.

    Parameters
    ----------
    acq : Acquisition
    signal : ndarray, shape (V, N)
        Raw signals.
    b_max : float
        Largest b (s/m²) used: the tensor model holds at low b.

    Returns
    -------
    e1 : ndarray, shape (V, 3)
        Unit principal directions in the gradient frame.
    fa : ndarray, shape (V,)
        Fractional anisotropy (0 where the fit failed).
    """
    from ..fitting.engines.search import tensor_design

    keep = acq.bvals <= b_max
    if np.count_nonzero(keep & ~acq.b0_mask) < 6:
        keep = np.ones(acq.n_measurements, bool)
    X = tensor_design(acq.bvals[keep] / 1e6, acq.bvecs[keep])  # DIPY's design, s/mm²
    sig = np.asarray(signal, float)[:, keep]
    valid = np.all(np.isfinite(sig), axis=1)  # NaN/inf voxels take no part (FA 0)
    logs = np.log(np.clip(np.where(valid[:, None], sig, 1.0), 1e-6, None))
    beta = logs @ np.linalg.pinv(X).T  # (V, 7): one small pseudo-inverse for all voxels
    dxx, dxy, dyy, dxz, dyz, dzz = beta[:, :6].T
    D = np.stack([np.stack([dxx, dxy, dxz], -1), np.stack([dxy, dyy, dyz], -1),
                  np.stack([dxz, dyz, dzz], -1)], -2)
    D = np.where(np.isfinite(D), D, 0.0)
    evals, evecs = np.linalg.eigh(D)
    e1 = evecs[..., :, 2]
    mean = evals.mean(-1, keepdims=True)
    norm = np.sqrt((evals**2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.sqrt(1.5 * ((evals - mean) ** 2).sum(-1)) / norm
    return e1, np.where(valid, np.nan_to_num(np.clip(fa, 0, 1)), 0.0)


def candidate_tables():
    """The 24 candidate transforms: ``(label, T (3, 3))`` with the identity first."""
    out = []
    for perm in itertools.permutations(range(3)):
        for flip in FLIPS:
            T = np.eye(3)[list(perm)]
            if flip:
                T[:, "xyz".index(flip)] *= -1
            label = "".join("xyz"[p] for p in perm)
            out.append((label + (f", flip {flip}" if flip else ""), T))
    return out


def _neighbour_offsets(zooms):
    offsets = np.array([o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)])
    mm = offsets * np.asarray(zooms, float)[None]
    return offsets, mm / np.linalg.norm(mm, axis=1, keepdims=True)


def coherence(e1_volume, weight, zooms, T=None, steps: int = 8) -> float:
    """Fibre coherence of a field of principal directions (after Schilling et al. 2019).

    From every fibre voxel a path steps to the neighbour along the local direction, both
    ways, for up to ``steps`` steps while each next voxel continues the fibre (directions
    within 25°): the mean path length, as MRtrix's ``dwigradcheck`` uses the mean
    streamline length. A wrong gradient table turns directions across the tracts, so paths
    leave them early.

    Parameters
    ----------
    e1_volume : ndarray, shape (X, Y, Z, 3)
        Principal directions in voxel axes (NaN where unknown).
    weight : ndarray, shape (X, Y, Z)
        Voxel weights (FA in white matter, 0 elsewhere).
    zooms : sequence of float
        Voxel sizes in mm (neighbour directions are taken in mm).
    T : ndarray, shape (3, 3), optional
        Transform applied to every direction first.
    steps : int
        Longest path counted each way.

    Returns
    -------
    float
        Weighted mean path length as a fraction of ``2 * steps``.
    """
    v = e1_volume if T is None else e1_volume @ T.T
    v = np.where((weight > 0)[..., None] & np.isfinite(v), v, 0.0)  # outside: no fibre
    offsets, unit = _neighbour_offsets(zooms)
    zooms = np.asarray(zooms, float)
    src = np.argwhere(weight > 0)
    if src.size == 0:
        return float("nan")
    shape = np.array(weight.shape)
    length = np.zeros(len(src))
    for way in (1.0, -1.0):
        pos, d = src.copy(), way * v[tuple(src.T)]
        alive = np.ones(len(src), bool)
        for _ in range(steps):
            k = np.argmax(np.abs(d @ unit.T), axis=1)
            sign = np.where(np.einsum("vk,vk->v", d, unit[k]) < 0, -1, 1)[:, None]
            nxt = pos + sign * offsets[k]
            alive &= np.all((nxt >= 0) & (nxt < shape), axis=1)
            nxt = np.where(alive[:, None], nxt, pos)
            nd = v[tuple(nxt.T)]
            align = np.einsum("vk,vk->v", d, nd)
            alive &= np.abs(align) > CONTINUES
            length += alive
            pos, d = nxt, np.where((align < 0)[:, None], -nd, nd)
    w = weight[tuple(src.T)]
    return float(np.sum(w * length) / np.sum(w) / (2 * steps))


def gradient_orientation(acq, data, mask, affine, *, min_fa=0.3, max_voxels=300_000):
    """Score the 24 flips/permutations of the gradient table by fibre coherence.

    Parameters
    ----------
    acq : Acquisition
    data : ndarray, shape (X, Y, Z, N)
        Raw signals.
    mask : ndarray of bool, shape (X, Y, Z)
    affine : ndarray, shape (4, 4)
        Voxel-to-world affine (its voxel sizes, and FSL's x flip for a positive
        determinant: FSL bvecs are in radiological voxel axes).
    min_fa : float
        Voxels with a lower FA do not take part (grey matter, CSF).
    max_voxels : int
        At most this many brain voxels are fitted (the central slabs of a large volume).

    Returns
    -------
    dict
        ``scores`` (label -> coherence), ``best`` (label), ``given`` (the table as given),
        ``warning`` (one line, empty when the given table is the most coherent or the data
        hold too little white matter to tell).
    """
    mask = np.asarray(mask, bool)
    if mask.sum() > max_voxels:  # the central slabs are enough
        per_z = mask.reshape(-1, mask.shape[2]).sum(0)
        order = np.argsort(-per_z)
        keep = np.zeros(mask.shape[2], bool)
        keep[order[np.cumsum(per_z[order]) <= max_voxels]] = True
        mask = mask & keep[None, None, :]
    e1 = np.full(mask.shape + (3,), np.nan)
    fa = np.zeros(mask.shape)
    e, f = tensor_eigen(acq, np.asarray(data)[mask])
    to_voxel = np.eye(3)
    if np.linalg.det(affine[:3, :3]) > 0:  # FSL: bvecs in radiological voxel order
        to_voxel[0, 0] = -1
    e1[mask] = e @ to_voxel.T
    fa[mask] = np.where(f >= min_fa, f, 0.0)
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    scores = {label: coherence(e1, fa, zooms, T) for label, T in candidate_tables()}
    given = next(iter(scores))
    best = max(scores, key=lambda k: -np.inf if np.isnan(scores[k]) else scores[k])
    warning = ""
    n_wm = int((fa > 0).sum())
    if (n_wm >= MIN_WM_VOXELS and best != given and np.isfinite(scores[given])
            and scores[best] > COHERENCE_MARGIN * scores[given]):
        tied = [k for k in scores if scores[k] >= 0.99 * scores[best] and k != given]
        looks = " or ".join(_describe(k) for k in tied[:2])  # flips of axial fields can tie
        if len(tied) > 2:
            looks += f" ({len(tied) - 2} more variants score the same)"
        warning = (f"gradient table: the bvecs look {looks} (fibre coherence "
                   f"{scores[best]:.2f} vs {scores[given]:.2f} as given, Schilling et al. "
                   "2019); check the bvecs file, e.g. with MRtrix dwigradcheck, before "
                   "trusting orientations")
    return {"scores": scores, "best": best, "given": given, "warning": warning,
            "white_matter_voxels": n_wm}


def _describe(label: str) -> str:
    perm, _, flip = label.partition(", flip ")
    parts = []
    if perm != "xyz":
        parts.append(f"permuted (axes read as {perm})")
    if flip:
        parts.append(f"flipped in {flip}")
    return " and ".join(parts)


def affine_agreement(image, *, tol_mm: float = 1e-3) -> str:
    """A warning when the qform and sform of a NIfTI image disagree (empty otherwise)."""
    header = image.header
    try:
        qform, qcode = header.get_qform(coded=True)
        sform, scode = header.get_sform(coded=True)
    except Exception:  # not a NIfTI header
        return ""
    if not qcode or not scode or qform is None or sform is None:
        return ""
    corners = np.array([[0, 0, 0, 1], [*image.shape[:3], 1]], float).T
    diff = float(np.abs(qform @ corners - sform @ corners).max())
    if diff <= tol_mm:
        return ""
    return (f"{image.get_filename()}: qform and sform disagree by up to {diff:.2g} mm; "
            "programs that read different ones place the image (and its gradient frame) "
            "differently: fix the header (e.g. fslorient -copysform2qform)")


def shell_jitter(acq, *, relative: float = 0.12) -> str:
    """A warning when neighbouring shells are so close that jitter likely split one shell.

    Parameters
    ----------
    acq : Acquisition
    relative : float
        Shells whose mean b-values differ by less than this fraction of b are reported.
    """
    b = np.asarray(acq.shells, float) / 1e6  # s/mm², non-b0 shells, sorted
    if b.size < 2:
        return ""
    close = np.flatnonzero(np.diff(b) < relative * b[1:])
    if close.size == 0:
        return ""
    pairs = ", ".join(f"{b[i]:.0f} and {b[i + 1]:.0f}" for i in close[:3])
    return (f"b-values: shells at {pairs} s/mm² look like one shell split by jitter (wider "
            "than the shell tolerance of max(5 s/mm², 5 %)); each part is fitted with fewer "
            "directions: round the bvals to the nominal shells")


def input_warnings(dataset, *, data=None) -> list[str]:
    """Every check on a loaded dataset, as warning lines (empty when all is well).

    Parameters
    ----------
    dataset : Dataset
        From :func:`microlearn.data.dataset.load_dataset`.
    data : ndarray, shape (X, Y, Z, N), optional
        The signals when already in memory (otherwise the central slabs are read).
    """
    out = [w for w in (affine_agreement(dataset.image), shell_jitter(dataset.acq)) if w]
    mask = np.asarray(dataset.mask, bool)
    if int((~dataset.acq.b0_mask).sum()) >= 6 and mask.sum() >= 50:
        if data is None:
            data = _central_slabs(dataset, mask)
            mask = data[1]
            data = data[0]
        out.append(gradient_orientation(dataset.acq, data, mask, dataset.affine)["warning"])
    return [w for w in out if w]


def _central_slabs(dataset, mask, max_voxels: int = 20_000):
    """Signals and mask of the fullest z-slabs (about ``max_voxels`` brain voxels)."""
    from ..run.chunked import SMALL_VOLUME, read_slab

    per_z = mask.reshape(-1, mask.shape[2]).sum(0)
    centre = int(np.argmax(per_z))
    z0 = z1 = centre
    total = per_z[centre]
    while total < max_voxels and (z0 > 0 or z1 < mask.shape[2] - 1):
        if z0 > 0:
            z0 -= 1
            total += per_z[z0]
        if z1 < mask.shape[2] - 1:
            z1 += 1
            total += per_z[z1]
    path = dataset.image.get_filename()
    if np.prod(dataset.image.shape, dtype=float) <= SMALL_VOLUME:  # read once for QC, σ, fit
        data = read_slab(path, 0, mask.shape[2], keep=True)[:, :, z0:z1 + 1]
    else:
        data = read_slab(path, z0, z1 + 1)
    return data, mask[..., z0:z1 + 1]
