"""Signal figures: attenuation against b and against the angle to the fibre, per shell."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..parameters import angles_to_cartesian


def _shell_curves(model, acq, params, n_angles=61):
    """Signals on a virtual acquisition: every shell of ``acq`` at angles 0–90°."""
    from ..acquisition import Acquisition

    angles = np.linspace(0, np.pi / 2, n_angles)
    dw = np.flatnonzero(~acq.b0_mask)
    shells = np.unique(acq.shell_index[dw])
    first = [dw[acq.shell_index[dw] == k][0] for k in shells]
    mu = angles_to_cartesian(np.asarray(params)[model.parameters.slice(
        model.orientation_names[0])]) if model.orientation_names else np.array([0, 0, 1.0])
    helper = np.array([1.0, 0, 0]) if abs(mu[0]) < 0.9 else np.array([0, 1.0, 0])
    perp = np.cross(mu, helper)
    perp /= np.linalg.norm(perp)
    vecs = np.cos(angles)[:, None] * mu + np.sin(angles)[:, None] * perp
    virtual = Acquisition(np.repeat(acq.bvals[first], n_angles), np.tile(vecs, (len(first), 1)),
                          np.repeat(acq.delta[first], n_angles),
                          np.repeat(acq.Delta[first], n_angles),
                          G=np.repeat(acq.G[first], n_angles), name="curves")
    sig = model.signal(virtual, np.asarray(params)[None])[0].reshape(len(first), n_angles)
    return np.degrees(angles), acq.bvals[first], sig


def plot_signal_vs_angle(model, acq, params, *, ax=None, title=None):
    """S/S0 against the angle between gradient and (first) fibre, one line per shell.

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
        Its shells (b in s/m²) give one line each.
    params : ndarray, shape (size,) or (1, size)
        Packed free parameters in SI units (one voxel).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or None
        A new figure, or None when drawing into ``ax``.
    """
    fig = None
    if ax is None:
        fig = Figure(figsize=(5, 3.5), layout="constrained")  # labels never clipped
        ax = fig.add_subplot()
    angles, bvals, sig = _shell_curves(model, acq, params)
    for b, s in zip(bvals, sig):
        ax.plot(angles, s, label=f"b={b / 1e6:.0f} s/mm²")
    ax.set_xlabel("angle between gradient and fibre (°)")
    ax.set_ylabel("normalised signal S/S0")
    ax.set_ylim(0, 1.05)
    ax.set_title(title or model.name)
    ax.legend(fontsize=7)
    return fig or ax.figure


def plot_signal_vs_b(model, acq, params, *, ax=None, title=None):
    """S/S0 against b for gradients parallel and perpendicular to the fibre.

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
        Its shells (b in s/m²) give one line each.
    params : ndarray, shape (size,) or (1, size)
        Packed free parameters in SI units (one voxel).
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure or None
        A new figure, or None when drawing into ``ax``.
    """
    fig = None
    if ax is None:
        fig = Figure(figsize=(5, 3.5), layout="constrained")  # labels never clipped
        ax = fig.add_subplot()
    angles, bvals, sig = _shell_curves(model, acq, params)
    order = np.argsort(bvals)
    b = np.concatenate([[0.0], bvals[order] / 1e6])
    if model.orientation_names:
        ax.plot(b, np.concatenate([[1.0], sig[order, 0]]), "o-", label="gradient parallel to fibre")
        ax.plot(b, np.concatenate([[1.0], sig[order, -1]]), "s-", label="gradient perpendicular")
        ax.legend(fontsize=7)
    else:
        ax.plot(b, np.concatenate([[1.0], sig[order, 0]]), "o-")
    ax.set_xlabel("b-value (s/mm²)")
    ax.set_ylabel("normalised signal S/S0")
    ax.set_title(title or model.name)
    return fig or ax.figure


def plot_simulated_signals(items):
    """One row per (model, acquisition, params): signal vs angle and vs b.

    Parameters
    ----------
    items : list of (MultiCompartmentModel, Acquisition, ndarray)
    """
    fig = Figure(figsize=(10, 3.2 * len(items)))
    axes = fig.subplots(len(items), 2, squeeze=False)
    for (model, acq, params), (a1, a2) in zip(items, axes):
        if model.orientation_names:
            plot_signal_vs_angle(model, acq, params, ax=a1, title=f"{model.name} on {acq.name}")
        else:
            a1.set_axis_off()
        plot_signal_vs_b(model, acq, params, ax=a2, title=f"{model.name} on {acq.name}")
    fig.tight_layout()
    return fig
