"""Fibre crossings: 0–3 fibre populations per voxel and per-fibre microstructure.

* :func:`estimate_fibres` — fibre count and directions: plain DIPY CSD peak counting
  (``csd``), DIPY multi-shell multi-tissue CSD + HMRF (``msmt``), or model selection
  between 0–3 fibre fits (``select``, default).
* :func:`fit_auto` — ``microlearn fit --n-fibres auto``: voxels grouped by fibre count,
  each group fitted as a batch, one result with ``n_fibres`` and per-fibre maps.
* :func:`shore_features` — DIPY SHORE scalars (RTOP, MSD) for learning features.
* :func:`crossing_dataset` / :func:`evaluate_fibres` — a simulated crossing set and its
  scores (accuracy, confusion matrix, angular error, per-fibre ODI/ICVF errors).
* :func:`cramer_rao_per_fibre` — how precisely per-fibre ODI/ICVF can be known at all.
"""

from ..fitting.selection import AutoFitResult, check_fibre_model, fit_auto, select_fibres
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
