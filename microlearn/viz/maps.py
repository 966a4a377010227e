"""Slice views of parameter maps (the dashboards' slice viewer)."""

from __future__ import annotations

from matplotlib.figure import Figure

from .compare import show_slice


def plot_maps_slice(maps: dict, names, mask, z: int, *, truth=None):
    """Axial slice ``z`` of each map (and of the truth when given), NaN outside the mask.

    Parameters
    ----------
    maps : dict of str to ndarray, shape (X, Y, Z)
        Estimated maps (SI units).
    names : sequence of str
        Map names (columns).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain voxels; outside is shown blank.
    z : int
        Slice index.
    truth : dict of str to ndarray, shape (X, Y, Z), optional
        True maps, shown as a second row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = [("estimate", maps)] + ([("truth", truth)] if truth is not None else [])
    fig = Figure(figsize=(2.6 * len(names), 2.4 * len(rows)))
    axes = fig.subplots(len(rows), len(names), squeeze=False)
    for (label, m), row in zip(rows, axes):
        for ax, name in zip(row, names):
            im = show_slice(ax, m[name], name, mask, z, f"{label}: {name} (z={z})")
            fig.colorbar(im, ax=ax, shrink=0.7)
    return fig
