"""Models: composition (:mod:`.core`), the built-in catalogue (:mod:`.builtin`), the
registry of model families (:mod:`.registry`) and JSON specs (:mod:`.spec`)."""

from .builtin import D_ISO_CSF, D_PAR_NODDI, MODELS, activeax, ivim, noddi, zcd
from .core import Link, MultiCompartmentModel, compose
from .registry import FAMILIES, ModelFamily, family, family_of, get_model, register
from .spec import load_model, resolve_model

__all__ = ["D_ISO_CSF", "D_PAR_NODDI", "FAMILIES", "MODELS", "Link", "ModelFamily",
           "MultiCompartmentModel", "activeax", "compose", "family", "family_of", "get_model",
           "ivim", "load_model", "noddi", "register", "resolve_model", "zcd"]
