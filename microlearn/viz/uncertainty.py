"""Calibration figure of a learned (or Cramér–Rao) std: nominal vs observed coverage."""

from __future__ import annotations

from matplotlib.figure import Figure


def plot_coverage(curves: dict, *, title: str = "interval coverage"):
    """Observed against nominal coverage of ``mean ± z std`` intervals, one line per map.

    Parameters
    ----------
    curves : dict of str to (levels, coverage)
        From :func:`microlearn.learning.uncertainty.coverage_curve`, by map name.
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(3.6, 3.4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for name, (levels, cover) in curves.items():
        ax.plot(levels, cover, "o-", ms=3, label=name)
    ax.axhspan(0.85, 0.95, xmin=0.85, xmax=0.95, color="0.85", zorder=0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("share of truths inside")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
