"""Compartment T2: echo-time decay per compartment instance, opt-in.

A :class:`~microlearn.models.core.MultiCompartmentModel` has a ``relaxation`` mapping,
empty by default. Each entry maps a compartment *instance* name to a
:class:`~microlearn.models.core.Link`:

- ``Link("fixed", value=T2)``: a fixed T2 in s (``model.set("t2_extra", 0.05)``);
- ``Link("free", source=name)``: the value of free parameter ``name`` (``model.free(
  "t2_intra")`` adds free parameter ``t2_intra``; ``model.tie("t2_extra", "t2_intra")``
  makes two instances share one).

With no entry the model is unchanged: its signal is S/S0 at every echo time and
:func:`~microlearn.fitting.fit` divides each TE group by its own b0 mean. With entries
(``model.relaxed``) the signal is relative to one S0 at TE = 0 (b = 0)::

    S(TE, b, ...) / S0 = Σ_i f_i · exp(−TE / T2_i) · S_i(b, ...)

instances without an entry do not decay (T2 = ∞), and ``fit`` divides every measurement
by the b0 mean of the shortest echo time, so the fit sees the TE information. An
acquisition without TE gives no decay.

Names accepted by ``set``/``free``: ``t2`` (every instance, one shared value) and
``t2_<instance>`` (``t2_stick``, ``t2_zeppelin``, ``t2_ball`` in NODDI; with several fibres
``t2_stick_1``...). Values are in s (the CLI's ``--set t2_ball=2000`` is in ms).

For a compiled assembly: read ``model.relaxation`` (instance -> Link) and multiply each
compartment's signal by ``exp(-TE/T2)`` with T2 from the fixed value or the named free
parameter; :func:`decay` is the NumPy reference.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..parameters import Parameter

#: The record of a compartment T2 (s): bounds 5 ms – 5 s, prior 40–150 ms (white matter).
T2 = Parameter("t2", "s", (5e-3, 5.0), 0.1, kind="other",
               description="Transverse relaxation time T2 of a compartment.",
               display_unit="ms", prior_bounds=(40e-3, 150e-3))
PREFIX = "t2"


def _base(inst: str) -> str:
    head, _, tail = inst.rpartition("_")
    return head if head and tail.isdigit() else inst


def relaxation_names(model) -> list[str]:
    """Every name ``set``/``free`` accept for T2: ``t2``, ``t2_<instance>`` and, with several
    fibres, ``t2_<base>`` (``t2_stick``: every fibre's stick, one shared value)."""
    insts = list(model.compartment_names)
    bases = [b for b in dict.fromkeys(_base(i) for i in insts) if b not in insts]
    return [PREFIX] + [f"{PREFIX}_{n}" for n in insts + bases]


def targets(model, name: str) -> list[str]:
    """Instance names a T2 name refers to (empty when ``name`` is not a T2 name)."""
    if name == PREFIX:
        return list(model.compartment_names)
    if not name.startswith(PREFIX + "_"):
        return []
    rest = name[len(PREFIX) + 1:]
    if rest in model.compartment_names:
        return [rest]
    return [i for i in model.compartment_names if _base(i) == rest]


def t2_values(model, values) -> dict[str, np.ndarray]:
    """T2 (s) of every relaxing instance, from the free parameter values (a dict)."""
    out = {}
    for inst, link in model.relaxation.items():
        v = link.value if link.kind == "fixed" else values[link.source]
        out[inst] = np.asarray(v, dtype=float)
    return out


def decay(model, acq, values) -> dict[str, np.ndarray]:
    """``exp(−TE/T2_i)`` of every relaxing instance.

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
    values : dict of str to ndarray
        Free parameters in SI units, ``(*batch,)`` each.

    Returns
    -------
    dict of str to ndarray, shape (*batch, n_measurements) or (n_measurements,)
        Empty without relaxation or without TE.
    """
    if not model.relaxation or acq.TE is None:
        return {}
    return {inst: np.exp(-acq.TE / t2[..., None]) for inst, t2 in
            t2_values(model, values).items()}


def set_t2(model, name: str, value: float):
    """``model.set`` for a T2 name: a new model whose instances have T2 ``value`` (s)."""
    from .core import Link

    lo, hi = T2.bounds
    if not (np.isfinite(value) and lo <= value <= hi):
        raise ValueError(f"set: {name} must be a T2 in s within [{lo:g}, {hi:g}], "
                         f"got {value!r}.")
    relax = dict(model.relaxation)
    relax.update({inst: Link("fixed", value=float(value)) for inst in targets(model, name)})
    return replace(model, relaxation=relax, steps=model.steps + (("set", name, float(value)),))


def free_t2(model, name: str):
    """``model.free`` for a T2 name: a new model with free parameter ``name`` as the T2 of
    its instances (one shared value)."""
    from .core import Link

    if name in model.parameter_names:
        raise ValueError(f"free: {name!r} is already a free parameter of {model.name!r}.")
    relax = dict(model.relaxation)
    relax.update({inst: Link("free", source=name) for inst in targets(model, name)})
    return replace(model, relaxation=relax,
                   free_parameters=model.free_parameters + (T2.renamed(name),),
                   targets=model.targets + (name,), steps=model.steps + (("free", name),))


def describe(model) -> str:
    """One line listing the T2 of every relaxing instance ('' without relaxation)."""
    if not model.relaxation:
        return ""
    parts = [f"{inst}={link.source}" if link.kind == "free" else
             f"{inst}={link.value * 1e3:g} ms" for inst, link in model.relaxation.items()]
    return "  T2: " + ", ".join(parts) + " (one S0 at TE = 0)"


__all__ = ["PREFIX", "T2", "decay", "describe", "free_t2", "relaxation_names", "set_t2",
           "t2_values", "targets"]
