"""Fibre crossings: 0–3 fibre populations per voxel and per-fibre microstructure.

* :func:`estimate_fibres` — fibre count and directions: plain DIPY CSD peak counting
  (``csd``), DIPY multi-shell multi-tissue CSD + HMRF (``msmt``), or model selection
  between 0–3 fibre fits (``select``, default).
* :func:`~microlearn.fitting.selection.fit_auto` — ``microlearn fit --n-fibres auto``
  (model selection is a fitting method: it lives in :mod:`microlearn.fitting.selection`,
  which reads its CSD inputs from here; the name is also reachable from this package).
* :func:`shore_features` — DIPY SHORE scalars (RTOP, MSD) for learning features.
* :func:`crossing_dataset` / :func:`evaluate_fibres` — a simulated crossing set and its
  scores (accuracy, confusion matrix, angular error, per-fibre ODI/ICVF errors).
* :func:`cramer_rao_per_fibre` — how precisely per-fibre ODI/ICVF can be known at all.
"""

from .bounds import cramer_rao_per_fibre
from .dipy_tools import csd_peaks, msmt_peaks, shore_features, tensor_scalars, tissue_classes
from .estimate import METHODS, FibreEstimate, estimate_fibres
from .evaluation import (
    CrossingSet,
    confusion_matrix,
    count_scores,
    crossing_dataset,
    evaluate_fibres,
    match_fibres,
)

__all__ = ["AutoFitResult", "CrossingSet", "FibreEstimate", "METHODS", "check_fibre_model",
           "confusion_matrix", "count_scores", "cramer_rao_per_fibre", "crossing_dataset",
           "csd_peaks", "estimate_fibres", "evaluate_fibres", "fit_auto", "match_fibres",
           "msmt_peaks", "select_fibres", "shore_features", "tensor_scalars", "tissue_classes"]

#: Names of :mod:`microlearn.fitting.selection` reachable from here (loaded on first use:
#: fitting imports this package for its CSD inputs, so an eager import would be a circle).
_SELECTION = ("AutoFitResult", "check_fibre_model", "fit_auto", "select_fibres")


def __getattr__(name):
    if name in _SELECTION:
        from ..fitting import selection

        return getattr(selection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
