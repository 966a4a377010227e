"""Spherical-mean (powder-average) data: one measurement per shell and echo time.

Averaging the signal over the gradient directions of a shell removes its dependence on
the fibre orientation distribution (Kaden et al. 2016). A *powder group* is one shell
(b, δ, Δ) at one echo-time group; all b0 measurements of an echo-time group form one
group whatever their timings. :func:`spherical_mean_acquisition` gives the acquisition of
the averaged data (one row per group) and :func:`powder_average` averages signals to it;
both use the same group order, echo-time group first, then shells by b (b0 first).
"""

from __future__ import annotations

import numpy as np

from ..acquisition import Acquisition


def powder_groups(acq: Acquisition) -> tuple[np.ndarray, int]:
    """Powder group of every measurement.

    Parameters
    ----------
    acq : Acquisition

    Returns
    -------
    index : ndarray of int, shape (n_measurements,)
        Group of each measurement, numbered 0..n_groups-1 (echo-time group major, then
        shell in ascending b with the b0 shell first).
    n_groups : int
    """
    cache = acq._cache
    if "powder_groups" not in cache:
        n_shells = int(acq.shell_index.max()) + 1
        key = acq.te_index * n_shells + acq.shell_index
        _, index = np.unique(key, return_inverse=True)
        index = index.ravel()
        index.setflags(write=False)
        cache["powder_groups"] = (index, int(index.max()) + 1)
    return cache["powder_groups"]


def _averaging_matrix(acq: Acquisition) -> np.ndarray:
    cache = acq._cache
    if "powder_matrix" not in cache:
        index, n_groups = powder_groups(acq)
        w = np.zeros((acq.n_measurements, n_groups))
        w[np.arange(acq.n_measurements), index] = 1.0
        w /= w.sum(axis=0, keepdims=True)
        w.setflags(write=False)
        cache["powder_matrix"] = w
    return cache["powder_matrix"]


def spherical_mean_acquisition(acq: Acquisition) -> Acquisition:
    """The acquisition of powder-averaged data: one measurement per powder group.

    Each row carries the group's mean b-value, its δ, Δ and mean TE, G = √(mean G²)
    (so that b, G, δ, Δ stay consistent) and a representative direction (the group's
    first; b0 rows keep a zero vector). Directions carry no information after averaging.

    Parameters
    ----------
    acq : Acquisition
        The full-direction acquisition.

    Returns
    -------
    Acquisition
        ``n_groups`` measurements, named ``"<name>-powder"``, same b0 threshold.
    """
    index, n_groups = powder_groups(acq)
    w = _averaging_matrix(acq)
    first = np.array([np.flatnonzero(index == k)[0] for k in range(n_groups)])
    bvals = acq.bvals @ w
    b0 = bvals <= acq.b0_threshold
    bvecs = acq.bvecs[first].copy()
    bvecs[b0] = 0.0
    G = np.sqrt((acq.G**2) @ w)
    te = None if acq.TE is None else acq.TE @ w
    out = Acquisition(bvals, bvecs, acq.delta[first], acq.Delta[first], TE=te, G=G,
                      name=f"{acq.name}-powder", b0_threshold=acq.b0_threshold)
    counts = np.bincount(index, minlength=n_groups).astype(float)
    counts.setflags(write=False)
    out._cache["powder_counts"] = counts  # directions per row: the noise of each mean
    return out


def powder_average(acq: Acquisition, signals) -> np.ndarray:
    """Average signals over the directions of each shell (and the b0s of each TE).

    Parameters
    ----------
    acq : Acquisition
        The full-direction acquisition the signals were measured with.
    signals : array_like, shape (*batch, n_measurements)
        Signals (normalised or not), one per measurement of ``acq``.

    Returns
    -------
    ndarray, shape (*batch, n_groups)
        Mean signal of each powder group, in the order of
        :func:`spherical_mean_acquisition`.

    Raises
    ------
    ValueError
        When the last axis of ``signals`` does not match the measurements of ``acq``.
    """
    signals = np.asarray(signals)
    if signals.ndim == 0 or signals.shape[-1] != acq.n_measurements:
        raise ValueError(
            f"powder_average: signals have {np.shape(signals)[-1:] or 'no'} values on their "
            f"last axis but the acquisition has {acq.n_measurements} measurements; pass the "
            "signals measured with this acquisition, volumes on the last axis."
        )
    dtype = signals.dtype if np.issubdtype(signals.dtype, np.floating) else np.float64
    w = _averaging_matrix(acq).astype(dtype, copy=False)
    return signals.astype(dtype, copy=False) @ w
