"""Reading and writing in one import: ``from microlearn.io import load_dataset, write_maps``.

The code lives in :mod:`microlearn.data.dataset` (datasets on disk, loading, validation)
and :mod:`microlearn.data.writers` (outputs that never lose a user's files).
"""

from .data.dataset import (
    HCP_FILES,
    PHANTOM_AFFINE,
    Dataset,
    load_acquisition,
    load_dataset,
    load_maps,
    load_nifti,
)
from .data.voxels import validate_signal
from .data.writers import save_nifti_atomic, staged_output, write_json, write_maps

__all__ = ["HCP_FILES", "PHANTOM_AFFINE", "Dataset", "load_acquisition", "load_dataset",
           "load_maps", "load_nifti", "save_nifti_atomic", "staged_output", "validate_signal",
           "write_json", "write_maps"]
