"""Truth-vs-estimate figures for fitted maps."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_truth_vs_estimate(truth: dict, estimates: dict, names, *, title="", xlabel="truth"):
    """Scatter of estimate against truth per map (columns) and method (rows).

    Parameters
    ----------
    truth : dict of str to ndarray
        True maps (voxels of interest only, 1-D).
    estimates : dict of str to dict of str to ndarray
        ``{method: {map: values}}``.
    xlabel : str
        What the x axis holds (``truth``, or a reference method).
    """
    fig = Figure(figsize=(3.2 * len(names), 3.0 * len(estimates)))
    axes = fig.subplots(len(estimates), len(names), squeeze=False)
    for row, (method, maps) in zip(axes, estimates.items()):
        for ax, name in zip(row, names):
            t, e = np.asarray(truth[name]), np.asarray(maps[name])
            ok = np.isfinite(t) & np.isfinite(e)
            ax.plot(t[ok], e[ok], ".", ms=2, alpha=0.5)
            lo, hi = np.nanmin(t[ok]), np.nanmax(t[ok])
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            rmse = np.sqrt(np.mean((t[ok] - e[ok]) ** 2))
            label = "RMSE" if xlabel == "truth" else "RMSD"
            ax.set_title(f"{method}: {name} ({label} {rmse:.3g})", fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("estimate")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
