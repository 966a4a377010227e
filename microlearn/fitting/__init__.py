"""Batched fitting: MIX, interior point, dictionary and posterior engines (generic and compiled)."""

from .api import FITTERS, FitResult, fit, methods_for

__all__ = ["FITTERS", "FitResult", "fit", "methods_for"]
