"""Batched fitting: MIX, interior point, dictionary and posterior engines (generic and compiled)."""

from .api import FITTERS, FitResult, fit, methods_for
from .model import Model

__all__ = ["FITTERS", "FitResult", "Model", "fit", "methods_for"]
