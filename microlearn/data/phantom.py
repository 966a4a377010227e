"""Synthetic volumes with known maps and known 0–3 fibre counts.

The phantom is a brain-like ellipsoid with regions a user recognises:

=========  ========  =========================================================
label      n_fibres  tissue
=========  ========  =========================================================
csf        0         free water (ventricle in the middle)
gm         1         dispersed grey-matter-like tissue (outer rim)
wm         1         single-fibre white-matter bundle (left half)
cross2     2         two bundles crossing at 50–90° (right front)
cross3     3         three bundles crossing (right back)
=========  ========  =========================================================

Every voxel's parameters vary a little around its region's values, so fits and learned
estimators are tested on a spread of truths. IVIM phantoms use the same layout with
perfusion regions instead of fibres.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..acquisition import Acquisition
from ..models.registry import FIBRE_TISSUE, IVIM_TISSUE, default_scheme, family_of
from ..models.spec import resolve_model
from ..parameters import cartesian_to_angles
from ..simulate import add_noise, as_rng
from .dataset import PHANTOM_AFFINE

log = logging.getLogger(__name__)

LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3, "cross2": 4, "cross3": 5}
FIBRES_PER_LABEL = {1: 0, 2: 1, 3: 1, 4: 2, 5: 3}
S0 = 1000.0
D_CSF = 3.0e-9
#: Per-label T2 ranges in s (3 T): CSF, cortical GM, WM (also the crossing regions).
T2_TISSUE = {1: (0.8, 1.2), 2: (0.08, 0.10), 3: (0.065, 0.075), 4: (0.065, 0.075),
             5: (0.065, 0.075)}

#: Per-label parameter ranges (SI) of the fibre models and of IVIM: the registry's.
TISSUE, IVIM_TISSUE = FIBRE_TISSUE, IVIM_TISSUE


@dataclass
class Phantom:
    """A phantom in memory: signal, acquisition, mask, labels and true maps."""

    data: np.ndarray
    acq: Acquisition
    mask: np.ndarray
    labels: np.ndarray
    truth: dict
    affine: np.ndarray
    model: str | dict
    snr: float

    def save(self, out_dir, *, force: bool = False) -> Path:
        """Write the HCP layout plus ``truth/<map>.nii.gz`` and ``truth/labels``.

        All files appear together; files of the same name already in ``out_dir`` are
        replaced only with ``force``, other files there are kept.
        """
        from .writers import staged_output, write_hcp_folder, write_maps

        with staged_output(out_dir, force=force) as staging:
            write_hcp_folder(staging, self.data, self.acq, self.mask, self.affine)
            write_maps(staging / "truth",
                       {**self.truth, "labels": self.labels.astype(np.float32)}, self.affine)
            _write_model(staging / "truth", self.model)
        return Path(out_dir)


def label_volume(shape, radius: float = 1.0) -> np.ndarray:
    """Region labels (see module docstring) of an ellipsoid phantom of ``shape``.

    ``radius`` scales the ellipsoid (1: it touches the sides of the box).
    """
    X, Y, Z = shape
    x = (np.arange(X) + 0.5) / X * 2 - 1
    y = (np.arange(Y) + 0.5) / Y * 2 - 1
    z = (np.arange(Z) + 0.5) / Z * 2 - 1 if Z > 1 else np.zeros(1)
    xx, yy, zz = np.meshgrid(x, y, z, indexing="ij")
    r = np.sqrt(xx**2 / 0.95**2 + yy**2 / 0.95**2 + zz**2 / 1.2**2) / radius
    labels = np.zeros(shape, np.uint8)
    inside = r <= 1.0
    labels[inside] = LABELS["gm"]
    core = r <= 0.75
    labels[core & (xx < 0)] = LABELS["wm"]
    labels[core & (xx >= 0) & (yy < 0)] = LABELS["cross2"]
    labels[core & (xx >= 0) & (yy >= 0)] = LABELS["cross3"]
    ventricle = (xx / 0.22) ** 2 + (yy / 0.3) ** 2 <= 1.0
    labels[core & ventricle] = LABELS["csf"]
    return labels


def _fibre_directions(label: int, n: int, rng) -> np.ndarray:
    """Directions (n, k, 3) of a region's fibres with a little jitter."""
    if label in (2, 3):
        base = np.array([[1.0, 0.0, 0.0]])
        if label == 2:
            dirs = rng.normal(size=(n, 1, 3))
            return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
        dirs = np.broadcast_to(base, (n, 1, 3)).copy()
    elif label == 4:
        angle = np.deg2rad(rng.uniform(50, 90, n))
        dirs = np.zeros((n, 2, 3))
        dirs[:, 0, 0] = 1.0
        dirs[:, 1, 0], dirs[:, 1, 1] = np.cos(angle), np.sin(angle)
    else:
        dirs = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
        tilt = np.deg2rad(rng.uniform(0, 30, n))
        dirs[:, 2] = np.stack([np.zeros(n), np.sin(tilt), np.cos(tilt)], -1)
    dirs = dirs + rng.normal(scale=0.05, size=dirs.shape)
    return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def _fibre_group(model, label, ranges, n, acq, rng, base_dirs=None):
    """Signals (n, N) and truth dict for one group of voxels of one label.

    ``model`` has the label's fibre count; parameters are drawn uniformly from ``ranges``
    (by base name: ``odi`` also for ``odi_2``), else from their priors. ``base_dirs``
    (n, >= n_fib, 3), when given, are the voxels' fibre directions (the brain phantom's
    tracts); they get the same small jitter as the ring phantom's.
    """
    n_fib = model.n_fibres
    if base_dirs is None:
        dirs = _fibre_directions(label, n, rng)
    else:
        dirs = base_dirs[:, :max(n_fib, 1)] + rng.normal(scale=0.05, size=(n, max(n_fib, 1), 3))
        dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    values, truth = {}, {}
    w = rng.uniform(0.6, 1.0, (n, n_fib)) if n_fib > 1 else np.ones((n, 1))
    w = w / w.sum(-1, keepdims=True)
    order = np.argsort(-w, axis=1)
    w = np.take_along_axis(w, order, 1)
    for p in model.parameters:
        base, _, idx = p.name.rpartition("_") if p.name[-1].isdigit() else (p.name, "", "")
        if p.kind == "orientation":
            k = int(idx) - 1 if idx else 0
            values[p.name] = cartesian_to_angles(dirs[:, k])
        elif base == "ffib":
            values[p.name] = w[:, int(idx) - 1]
        elif base in ranges:
            values[p.name] = rng.uniform(*ranges[base], n)
        elif p.name in ("fiso", "f_dot") and "fiso" in ranges:
            values[p.name] = rng.uniform(*ranges["fiso"], n)
        else:
            values[p.name] = rng.uniform(*p.prior_bounds, n)
    params = model.parameters.pack(values)
    signal = model.signal(acq, params)
    maps = model.maps(params)
    for k in range(1, 4):
        sfx = f"_{k}"
        for base in ("odi", "icvf", "diameter", "d_perp", "mu", "ffib"):
            key = base + sfx if n_fib > 1 else base
            if k <= n_fib and key in maps:
                truth[base + sfx] = maps[key]
            elif k <= n_fib and base == "ffib":
                truth[base + sfx] = np.ones(n)
    for name, v in maps.items():
        if not name[-1].isdigit():
            truth[name] = v
    if n_fib > 1:
        truth["mu"] = maps["mu_1"]
    return signal, truth


