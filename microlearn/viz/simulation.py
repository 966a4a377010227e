"""Figures of simulated signals: noisy against noiseless, and the noise distribution."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_noisy_vs_clean(acq, clean, noisy, *, voxel: int = 0):
    """One voxel's signal per measurement, ordered by shell: noiseless line, noisy dots.

    Parameters
    ----------
    acq : Acquisition
    clean : ndarray, shape (n_voxels, n_measurements)
        Noiseless signals (S/S0).
    noisy : ndarray, shape (n_voxels, n_measurements)
        The same signals with noise.
    voxel : int
        Row of ``clean`` and ``noisy`` to show.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(6.5, 3.0))
    ax = fig.subplots()
    order = np.lexsort((np.arange(acq.n_measurements), acq.bvals))
    ax.plot(np.asarray(noisy)[voxel, order], ".", ms=3, label="noisy", color="tab:orange")
    ax.plot(np.asarray(clean)[voxel, order], "-", lw=1, label="noiseless", color="tab:blue")
    ax.set_xlabel("measurement (sorted by b-value)")
    ax.set_ylabel("S/S0")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_noise_histogram(acq, clean, noisy):
    """Histogram of noisy minus noiseless signal at b = 0 and at the highest shell.

    The second panel shows the Rician floor: at high b the differences are skewed upwards.

    Parameters
    ----------
    acq : Acquisition
    clean : ndarray, shape (n_voxels, n_measurements)
        Noiseless signals (S/S0).
    noisy : ndarray, shape (n_voxels, n_measurements)
        The same signals with noise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(6.5, 3.0))
    axes = fig.subplots(1, 2)
    high = acq.bvals >= acq.bvals.max() * 0.95
    for ax, sel, title in ((axes[0], acq.b0_mask, "b = 0"),
                           (axes[1], high, f"b = {acq.bvals.max() / 1e6:.0f} s/mm²")):
        diff = (np.asarray(noisy)[:, sel] - np.asarray(clean)[:, sel]).ravel()
        ax.hist(diff, bins=60, color="tab:gray")
        ax.set_title(f"{title}: mean {diff.mean():+.3f}, std {diff.std():.3f}", fontsize=8)
        ax.set_xlabel("noisy − noiseless (S/S0)")
    axes[0].set_ylabel("measurements")
    fig.tight_layout()
    return fig
