"""Model specs: a model saved as a small JSON recipe and loaded back, unchanged.

A spec names how the base model is built — a registered family with its fibre count and
settings, or the compartments of a composed model — and the constraints applied after it
(``fix``, ``tie``, ``tortuosity``, ``set``, ``free``), in order::

    {"format": "microlearn-model", "version": 1, "family": "noddi", "n_fibres": 1,
     "settings": {"d_par": 1.7e-09, "d_iso": 3e-09}, "steps": [["set", "d_par", 1.1e-09]]}

    {"format": "microlearn-model", "version": 1, "name": "stick-ball",
     "compose": [{"compartment": "Stick", "name": "stick"},
                 {"compartment": "Ball", "name": "ball"}],
     "steps": [["fix", "ball_d_iso", 3e-09]]}

Values are SI. Loading validates every name and says which ones are valid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .core import MultiCompartmentModel, compose

FORMAT, VERSION = "microlearn-model", 1
#: Constraint steps: name -> number of arguments after the step name.
STEPS = {"fix": 2, "tie": 2, "tortuosity": 4, "set": 2, "free": 1}


def model_to_spec(model: MultiCompartmentModel) -> dict:
    """The JSON-ready recipe of ``model`` (see the module docstring)."""
    if not model.recipe:
        raise ValueError(f"model {model.name!r} has no recipe: build it with compose() or a "
                         "registered family to save it.")
    spec = {"format": FORMAT, "version": VERSION}
    spec.update(json.loads(json.dumps(dict(model.recipe))))
    spec["steps"] = [list(s) for s in model.steps]
    return spec


def save_model(model: MultiCompartmentModel, path=None) -> str:
    """The spec of ``model`` as JSON text, written atomically to ``path`` when given.

    Parameters
    ----------
    model : MultiCompartmentModel
    path : str or Path, optional
        Output file (``.json``).

    Returns
    -------
    str
        The JSON text.
    """
    spec = model_to_spec(model)
    if path is not None:
        from ..io import write_json

        write_json(Path(path), spec)
    return json.dumps(spec, indent=2) + "\n"


def _compartment(kind: str):
    from .. import compartments

    names = [n for n in compartments.__all__ if isinstance(getattr(compartments, n), type)
             and issubclass(getattr(compartments, n), compartments.Compartment)
             and n != "Compartment"]
    if kind not in names:
        raise ValueError(f"model spec: unknown compartment {kind!r}; valid compartments: "
                         f"{', '.join(sorted(names))}.")
    return getattr(compartments, kind)()


def _expanded(model: MultiCompartmentModel, name: str) -> list[str]:
    """``name`` itself when the model knows it, else its per-fibre names (``odi_1``...)."""
    known = set(model.parameter_names) | set(model.setting_names)
    if name in known:
        return [name]
    return [f"{name}_{i}" for i in range(1, 4) if f"{name}_{i}" in known]


def apply_steps(model: MultiCompartmentModel, steps, *, strict: bool = True):
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
            targets = _expanded(model, str(args[0]))
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


def model_from_spec(spec: Mapping, *, strict: bool = True) -> MultiCompartmentModel:
    """Build the model a spec describes.

    Parameters
    ----------
    spec : mapping
        A parsed spec (see the module docstring).
    strict : bool
        See :func:`apply_steps`.

    Returns
    -------
    MultiCompartmentModel

    Raises
    ------
    ValueError
        For a spec of another format, an unknown family, compartment or parameter name.
    """
    if not isinstance(spec, Mapping) or spec.get("format", FORMAT) != FORMAT:
        raise ValueError(f"model spec: not a {FORMAT} spec (give the JSON written by "
                         "model.to_json() or the ModelComposer).")
    if int(spec.get("version", VERSION)) > VERSION:
        raise ValueError(f"model spec: version {spec['version']} is newer than this "
                         f"microlearn reads ({VERSION}); upgrade microlearn.")
    if "family" in spec:
        from .registry import family

        record = family(spec["family"])
        model = record.build(spec.get("n_fibres"), settings=spec.get("settings") or None)
    elif "compose" in spec:
        parts = spec["compose"]
        if not isinstance(parts, list) or not parts:
            raise ValueError("model spec: 'compose' must be a non-empty list of "
                             "{'compartment': ..., 'name': ...}.")
        comps = [_compartment(str(p.get("compartment"))) for p in parts]
        names = [str(p.get("name") or c.name) for p, c in zip(parts, comps)]
        model = compose(comps, names=names, name=str(spec.get("name", "custom")))
    else:
        raise ValueError("model spec: give either 'family' (a built-in) or 'compose' "
                         "(a list of compartments).")
    return apply_steps(model, spec.get("steps", []), strict=strict)


def load_model(source) -> MultiCompartmentModel:
    """A model from a spec file, JSON text, a parsed spec or a family name.

    Parameters
    ----------
    source : str, Path, mapping or MultiCompartmentModel
        Path to a ``.json`` spec, the JSON text itself, a parsed spec, a registered family
        name (``"noddi"``) or a model (returned as is).

    Returns
    -------
    MultiCompartmentModel
    """
    if isinstance(source, MultiCompartmentModel):
        return source
    if isinstance(source, Mapping):
        return model_from_spec(source)
    text = os.fspath(source)
    if text.lstrip().startswith("{"):
        return model_from_spec(_parse(text, "model spec"))
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ValueError(f"--model {text}: no such model spec file; give a family name "
                             "or the path of a spec written by model.to_json().")
        return model_from_spec(_parse(path.read_text(), str(path)))
    from .registry import family

    return family(text).build()


def _parse(text: str, source: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err.msg} at line {err.lineno}).") from None


def model_with_fibres(model: MultiCompartmentModel, n_fibres: int) -> MultiCompartmentModel:
    """``model`` rebuilt with ``n_fibres`` populations, its settings and steps kept."""
    recipe = dict(model.recipe)
    if "family" not in recipe:
        raise ValueError(f"model {model.name!r} is composed with {model.n_fibres} fibre "
                         f"population(s); it cannot be rebuilt with {n_fibres}.")
    from .registry import family

    record = family(recipe["family"])
    if not record.has_fibres:
        return model
    base = record.build(n_fibres, settings=recipe.get("settings") or None)
    return apply_steps(base, model.steps, strict=False)


def resolve_model(model, n_fibres: int | None = None) -> MultiCompartmentModel:
    """The model every layer works with: from a family name, a spec or a model.

    Parameters
    ----------
    model : str, Path, mapping or MultiCompartmentModel
        As :func:`load_model`.
    n_fibres : int, optional
        Rebuild with this many fibre populations (ignored by families without fibres).

    Returns
    -------
    MultiCompartmentModel
    """
    m = load_model(model)
    if n_fibres is not None and m.n_fibres != int(n_fibres):
        if "family" in m.recipe and not _family_has_fibres(m):
            return m
        m = m.with_fibres(int(n_fibres))
    return m


def _family_has_fibres(model) -> bool:
    from .registry import family_of

    record = family_of(model)
    return record is None or record.has_fibres


__all__ = ["apply_steps", "load_model", "model_from_spec", "model_reference", "model_to_spec",
           "model_with_fibres", "resolve_model", "save_model"]


def model_reference(model):
    """How saved records refer to ``model``: the family name of an unmodified built-in
    (``"noddi"``), else its spec (a dict). :func:`resolve_model` accepts both."""
    m = load_model(model)
    recipe = dict(m.recipe)
    if "family" in recipe and not m.steps:
        from .registry import family

        record = family(recipe["family"])
        default = record.build(recipe.get("n_fibres"))
        if dict(default.recipe).get("settings") == recipe.get("settings"):
            return recipe["family"]
    return model_to_spec(m)
