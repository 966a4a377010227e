"""Slice views of parameter maps (the dashboards' slice viewer)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .compare import MAP_RANGES


def plot_maps_slice(maps: dict, names, mask, z: int, *, truth=None):
    """Axial slice ``z`` of each map (and of the truth when given), NaN outside the mask."""
    rows = [("estimate", maps)] + ([("truth", truth)] if truth is not None else [])
    fig = Figure(figsize=(2.6 * len(names), 2.4 * len(rows)))
    axes = fig.subplots(len(rows), len(names), squeeze=False)
    for (label, m), row in zip(rows, axes):
        for ax, name in zip(row, names):
            img = np.where(mask[..., z], np.asarray(m[name], float)[..., z], np.nan)
            lo, hi = MAP_RANGES.get(name, (np.nanmin(img), np.nanmax(img)))
            im = ax.imshow(img.T, origin="lower", cmap="viridis", vmin=lo, vmax=hi)
            ax.set_title(f"{label}: {name} (z={z})", fontsize=8)
            ax.axis("off")
            fig.colorbar(im, ax=ax, shrink=0.7)
    return fig
