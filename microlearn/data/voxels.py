"""Voxel signals: normalisation by the b0s of each echo time, usable voxels, σ per TE.

Every echo time carries its own T2 weighting, so each TE group is divided by the mean of
its own b0s (one group when TE is unknown or single). Negative and zero diffusion-weighted
samples are data (the Rician model explains them); a voxel is unusable only when a
sample is NaN/infinite or the b0 mean of some TE group is not positive.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .noise import estimate_sigma


def b0_means(signal, acq) -> np.ndarray:
    """Mean b0 signal of each TE group.

    Parameters
    ----------
    signal : ndarray, shape (V, N)
        Raw signals.
    acq : Acquisition

    Returns
    -------
    ndarray, shape (V, n_te)
        NaN for a group without b0 (see :meth:`Acquisition.check_te_groups`).
    """
    signal = np.asarray(signal, dtype=float)
    idx, b0 = acq.te_index, acq.b0_mask
    out = np.full((signal.shape[0], acq.n_te), np.nan)
    for k in range(acq.n_te):
        sel = b0 & (idx == k)
        if sel.any():
            out[:, k] = signal[:, sel].mean(1)
    return out


def usable_voxels(signal, acq) -> np.ndarray:
    """Voxels that can be normalised: finite samples and a positive b0 mean at every TE.

    Returns
    -------
    ndarray of bool, shape (V,)
    """
    signal = np.asarray(signal, dtype=float)
    with np.errstate(invalid="ignore"):
        b0 = b0_means(signal, acq)
        return np.all(np.isfinite(signal), axis=1) & np.all(b0 > 0, axis=1)


def normalise(signal, acq, *, joint: bool = False):
    """Signals divided by the b0 mean of their own TE group.

    Parameters
    ----------
    signal : ndarray, shape (V, N)
    acq : Acquisition
    joint : bool
        Divide every measurement by the b0 mean of the shortest TE instead (models with
        compartment T2, which explain the echo-time decay themselves).

    Returns
    -------
    y : ndarray, shape (V, N)
        Normalised signals (NaN/inf rows where the voxel is unusable).
    scale : ndarray, shape (V, N)
        The b0 mean each measurement was divided by.
    usable : ndarray of bool, shape (V,)
    """
    signal = np.asarray(signal, dtype=float)
    b0 = b0_means(signal, acq)
    scale = b0[:, np.zeros_like(acq.te_index) if joint else acq.te_index]
    usable = usable_voxels(signal, acq)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = signal / scale
    return y, scale, usable


def estimate_sigma_by_te(signal, acq) -> float | None:
    """Noise σ from the b0 repeats of each TE group, pooled.

    b0s at different TEs have different means, so their joint spread is not noise: σ is
    estimated within each group with at least 3 b0s (by
    :func:`microlearn.data.noise.estimate_sigma`) and pooled as the b0-count-weighted
    root mean square.
    """
    if acq.n_te == 1:
        return estimate_sigma(signal, acq)
    signal = np.asarray(signal)
    num = den = 0.0
    for k in range(acq.n_te):
        sel = acq.te_index == k
        n_b0 = int((sel & acq.b0_mask).sum())
        if n_b0 < 3:
            continue
        s = estimate_sigma(signal[:, sel], acq.subset(np.flatnonzero(sel)))
        if s is not None:
            num += n_b0 * s * s
            den += n_b0
    return float(np.sqrt(num / den)) if den else None


def check_fit_input(acq, data, mask):
    """The signal array and its mask, checked against the acquisition before a fit.

    Parameters
    ----------
    acq : Acquisition
    data : ndarray, shape (*spatial, N)
    mask : ndarray of bool, shape (*spatial), or None (all voxels)

    Raises
    ------
    ValueError
        A wrong measurement count, a mask of another shape or empty, no b0, or an echo
        time without b0 (each naming the fix).
    """

    data, mask = check_data_and_mask(data, acq.n_measurements, mask,
                                     expected="the acquisition",
                                     fix="pass the bvals/bvecs of this data")
    if not mask.any():
        raise ValueError("mask is empty: there are no voxels to fit.")
    if acq.n_b0 == 0:
        raise ValueError("the acquisition has no b0 measurement; one is needed to normalise.")
    acq.check_te_groups()
    return data, mask


@dataclass
class Voxels:
    """The valid voxels of a masked volume and the way back to the volume.

    Attributes
    ----------
    signal : ndarray, shape (V, N)
        Raw signals of the voxels with finite, non-negative data and a positive b0.
    b0 : ndarray, shape (V,)
        Their b0 means.
    flat : ndarray of int, shape (V,)
        Their flat indices in the volume.
    mask : ndarray of bool, shape (*spatial,)
        The mask given (valid or not).
    """

    signal: np.ndarray
    b0: np.ndarray
    flat: np.ndarray
    mask: np.ndarray

    @property
    def shape(self) -> tuple:
        """Spatial shape."""
        return self.mask.shape

    @classmethod
    def extract(cls, acq, data, mask) -> Voxels:
        """Validate ``data`` (*spatial, N) and ``mask`` and keep the usable voxels."""

        data, mask = check_fit_input(acq, data, mask)
        bad, _ = validate_signal(data, mask)
        vox = np.asarray(data[mask], dtype=float)
        b0 = vox[:, acq.b0_mask].mean(1)
        use = ~bad[mask] & (b0 > 0) & np.isfinite(b0)
        if not use.any():
            raise ValueError("no voxel has a valid signal (NaN/infinite samples or a b0 mean "
                             "<= 0).")
        if not use.all():
            warnings.warn(f"{int((~use).sum())} voxel(s) have NaN/infinite samples or a b0 mean "
                          "<= 0; they get 0 fibres and NaN maps.", RuntimeWarning, stacklevel=3)
        return cls(vox[use], b0[use], np.flatnonzero(mask.ravel())[use], mask)

    def to_volume(self, values, fill=np.nan, dtype=float) -> np.ndarray:
        """Voxel values (V, ...) as a volume (*spatial, ...) filled with ``fill`` elsewhere."""
        values = np.asarray(values)
        out = np.full((int(np.prod(self.shape)),) + values.shape[1:], fill, dtype)
        out[self.flat] = values
        return out.reshape(self.shape + values.shape[1:])


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

        flat = data.reshape(-1, data.shape[-1])
        bad |= ~usable_voxels(flat, acq).reshape(data.shape[:-1])
    if mask is not None:
        bad &= np.asarray(mask, bool)
    n = int(bad.sum())
    what = "NaN/infinite samples" + (" or a b0 mean <= 0" if acq is not None else "")
    msg = "" if n == 0 else f"{n} voxel(s) have {what}; they get NaN maps."
    return bad, msg
