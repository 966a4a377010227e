"""Fibre crossings: the DIPY side of 0–3 fibre populations per voxel, and their scores.

* :func:`peak_fibres` — fibre count and directions from DIPY's fODF peaks: single-shell
  CSD (``csd``) or multi-shell multi-tissue CSD + HMRF (``msmt``).
* :func:`csd_peaks`, :func:`msmt_peaks`, :func:`tensor_scalars`, :func:`tissue_classes` —
  the DIPY pieces; the CSD peaks are the candidates of model selection.
* :func:`shore_features` — DIPY SHORE scalars (RTOP, MSD) for learning features.
* :func:`crossing_dataset` / :func:`evaluate_fibres` — a simulated crossing set and its
  scores (accuracy, confusion matrix, angular error, per-fibre ODI/ICVF errors).

Peaks feed selection, not the other way: model selection between 0–3 fibre fits
(``microlearn fit --n-fibres auto``) is a fitting method,
:func:`microlearn.fitting.selection.fit_auto`; :func:`microlearn.fitting.fibres.estimate_fibres`
chooses between it and the peaks; :func:`microlearn.fitting.crossing_bounds.cramer_rao_per_fibre`
says how precisely per-fibre ODI/ICVF can be known at all.
"""

from .dipy_tools import csd_peaks, msmt_peaks, shore_features, tensor_scalars, tissue_classes
from .estimate import PEAK_METHODS, FibreEstimate, peak_fibres
from .evaluation import (
    CrossingSet,
    confusion_matrix,
    count_scores,
    crossing_dataset,
    evaluate_fibres,
    match_fibres,
)

__all__ = ["CrossingSet", "FibreEstimate", "PEAK_METHODS", "confusion_matrix", "count_scores",
           "crossing_dataset", "csd_peaks", "evaluate_fibres", "match_fibres", "msmt_peaks",
           "peak_fibres", "shore_features", "tensor_scalars", "tissue_classes"]
