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
import math
import os
from collections.abc import Mapping
from pathlib import Path

from ..names import check_name, check_names
from .core import MultiCompartmentModel, compose
from .registry import family, family_of
from .steps import FORMAT, VERSION, apply_steps, model_to_spec


def _compartment(kind: str):
    from .. import compartments

    names = [n for n in compartments.__all__ if isinstance(getattr(compartments, n), type)
             and issubclass(getattr(compartments, n), compartments.Compartment)
             and n != "Compartment"]
    if kind not in names:
        raise ValueError(f"model spec: unknown compartment {kind!r}; valid compartments: "
                         f"{', '.join(sorted(names))}.")
    return getattr(compartments, kind)()


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
    _check_numbers(spec)
    if int(spec.get("version", VERSION)) > VERSION:
        raise ValueError(f"model spec: version {spec['version']} is newer than this "
                         f"microlearn reads ({VERSION}); upgrade microlearn.")
    if "family" in spec:
        record = family(spec["family"])
        model = record.build(spec.get("n_fibres"), settings=spec.get("settings") or None)
    elif "compose" in spec:
        parts = spec["compose"]
        if not isinstance(parts, list) or not parts:
            raise ValueError("model spec: 'compose' must be a non-empty list of "
                             "{'compartment': ..., 'name': ...}.")
        if not all(isinstance(p, Mapping) for p in parts):
            raise ValueError("model spec: each entry of 'compose' must be "
                             "{'compartment': ..., 'name': ...}.")
        comps = [_compartment(str(p.get("compartment"))) for p in parts]
        names = [p.get("name") or c.name for p, c in zip(parts, comps)]
        # compartment names become parameter and map file names (``<name>_mu.nii.gz``)
        check_names(names, field="compartment name", source="model spec")
        model = compose(comps, names=names, name=check_name(
            spec.get("name", "custom"), field="name", source="model spec", dash=True))
    else:
        raise ValueError("model spec: give either 'family' (a built-in) or 'compose' "
                         "(a list of compartments).")
    return apply_steps(model, spec.get("steps", []), strict=strict)


def _finite(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _check_numbers(spec: Mapping) -> None:
    """The numbers of a spec make sense: a version, a fibre count 0-3, finite settings and
    step values (names are checked where they are used)."""
    version = spec.get("version", VERSION)
    if not (isinstance(version, int) and not isinstance(version, bool)):
        raise ValueError(f"model spec: version {version!r} is not a number; give the JSON "
                         "written by model.to_json().")
    n = spec.get("n_fibres")
    if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 3):
        raise ValueError(f"model spec: n_fibres {n!r} is not a fibre count 0-3.")
    settings = spec.get("settings") or {}
    if not isinstance(settings, Mapping) or not all(_finite(v) for v in settings.values()):
        raise ValueError("model spec: settings must map setting names to finite numbers (SI).")
    steps = spec.get("steps", [])
    if not isinstance(steps, list):
        raise ValueError("model spec: steps must be a list of [step, arguments...].")
    for step in steps:
        args = step[1:] if isinstance(step, list) else []
        if not all(isinstance(a, str) and len(a) <= 200 or _finite(a) for a in args):
            raise ValueError(f"model spec: step {str(step)[:80]} holds a value that is not a "
                             "name or a finite number (SI).")


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
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a model spec (not text); give the JSON written by "
                             "model.to_json() or the ModelComposer.") from None
        return model_from_spec(_parse(text, str(path)))
    return family(text).build()


def _parse(text: str, source: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err.msg} at line {err.lineno}).") from None
    except RecursionError:
        raise ValueError(f"{source}: not a model spec (nested too deeply).") from None


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
        record = family_of(m)
        if record is not None and not record.has_fibres:
            return m  # e.g. IVIM: no fibres to add
        m = m.with_fibres(int(n_fibres))
    return m


__all__ = ["apply_steps", "load_model", "model_from_spec", "model_reference", "model_to_spec",
           "resolve_model"]


def model_reference(model):
    """How saved records refer to ``model``: the family name of an unmodified built-in
    (``"noddi"``), else its spec (a dict). :func:`resolve_model` accepts both."""
    m = load_model(model)
    recipe = dict(m.recipe)
    if "family" in recipe and not m.steps:
        record = family(recipe["family"])
        default = record.build(recipe.get("n_fibres"))
        if dict(default.recipe).get("settings") == recipe.get("settings"):
            return recipe["family"]
    return model_to_spec(m)
