"""ipywidgets panels over the core: compose, simulate, fit or learn, compare.

Thin views (no numerics): each reads its widgets, calls microlearn's core and shows the
figures of :mod:`microlearn.viz`. Deployed as Voila dashboards from ``widgets/``.
"""

from .compare_panel import ComparePanel
from .fit_or_learn import FitOrLearn
from .model_composer import ModelComposer
from .signal_simulator import SignalSimulator
from .workshop import workshop

__all__ = ["ComparePanel", "FitOrLearn", "ModelComposer", "SignalSimulator", "workshop"]
