"""Models: composition (:mod:`.core`), the built-in catalogue (:mod:`.builtin`) and the
registry of model families (:mod:`.registry`)."""

from .builtin import D_ISO_CSF, D_PAR_NODDI, MODELS, activeax, get_model, ivim, noddi, zcd
from .core import Link, MultiCompartmentModel, compose

__all__ = ["D_ISO_CSF", "D_PAR_NODDI", "MODELS", "Link", "MultiCompartmentModel", "activeax",
           "compose", "get_model", "ivim", "noddi", "zcd"]
