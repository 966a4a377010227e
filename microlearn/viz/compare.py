"""Figures of a comparison between methods: runtime, map slices, error maps.

Every function returns a matplotlib ``Figure`` (never shown); the truth-vs-estimate
scatter is :func:`microlearn.viz.accuracy.plot_truth_vs_estimate`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .accuracy import plot_truth_vs_estimate

#: Colour limits per map in the slice figures (SI units).
MAP_RANGES = {"odi": (0, 1), "icvf": (0, 1), "fiso": (0, 1), "f": (0, 0.5), "f_dot": (0, 0.3),
              "diameter": (0, 12e-6), "d": (0, 3e-9), "d_star": (0, 30e-9), "npe": (0.5, 2.5)}


def plot_scatter(reference: dict, estimates: dict, names, *, xlabel="truth"):
    """Estimate against truth (or a reference method) per map and method.

    Parameters
    ----------
    reference : dict of str to ndarray, shape (n,)
        True (or reference) values of the compared voxels.
    estimates : dict of str to dict of str to ndarray, shape (n,)
        ``{method: {map: values}}``.
    names : sequence of str
        Map names (columns).
    xlabel : str
        What the x axis holds.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return plot_truth_vs_estimate(reference, estimates, names, xlabel=xlabel)


def plot_runtime(rows):
    """Horizontal bars of steady voxels per second (log scale), the set-up written beside.

    ``vox_per_s`` is the throughput once set up; ``setup_s`` (imports, compiled-kernel
    loading, tables) is printed next to each bar when it was timed apart, so a method that
    paid its compilation in this run is not shown at a fraction of its true rate.

    Parameters
    ----------
    rows : list of dict
        :attr:`microlearn.run.compare.Comparison.rows` (``method``, ``kind``, ``vox_per_s``,
        ``setup_s``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(6.5, 0.45 * len(rows) + 1.4))
    ax = fig.subplots()
    names = [r["method"] for r in rows]
    speed = [r["vox_per_s"] for r in rows]
    colours = ["tab:blue" if r.get("kind") == "fit" else "tab:orange" for r in rows]
    ax.barh(names, speed, color=colours)
    ax.set_xscale("log")
    ax.set_xlabel("steady voxels per second, set-up apart (blue: fitting, orange: learned;\n"
                  "training not included)")
    for y, (v, r) in enumerate(zip(speed, rows)):
        setup = r.get("setup_s", "")
        note = f" + set-up {setup:.2f} s" if isinstance(setup, float) else " (whole call)"
        ax.text(v, y, f" {v:,.0f}{note}", va="center", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def _middle_slice(mask):
    counts = mask.reshape(-1, mask.shape[-1]).sum(0)
    return int(np.argmax(counts))


def show_slice(ax, values, name, mask, z, title):
    """One map's axial slice ``z`` (NaN outside the mask) in its usual colour range.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    values : ndarray, shape (X, Y, Z)
    name : str
        Map name (chooses the colour range).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain voxels; outside is shown blank.
    z : int
        Slice index.
    title : str

    Returns
    -------
    matplotlib.image.AxesImage
    """
    img = np.where(mask[..., z], np.asarray(values, float)[..., z], np.nan)
    lo, hi = MAP_RANGES.get(name, (np.nanmin(img), np.nanmax(img)))
    im = ax.imshow(img.T, origin="lower", cmap="viridis", vmin=lo, vmax=hi)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return im


def plot_map_slices(truth, maps: dict, names, mask):
    """The fullest axial slice of each map: truth (if known) then one row per method.

    Parameters
    ----------
    truth : dict of str to ndarray, shape (X, Y, Z), or None
    maps : dict of str to dict of str to ndarray, shape (X, Y, Z)
        ``{method: {map: volume}}``.
    names : sequence of str
        Map names (columns).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain voxels; outside is shown blank.

    Returns
    -------
    matplotlib.figure.Figure
    """
    z = _middle_slice(mask)
    rows = ([("truth", truth)] if truth is not None else []) + list(maps.items())
    fig = Figure(figsize=(2.4 * len(names), 2.2 * len(rows)))
    axes = fig.subplots(len(rows), len(names), squeeze=False)
    for (label, m), row in zip(rows, axes):
        for ax, name in zip(row, names):
            im = show_slice(ax, m[name], name, mask, z, f"{label}: {name}")
        fig.colorbar(im, ax=row.tolist(), shrink=0.8)
    return fig


def plot_error_maps(truth, maps: dict, names, mask):
    """Estimate minus truth on the fullest slice, one row per method (diverging colours).

    Parameters
    ----------
    truth : dict of str to ndarray, shape (X, Y, Z)
    maps : dict of str to dict of str to ndarray, shape (X, Y, Z)
        ``{method: {map: volume}}``.
    names : sequence of str
        Map names (columns).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain voxels; outside is shown blank.

    Returns
    -------
    matplotlib.figure.Figure
    """
    z = _middle_slice(mask)
    fig = Figure(figsize=(2.4 * len(names), 2.2 * len(maps)))
    axes = fig.subplots(len(maps), len(names), squeeze=False)
    for (label, m), row in zip(maps.items(), axes):
        for ax, name in zip(row, names):
            err = np.where(mask[..., z], np.asarray(m[name], float)[..., z]
                           - np.asarray(truth[name], float)[..., z], np.nan)
            lo, hi = MAP_RANGES.get(name, (0, np.nanmax(np.abs(err)) or 1))
            lim = 0.3 * (hi - lo)
            im = ax.imshow(err.T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"{label}: {name} error", fontsize=8)
            ax.axis("off")
        fig.colorbar(im, ax=row.tolist(), shrink=0.8)
    return fig


def plot_holdout_errors(rows):
    """Mean normalised prediction error per candidate, with the tie intervals.

    Each bar is a candidate's mean npe (held-out RMS error in units of σ); the whisker is
    the 95 % paired-bootstrap interval of its difference to the leader of its tie group,
    drawn from that leader's mean. Bars of rank 1 are green, ties share a rank label.

    Parameters
    ----------
    rows : list of dict
        :attr:`microlearn.run.holdout.HoldoutComparison.rows` (best first).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(6.5, 0.45 * len(rows) + 1.4))
    ax = fig.subplots()
    names = [r["candidate"] for r in rows]
    npe = np.array([r["npe"] for r in rows])
    colours = ["tab:green" if r["rank"] == 1 else "tab:blue" for r in rows]
    ax.barh(names, npe, color=colours)
    lead = npe - np.array([r["diff_to_leader"] for r in rows])
    lo = lead + np.array([r["diff_low"] for r in rows])
    hi = lead + np.array([r["diff_high"] for r in rows])
    y = np.arange(len(rows))
    has = np.array([r["diff_to_leader"] != 0 for r in rows])
    ax.errorbar(lo[has] / 2 + hi[has] / 2, y[has], xerr=(hi[has] - lo[has]) / 2, fmt="none",
                ecolor="k", capsize=3)
    right = np.where(has, np.maximum(npe, hi), npe)
    for yy, (x, v, r) in enumerate(zip(right, npe, rows)):
        ax.text(x, yy, f" {v:.3f} (rank {r['rank']})", va="center", fontsize=8)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlim(min(0.9, npe.min() * 0.95), right.max() * 1.18)
    ax.set_xlabel("held-out prediction error / σ (1 = noise level; lower is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