def make_phantom(*, model: str = "noddi", scheme: str | None = None, shape=(24, 24, 8),
                 snr: float = 30.0, seed: int = 0, acq: Acquisition | None = None,
                 kind: str = "rings", t2=None) -> Phantom:
    """Build a phantom in memory.

    Parameters
    ----------
    model : str, dict or MultiCompartmentModel
        A registered family (``noddi``, ``activeax``, ``zcd``, ``ivim``...), a model spec or
        a model: its registry record gives the tissue ranges per region; a composed model
        draws its parameters from those ranges by name, else from its priors.
    kind : {"rings", "brain"}
        ``"brain"``: tissue classes from real anatomy and fibres along known tracts
        (:mod:`microlearn.data.brain_phantom`; the default of the CLI, the demo and the
        dashboards). ``"rings"``: the small ellipsoid of rings (a fast test fixture).
    scheme : str, optional
        Built-in acquisition; default by model (noddi: hcp, activeax/zcd: activeax,
        ivim: ivim). Ignored when ``acq`` is given.
    shape : tuple of int
        Spatial shape (X, Y, Z).
    snr : float
        b0 signal-to-noise ratio (σ = S0 / snr, Rician); ``inf`` for no noise. With ``t2``
        σ is S0 / snr at TE = 0, so later echoes have a lower SNR, as in a scanner.
    seed : int
    acq : Acquisition, optional
        Any acquisition (e.g. multi-TE from :func:`microlearn.schemes.with_echo_times`).
    t2 : {None, "tissue"} or float
        T2 weighting ``exp(−TE/T2)`` per voxel: none, typical per-tissue values
        (:data:`T2_TISSUE`, uniform within each range; truth map ``t2``), or one T2 (s).
    """
    acq, labels, s0_map, dirs, extra, affine = _layout(model, scheme, shape, acq, kind=kind)
    rng = as_rng(seed)
    mask = labels > 0
    data, truth = _fill(model, acq, labels, s0_map, snr, rng, dirs, t2)
    truth.update(extra)
    log.info("phantom %s: %d voxels in the mask", shape, int(mask.sum()))
    return Phantom(data=data, acq=acq, mask=mask, labels=labels, truth=truth, affine=affine,
                   model=model, snr=snr)


