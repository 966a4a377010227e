"""Fibre count and directions per voxel from DIPY peaks, and the record that holds them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..data.voxels import Voxels
from .dipy_tools import (
    COUNT_THRESHOLD,
    FA_ZERO,
    MIN_SEPARATION,
    csd_peaks,
    msmt_peaks,
    tensor_scalars,
    tissue_classes,
)

log = logging.getLogger(__name__)

#: Peak-counting methods (DIPY CSD, multi-shell multi-tissue CSD with HMRF).
PEAK_METHODS = ("csd", "msmt")


@dataclass
class FibreEstimate:
    """Fibre count and directions over space.

    Attributes
    ----------
    n_fibres : ndarray of uint8, shape (*spatial,)
    directions : ndarray, shape (*spatial, 3, 3)
        Unit vectors of fibres 1..3 (dominant first); NaN where a fibre does not exist.
    weights : ndarray, shape (*spatial, 3)
        Fibre weights (``select``: fitted fibre fractions summing to one; ``csd``/``msmt``:
        fODF peak amplitudes relative to the largest); NaN where absent.
    method : str
    mask : ndarray of bool, shape (*spatial,)
    seconds : float
    fit : AutoFitResult or None
        The per-voxel model fits behind ``select``
        (:func:`microlearn.fitting.fibres.estimate_fibres`).
    tissue : ndarray of uint8 or None
        HMRF classes (``msmt``): 0 background, 1 WM-like, 2 GM-like, 3 CSF-like.
    """

    n_fibres: np.ndarray
    directions: np.ndarray
    weights: np.ndarray
    method: str
    mask: np.ndarray
    seconds: float = 0.0
    fit: object = None
    tissue: np.ndarray | None = None

    def maps(self) -> dict[str, np.ndarray]:
        """``n_fibres`` and ``peak_1``.. (X, Y, Z, 3) direction maps."""
        out = {"n_fibres": self.n_fibres}
        for i in range(3):
            out[f"peak_{i + 1}"] = self.directions[..., i, :]
        return out


def _peak_count(dirs, values, zero):
    """Count peaks, NaN the missing ones, relative weights; ``zero`` voxels get 0 fibres."""
    present = np.all(np.isfinite(dirs), axis=-1) & ~zero[:, None]
    n = present.sum(1).astype(np.uint8)
    dirs = np.where(present[..., None], dirs, np.nan)
    top = np.maximum(values[:, :1], 1e-30)
    weights = np.where(present, values / top, np.nan)
    return n, dirs, weights


def peak_fibres(acq, data, *, mask=None, method: str = "csd", **options) -> FibreEstimate:
    """Number of fibre populations (0–3) and their directions from DIPY's fODF peaks.

    Model selection between 0–3 fibre fits (``select``) is a fitting method: it takes these
    peaks as candidates and lives in :func:`microlearn.fitting.fibres.estimate_fibres`.

    Parameters
    ----------
    acq : Acquisition
    data : ndarray, shape (*spatial, N)
        Raw signals.
    mask : ndarray of bool, shape (*spatial), optional
    method : {"csd", "msmt"}
        ``csd``: plain DIPY — single-shell CSD on the highest shell with
        ``auto_response_ssst``-style response, ``peaks_from_model`` at relative
        threshold 0.5 and 25° separation, FA < 0.14 -> 0 fibres.
        ``msmt``: DIPY multi-shell multi-tissue CSD, same peak rule on the WM fODF,
        0 fibres where the HMRF tissue class is CSF.
    options
        ``relative_peak_threshold``, ``min_separation_angle``.

    Returns
    -------
    FibreEstimate
    """
    if method not in PEAK_METHODS:
        raise ValueError(f"method must be one of {PEAK_METHODS}, got {method!r}.")
    t0 = time.perf_counter()
    vx = Voxels.extract(acq, data, mask)
    y = vx.signal / vx.b0[:, None]
    peak_opts = {"relative_peak_threshold": options.pop("relative_peak_threshold",
                                                        COUNT_THRESHOLD),
                 "min_separation_angle": options.pop("min_separation_angle", MIN_SEPARATION)}
    if options:
        raise ValueError(f"unknown options {sorted(options)} for fibre method {method!r}.")
    tissue_v = None
    if method == "csd":
        dirs, values = csd_peaks(acq, y, **peak_opts)
        fa, _ = tensor_scalars(acq, y)
        zero = fa < FA_ZERO
    else:
        fa, md = tensor_scalars(acq, y)
        labels = tissue_classes(vx.to_volume(np.maximum(md, 1e-15), 0.0))
        tissue_v = labels.reshape(-1)[vx.flat]
        dirs, values, _ = msmt_peaks(acq, y, labels=tissue_v, **peak_opts)
        zero = tissue_v == 3
    n, dirs, weights = _peak_count(dirs, values, zero)
    tissue = None if tissue_v is None else vx.to_volume(tissue_v, 0, np.uint8)
    seconds = time.perf_counter() - t0
    log.info("peak_fibres %s: %d voxels in %.1f s", method, len(y), seconds)
    return FibreEstimate(vx.to_volume(n, 0, np.uint8), vx.to_volume(dirs), vx.to_volume(weights),
                         method, vx.mask, seconds, tissue=tissue)
