"""The fitting choices a command or a panel offers, asked of the fitting layer in one place.

Commands and panels call ``run/`` only; these small calls give them what they show or check
before a fit: the method names, whether a model can have its fibre count chosen per voxel
(``--n-fibres auto``), the lines saying which engine will run (``fit --explain``), and the
warm-up of an engine's compiled kernels. The fit itself is :func:`fit_volume`
(:mod:`microlearn.run.fit_volume`) for a dataset on disk and
:func:`~microlearn.run.compare.run_method` for arrays in memory.
"""

from __future__ import annotations


def fitting_methods(model=None) -> list[str]:
    """Names of the fitting methods (``mix``, ``interior-point``, ...).

    Parameters
    ----------
    model : MultiCompartmentModel, optional
        Only the methods that can fit this model (``posterior`` needs no orientations).
    """
    from ..fitting.registry import method_names, methods_for

    return method_names() if model is None else methods_for(model)


def check_auto_fibres(model) -> None:
    """Raise a ValueError unless ``model`` (name, spec or model) is a fibre model whose fibre
    count can be chosen per voxel (0–3 fibres, ``--n-fibres auto``)."""
    from ..fitting.selection import check_fibre_model

    check_fibre_model(model)


def explain_method(method: str, model, acq) -> list[str]:
    """Lines saying which engine ``method`` runs for ``model`` on ``acq`` (the spherical
    means of ``acq`` for a direction-averaged model), and why."""
    from ..fitting.api import fitted_acquisition
    from ..fitting.registry import explain

    return explain(method, model, fitted_acquisition(model, acq))


def warm_up(model="noddi", n_fibres=1, method: str = "mix") -> float:
    """Load (or compile and cache) the kernels ``method`` uses for ``model``; seconds taken.

    Parameters
    ----------
    model : str, dict or MultiCompartmentModel
    n_fibres : int or "auto"
    method : str
    """
    from ..fitting.compiled.warm import warm_up as warm

    return warm(model, n_fibres, method)
