"""Constraint steps: how a model records what was done to it, and replays it.

A model built by a family factory or by ``compose`` remembers its base (``recipe``) and
every constraint applied after it (``steps``: fix, tie, tortuosity, set, free). Replaying
the steps on the same base rebuilt with another fibre count gives the same model with more
or fewer fibres; :func:`model_to_spec` writes base and steps as a JSON-ready dict.
"""

from __future__ import annotations

import json

FORMAT, VERSION = "microlearn-model", 1
#: Constraint steps: name -> number of arguments after the step name.
STEPS = {"fix": 2, "tie": 2, "tortuosity": 4, "set": 2, "free": 1}


def model_to_spec(model) -> dict:
    """The JSON-ready recipe of ``model`` (see the module docstring)."""
    if not model.recipe:
        raise ValueError(f"model {model.name!r} has no recipe: build it with compose() or a "
                         "registered family to save it.")
    spec = {"format": FORMAT, "version": VERSION}
    spec.update(json.loads(json.dumps(dict(model.recipe))))
    spec["steps"] = [list(s) for s in model.steps]
    return spec


def expand_name(model, name: str) -> list[str]:
    """``name`` itself when the model knows it, else its per-fibre names (``odi_1``...)."""
    from .relaxation import relaxation_names

    known = set(model.parameter_names) | set(model.setting_names) | set(relaxation_names(model))
    if name in known:
        return [name]
    return [f"{name}_{i}" for i in range(1, 4) if f"{name}_{i}" in known]


def apply_steps(model, steps, *, strict: bool = True):
    """Replay constraint steps on ``model``.

    Parameters
    ----------
    model : MultiCompartmentModel
    steps : sequence of sequence
        ``[step, *arguments]`` as in :data:`STEPS`.
    strict : bool
        Raise for a step naming nothing in the model; otherwise skip it (a fibre-count
        variant, e.g. 0 fibres, lacks the fibre parameters).

    Returns
    -------
    MultiCompartmentModel
    """
    for step in steps:
        if not isinstance(step, (list, tuple)) or not step or step[0] not in STEPS:
            raise ValueError(f"model spec: bad step {step!r}; each step is [name, args...] "
                             f"with name one of {sorted(STEPS)}.")
        kind, args = step[0], list(step[1:])
        if len(args) != STEPS[kind]:
            raise ValueError(f"model spec: step {kind!r} takes {STEPS[kind]} argument(s), "
                             f"got {args!r}.")
        if kind in ("fix", "set", "free"):
            targets = expand_name(model, str(args[0]))
            if not targets:
                if strict:
                    getattr(model, kind)(*args)  # raises, listing the valid names
                continue
            for name in targets:
                model = model.free(name) if kind == "free" else getattr(model, kind)(
                    name, float(args[1]))
        elif kind == "tie":
            model = model.tie(*args)
        else:
            model = model.tortuosity(args[0], d_par=args[1], intra=args[2], extra=args[3])
    return model


__all__ = ["FORMAT", "STEPS", "VERSION", "apply_steps", "expand_name", "model_to_spec"]
