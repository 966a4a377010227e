"""The boundary with files: readers of every acquisition form (:mod:`.readers`)."""

from .readers import (
    InputFiles,
    find_bids,
    find_inputs,
    read_acquisition,
    read_fsl,
    read_mrtrix,
    read_scheme,
    read_sidecar,
)

__all__ = ["InputFiles", "find_bids", "find_inputs", "read_acquisition", "read_fsl",
           "read_mrtrix", "read_scheme", "read_sidecar"]
