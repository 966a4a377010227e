"""Compiled (numba) kernels and the accelerated engines built on them.

Each accelerated engine class declares what it can fit — ``applies(model, acq)`` and a
one-line ``REQUIRES`` — and is listed here under its method. ``fit`` runs the first engine
of the list that applies, else the generic engine of :mod:`microlearn.fitting.engines`; a
new compiled path is one module plus one entry here. Their OpenMP threads wait passively
(see :func:`microlearn._numba_cache.passive_openmp`).
"""

from __future__ import annotations

from importlib import import_module

#: Method -> accelerated engines, tried in order (``module:Class``).
COMPILED_ENGINES = {
    "mix": ("noddi_fast:NoddiMixEngine", "noddi_multi:NoddiMultiMixEngine",
            "activeax_fast:ActiveAxMixEngine"),
    "interior-point": ("noddi_fast:NoddiInteriorPointEngine",),
}
#: Method -> the generic engine that fits any model.
GENERIC_ENGINES = {"mix": "..engines.mix:MixEngine",
                   "interior-point": "..engines.interior_point:InteriorPointEngine",
                   "dictionary": "..engines.dictionary:DictionaryEngine",
                   "posterior": "..engines.posterior:PosteriorEngine"}


def _load(ref: str):
    module, _, name = ref.partition(":")
    if not module.startswith("."):
        module = "." + module
    return getattr(import_module(module, __name__), name)


def candidates(method: str) -> list:
    """The accelerated engine classes registered for ``method``, in order."""
    return [_load(ref) for ref in COMPILED_ENGINES.get(method, ())]


def generic(method: str):
    """The generic engine class of ``method``."""
    return _load(GENERIC_ENGINES[method])


def choose(method: str, model, acq, *, fast: bool = True):
    """The engine class that runs ``method`` for ``model`` on ``acq``."""
    if fast:
        for cls in candidates(method):
            if cls.applies(model, acq):
                return cls
    return generic(method)


def explain(method: str, model, acq, *, fast: bool = True) -> list[str]:
    """Lines saying which engine runs for ``model`` on ``acq`` and why."""
    chosen = choose(method, model, acq, fast=fast)
    lines = [f"method {method!r} for model {model.name!r} ({model.family}), "
             f"{acq.n_measurements} measurements:"]
    for cls in candidates(method):
        ok = fast and cls.applies(model, acq)
        need = getattr(cls, "REQUIRES", "")
        lines.append(f"  {'+' if ok else '-'} {cls.__name__} (compiled): "
                     f"{'applies' if ok else 'does not apply'}; needs {need}")
    gen = generic(method)
    scope = getattr(gen, "REQUIRES", "any model")
    lines.append(f"  {'+' if chosen is gen else ' '} {gen.__name__} (generic): fits {scope}")
    doc = (chosen.__doc__ or "").strip().splitlines()
    lines.append(f"runs {chosen.__name__}: {doc[0] if doc else ''}")
    return lines