KINDS = ("brain", "rings")


def _layout(model, scheme, shape, acq, radius=1.0, *, kind="rings"):
    """Acquisition, labels, S0, fibre directions (or None), extra truth maps and affine."""
    model = resolve_model(model)  # validates the name or spec
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is unknown; choose one of {list(KINDS)}.")
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive integers, got {tuple(shape)}.")
    acq = acq or Acquisition.scheme(scheme or default_scheme(model))
    shape = tuple(int(s) for s in shape)
    dirs, extra = None, {}
    affine = PHANTOM_AFFINE
    if kind == "brain":
        from .brain_phantom import brain_layout

        layout = brain_layout(shape)
        labels, dirs, affine = layout.labels, layout.directions, layout.affine
        extra = {"tracts": layout.tracts.astype(np.float32)}
    else:
        labels = label_volume(shape, radius)
    xs, ys = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    s0_xy = S0 * (1.0 + 0.1 * np.sin(xs / max(shape[0], 1) * np.pi)
                  * np.cos(ys / max(shape[1], 1) * np.pi))
    s0_map = np.broadcast_to(s0_xy[..., None], shape).astype(np.float32)
    return acq, labels, s0_map, dirs, extra, affine


def _t2_values(t2, label, n, rng):
    if t2 is None:
        return None
    if isinstance(t2, str):
        if t2 != "tissue":
            raise ValueError(f"t2 must be None, 'tissue' or seconds, got {t2!r}.")
        return rng.uniform(*T2_TISSUE[label], n)
    if not float(t2) > 0:
        raise ValueError(f"t2 must be positive seconds, got {t2!r}.")
    return np.full(n, float(t2))


def _fill(model, acq, labels, s0_map, snr, rng, dirs=None, t2=None):
    """Signals and truth maps of a block of labels (the whole volume or one slab).

    ``dirs`` (*labels.shape, 3, 3), optional: each voxel's fibre directions; ``t2`` as in
    :func:`make_phantom`.
    """
    shape = labels.shape
    mask = labels > 0
    base = resolve_model(model)
    record = family_of(base)
    data = np.zeros(shape + (acq.n_measurements,), np.float32)
    truth: dict[str, np.ndarray] = {}

    def put(name, idx, value):
        value = np.asarray(value, dtype=np.float32)
        if name not in truth:
            full = shape + ((value.shape[-1],) if value.ndim == 2 else ())
            truth[name] = np.full(full, np.nan if name[-1].isdigit() else 0.0, np.float32)
        truth[name][idx] = value

    for label in sorted(set(np.unique(labels)) - {0}):
        idx = np.nonzero(labels == label)
        n = idx[0].size
        label_dirs = None if dirs is None else dirs[idx]
        if record is None or not record.has_fibres:  # IVIM, SANDI, a composed model
            tissue = record.phantom_tissue if record is not None else FIBRE_TISSUE
            signal, group_truth = _fibre_group(base, label, tissue.get(label, {}), n, acq, rng,
                                               label_dirs)
            group_truth["n_fibres"] = np.full(n, base.n_fibres)
        elif label == LABELS["csf"] and record.phantom_csf is not None:
            signal = np.exp(-acq.bvals * D_CSF)[None, :].repeat(n, 0)
            group_truth = {k: np.full(n, v) for k, v in record.phantom_csf.items()}
            group_truth["n_fibres"] = np.zeros(n)
        else:
            n_fib = FIBRES_PER_LABEL[label]
            signal, group_truth = _fibre_group(base.with_fibres(n_fib), label,
                                               record.phantom_tissue.get(label, {}), n, acq,
                                               rng, label_dirs)
            group_truth["n_fibres"] = np.full(n, n_fib)
        t2_vox = _t2_values(t2, int(label), n, rng)
        if t2_vox is not None:
            from ..simulate import t2_weighting

            signal = signal * t2_weighting(acq, t2_vox)
            group_truth["t2"] = t2_vox
        data[idx] = signal * s0_map[idx][:, None]
        for name, value in group_truth.items():
            put(name, idx, value)
    truth["s0"] = np.where(mask, s0_map, 0).astype(np.float32)
    if np.isfinite(snr) and mask.any():
        data[mask] = add_noise(data[mask], snr, s0=S0, random_state=rng).astype(np.float32)
    for name in list(truth):
        if name.startswith("mu") and truth[name].ndim == 4:
            truth[name] = np.nan_to_num(truth[name])
    return data, truth


