"""The one fitting registry: every method, the engines that can run it, their options.

A plain table built at import with real imports. :func:`~microlearn.fitting.fit`,
``microlearn fit --explain``, ``fit.json``, the command line and the panels all read it:
the engine a fit reports is the engine that ran, chosen by :func:`choose` — the first
engine of the method's list whose ``why_not(model, acq)`` is None (compiled engines
first, the generic NumPy engine last) — and every option is checked once, against the
keyword arguments the method's engines accept.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from .compiled.engines import CompiledInteriorPointEngine, CompiledMixEngine
from .compiled.noddi_fast import NoddiInteriorPointEngine, NoddiMixEngine
from .compiled.noddi_multi import NoddiMultiMixEngine
from .engines.dictionary import DictionaryEngine
from .engines.interior_point import InteriorPointEngine
from .engines.mix import MixEngine
from .engines.posterior import PosteriorEngine

#: Options of ``fit`` itself (not of an engine), valid for every method.
FIT_OPTIONS = {"fast": "False: skip the compiled engines (the generic NumPy engine runs)"}


@dataclass(frozen=True)
class Method:
    """A fitting method and the engines that run it, tried in order.

    Attributes
    ----------
    name : str
        The method's name (``--method``).
    summary : str
        One line: what the method does.
    engines : tuple of type
        Engine classes, compiled ones first; the last is the generic engine.
    """

    name: str
    summary: str
    engines: tuple

    @property
    def generic(self):
        """The generic (NumPy) engine: fits any model the method can fit."""
        return self.engines[-1]

    @property
    def options(self) -> list[str]:
        """Every option name an engine of this method accepts, plus ``fit``'s own."""
        names = set(FIT_OPTIONS)
        for cls in self.engines:
            for klass in cls.__mro__:
                init = klass.__dict__.get("__init__")
                if init is None:
                    continue
                for p in inspect.signature(init).parameters.values():
                    if p.kind == p.KEYWORD_ONLY:
                        names.add(p.name)
        return sorted(names)

    def __call__(self, model, acq, **options):
        """The engine ``fit`` would run for ``model`` on ``acq``, constructed."""
        check_options(self.name, options)
        fast = options.pop("fast", True)
        return choose(self.name, model, acq, fast=fast)(model, acq, **options)

    def fits(self, model) -> bool:
        """True when the generic engine can fit ``model`` (e.g. posterior: no orientations)."""
        return getattr(self.generic, "fits", lambda m: True)(model)


METHODS = {m.name: m for m in (
    Method("mix", "MIX: grid search with NNLS fractions, then Levenberg–Marquardt on the "
           "Rician floor", (NoddiMixEngine, NoddiMultiMixEngine, CompiledMixEngine,
                            MixEngine)),
    Method("interior-point", "the same start, then a log-barrier interior point that keeps "
           "every bounded parameter strictly inside its bounds",
           (NoddiInteriorPointEngine, CompiledInteriorPointEngine, InteriorPointEngine)),
    Method("dictionary", "NNLS over a dictionary of signals (a baseline: no refinement)",
           (DictionaryEngine,)),
    Method("posterior", "likelihood-weighted mean over prior samples (orientation-free "
           "models: SMT, MC-SMT, SANDI)", (PosteriorEngine,)),
)}


def method(name: str) -> Method:
    """The :class:`Method` called ``name``; a clear error listing the valid ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown fitting method {name!r}; choose one of "
                         f"{sorted(METHODS)}.") from None


def method_names() -> list[str]:
    """Every method name, sorted."""
    return sorted(METHODS)


def methods_for(model) -> list[str]:
    """The methods that can fit ``model`` (``posterior`` needs a model without orientations)."""
    return [name for name in method_names() if METHODS[name].fits(model)]


def check_options(name: str, options: dict) -> None:
    """Refuse options no engine of method ``name`` accepts, listing the valid ones."""
    valid = method(name).options
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"method {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"valid options: {', '.join(valid)}.")


def why_not(cls, model, acq) -> str | None:
    """Why engine ``cls`` cannot fit ``model`` on ``acq`` (None when it can)."""
    reason = getattr(cls, "why_not", None)
    if reason is not None:
        return reason(model, acq)
    if not getattr(cls, "fits", lambda m: True)(model):
        return f"needs {getattr(cls, 'REQUIRES', 'another model')}"
    return None


def choose(name: str, model, acq, *, fast: bool = True):
    """The engine class that runs method ``name`` for ``model`` on ``acq``.

    Parameters
    ----------
    fast : bool
        False skips every engine but the generic one.
    """
    m = method(name)
    for cls in m.engines[:-1] if fast else ():
        if why_not(cls, model, acq) is None:
            return cls
    return m.generic


def explain(name: str, model, acq, *, fast: bool = True) -> list[str]:
    """Lines saying, engine by engine, whether it applies to ``model`` on ``acq`` and why,
    and which one runs."""
    m = method(name)
    chosen = choose(name, model, acq, fast=fast)
    lines = [f"method {name!r} ({m.summary}) for model {model.name!r} ({model.family}), "
             f"{acq.n_measurements} measurements:"]
    for cls in m.engines:
        kind = "generic" if cls is m.generic else "compiled"
        reason = why_not(cls, model, acq) if (fast or cls is m.generic) else "fast=False"
        mark = "+" if cls is chosen else "-" if reason else " "
        state = "runs" if cls is chosen else (f"does not apply: {reason}" if reason
                                              else "applies (an earlier engine runs)")
        lines.append(f"  {mark} {cls.__name__} ({kind}): {state}")
    doc = (chosen.__doc__ or "").strip().splitlines()
    lines.append(f"runs {chosen.__name__}: {doc[0] if doc else ''}")
    return lines


__all__ = ["FIT_OPTIONS", "METHODS", "Method", "check_options", "choose", "explain", "method",
           "method_names", "methods_for", "why_not"]
