"""Batched fitting engines: MIX, interior point and dictionary."""

from .base import FITTERS, FitResult, fit

__all__ = ["FITTERS", "FitResult", "fit"]