def save_phantom_slabwise(out_dir, *, model: str = "noddi", scheme: str | None = None,
                          shape=(145, 174, 145), snr: float = 30.0, seed: int = 0,
                          slab: int = 8, radius: float = 0.78,
                          progress: bool = False, kind: str = "rings",
                          acq: Acquisition | None = None, t2=None,
                          force: bool = False) -> Path:
    """Write a phantom of any size slab by slab (bounded memory), in the HCP layout.

    The signal goes to an uncompressed ``data.nii`` filled through a memory map, one
    z-slab of ``slab`` slices at a time (an HCP-size volume, 145×174×145×288 float32, is
    4.2 GB on disk but needs ~0.3 GB of memory); truth maps are written as usual. The
    random stream differs from :func:`make_phantom` (one generator per slab). The default
    ``radius`` makes the ring phantom's brain about a quarter of the box, as in an HCP volume
    (~0.9 M brain voxels at 145×174×145); ``kind="brain"`` (see :func:`make_phantom`) has
    ~0.86 M brain voxels at that size. Files appear together, as in
    :meth:`Phantom.save`.
    """
    from .writers import staged_output

    with staged_output(out_dir, force=force) as staging:
        _write_slabwise(staging, model, scheme, shape, snr, seed, slab, radius, progress, kind,
                        acq, t2)
    out = Path(out_dir)
    if force:  # a gzip DWI of an earlier phantom would be read instead of the new data.nii
        (out / "data.nii.gz").unlink(missing_ok=True)
    return out


def _write_slabwise(out, model, scheme, shape, snr, seed, slab, radius, progress, kind, acq,
                    t2) -> None:
    import nibabel as nib

    from .writers import _atomic_replace, save_nifti_atomic, write_acquisition_files, write_maps

    acq, labels, s0_map, dirs, extra, affine = _layout(model, scheme, shape, acq, radius,
                                                       kind=kind)
    shape = labels.shape
    header = nib.Nifti1Header()
    header.set_data_shape(shape + (acq.n_measurements,))
    header.set_data_dtype(np.float32)
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    tmp = out / ".data.nii.tmp"
    offset = 352
    header["vox_offset"] = offset
    with open(tmp, "wb") as fh:
        fh.write(header.binaryblock)
        fh.write(b"\0" * (offset - len(header.binaryblock)))
    X, Y, Z = shape
    truth: dict[str, np.ndarray] = {}
    starts = range(0, Z, slab)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="phantom", unit="slab")
    with open(tmp, "r+b") as fh:
        fh.truncate(offset + 4 * X * Y * Z * acq.n_measurements)
        for z0 in starts:
            z1 = min(z0 + slab, Z)
            data, part = _fill(model, acq, labels[..., z0:z1], s0_map[..., z0:z1], snr,
                               as_rng([seed, z0]), None if dirs is None else dirs[:, :, z0:z1],
                               t2)
            # in NIfTI (Fortran) order the slab of each volume is one contiguous run
            for t in range(acq.n_measurements):
                block = np.asfortranarray(data[..., t]).tobytes(order="F")
                os.pwrite(fh.fileno(), block, offset + 4 * X * Y * (t * Z + z0))
            for name, v in part.items():
                if name not in truth:
                    truth[name] = np.full(shape + v.shape[3:], np.nan if name[-1].isdigit()
                                          else 0.0, np.float32)
                truth[name][:, :, z0:z1] = v
        os.fsync(fh.fileno())
    _atomic_replace(tmp, out / "data.nii")
    save_nifti_atomic((labels > 0).astype(np.uint8), affine, out / "nodif_brain_mask.nii.gz")
    write_acquisition_files(out, acq)
    write_maps(out / "truth", {**truth, **extra, "labels": labels.astype(np.float32)}, affine)
    _write_model(out / "truth", model)


def _write_model(folder: Path, model) -> None:
    """``model.json``: the spec of the model that made the phantom (``--model`` accepts it)."""
    from .writers import write_json

    write_json(folder / "model.json", resolve_model(model).to_spec())


__all__ = ["KINDS", "LABELS", "Phantom", "label_volume", "make_phantom", "save_phantom_slabwise"]
