"""Batched fitting engines: MIX, interior point and dictionary."""

from .api import FITTERS, FitResult, fit

__all__ = ["FITTERS", "FitResult", "fit"]
