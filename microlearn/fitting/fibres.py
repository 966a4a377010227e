"""``estimate_fibres``: 0–3 fibre populations and their directions per voxel.

Two ways: model selection between 0–3 fibre fits (``select``, :func:`.selection.fit_auto`,
which takes DIPY's CSD peaks as candidates), or DIPY's peak counting alone (``csd``,
``msmt``, :func:`microlearn.crossings.peak_fibres`). Peaks feed selection, so the choice
between them is made here, in fitting, above the crossings package.
"""

from __future__ import annotations

import time

import numpy as np

from ..crossings.estimate import PEAK_METHODS, FibreEstimate, peak_fibres
from .selection import fit_auto

#: Fibre-estimation methods: model selection, then DIPY's peak counting.
METHODS = ("select",) + PEAK_METHODS


def estimate_fibres(acq, data, *, mask=None, method: str = "select", model: str = "noddi",
                    sigma=None, progress: bool = False, **options) -> FibreEstimate:
    """Number of fibre populations (0–3) and their directions in every voxel.

    Parameters
    ----------
    acq : Acquisition
    data : ndarray, shape (*spatial, N)
        Raw signals.
    mask : ndarray of bool, shape (*spatial), optional
    method : {"select", "csd", "msmt"}
        ``select`` (default): model selection between 0–3 fibre fits of ``model``
        (:func:`~microlearn.fitting.selection.fit_auto`); directions are the fitted
        orientations. ``csd`` and ``msmt``: DIPY's peak counting
        (:func:`~microlearn.crossings.peak_fibres`).
    model : str
        Fibre model used by ``select``.
    sigma : float, optional
        Noise σ for ``select`` (from the b0 repeats when absent).
    progress : bool
        Progress bar of ``select``.
    options
        ``select``: passed to :func:`fit_auto` (``criterion``, ``method`` is the fitting
        engine there and is given here as ``engine``, ``workers``); ``csd``/``msmt``:
        ``relative_peak_threshold``, ``min_separation_angle``.

    Returns
    -------
    FibreEstimate
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if method != "select":
        return peak_fibres(acq, data, mask=mask, method=method, **options)
    t0 = time.perf_counter()
    engine = options.pop("engine", "mix")
    res = fit_auto(model, acq, data, mask=mask, method=engine, sigma=sigma,
                   progress=progress, **options)
    maps = res.maps()
    spatial = res.mask.shape
    dirs = np.stack([maps[f"mu_{i}"] if f"mu_{i}" in maps else
                     np.full(spatial + (3,), np.nan) for i in (1, 2, 3)], -2)
    weights = np.stack([maps[f"ffib_{i}"] if f"ffib_{i}" in maps else
                        np.full(spatial, np.nan) for i in (1, 2, 3)], -1)
    if "mu_1" not in maps:  # max_fibres == 1
        dirs[..., 0, :] = maps["mu"]
        weights[..., 0] = np.where(res.n_fibres > 0, 1.0, np.nan)
    return FibreEstimate(res.n_fibres, dirs, weights, method, res.mask,
                         time.perf_counter() - t0, fit=res)
