"""The model arguments shared by the CLI verbs: ``--model``, ``--set``, ``--free``, ``--tissue``.

``--model`` takes a registered family (``noddi``...) or the path of a model spec written
by ``model.to_json()`` or the ModelComposer. ``--set NAME=VALUE`` fixes a free parameter or
changes a fixed setting; ``VALUE`` is in the parameter's display unit (µm²/ms for
diffusivities, µm for sizes) unless it carries a unit (``0.6e-9m2/s``, ``3um``).
"""

from __future__ import annotations

import re

from ..units import MM2_PER_S, MS, UM, UM2_PER_MS

#: Units accepted after a ``--set`` value (normalised: µ -> u, ² -> 2, no spaces).
SET_UNITS = {"m2/s": 1.0, "um2/ms": UM2_PER_MS, "mm2/s": MM2_PER_S, "m": 1.0, "um": UM,
             "mm": 1e-3, "s": 1.0, "ms": MS}
_VALUE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*)$")


def add_model_arguments(p, *, default: str = "noddi", fibres: bool = False) -> None:
    """``--model``, ``--set``, ``--free`` and ``--tissue`` on parser ``p``."""
    from ..models.registry import family_names

    p.add_argument("--model", default=default, metavar="NAME|SPEC.json",
                   help=f"model family ({' | '.join(family_names())}) or a model spec "
                        "(.json from model.to_json() or the ModelComposer)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a parameter or change a setting, in its display unit "
                        "(µm²/ms, µm) or with a unit: --set d_par=1.1, --set d_par=1.1e-9m2/s")
    p.add_argument("--free", action="append", default=[], metavar="NAME",
                   help="make a fixed setting a fitted parameter (e.g. --free d_par)")
    p.add_argument("--tissue", default=None, metavar="PRESET",
                   help="tissue preset of the family's settings: invivo (d∥ 1.7, d_iso 3.0 "
                        "µm²/ms), gm (d∥ 1.1), exvivo (d∥ 0.6, d_iso 2.0)")


def parse_value(model, name: str, text: str) -> float:
    """A ``--set`` value in SI: display unit of ``name`` unless ``text`` names a unit."""
    m = _VALUE.match(text)
    if not m:
        raise ValueError(f"--set {name}={text}: give a number, optionally with a unit "
                         f"({', '.join(SET_UNITS)}).")
    number, unit = float(m.group(1)), m.group(2).replace("µ", "u").replace("²", "2")
    unit = unit.replace("^2", "2").replace(" ", "")
    record = model.parameter_record(name)
    if unit:
        if unit not in SET_UNITS:
            raise ValueError(f"--set {name}={text}: unknown unit {m.group(2)!r}; use one of "
                             f"{', '.join(SET_UNITS)} or none ({record.display_unit or 'SI'}).")
        value = number * SET_UNITS[unit]
    else:
        value = number * record.display_scale
    value = float(f"{value:.12g}")
    lo, hi = record.bounds
    if not lo <= value <= hi:
        shown = record.display_unit or record.unit
        raise ValueError(f"--set {name}={text}: {value:.4g} {record.unit} is outside "
                         f"[{lo / record.display_scale:g}, {hi / record.display_scale:g}] "
                         f"{shown}; values without a unit are in {shown}.")
    return value


def model_from_args(args, n_fibres=None):
    """The model the arguments describe (family or spec, preset, ``--set``, ``--free``).

    Raises
    ------
    ValueError
        Naming the argument and the valid names.
    """
    from ..models.registry import family, has_fibres
    from ..models.spec import load_model

    model = load_model(args.model)
    tissue = getattr(args, "tissue", None)
    if tissue is not None:
        if model.family == "custom" or model.steps:
            raise ValueError("--tissue applies to a family name (--model noddi ...); a spec "
                             "carries its own settings (use --set).")
        model = family(model.family).build(model.n_fibres, tissue=tissue)
    for item in getattr(args, "set", None) or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--set {item}: give NAME=VALUE (e.g. --set d_par=1.1).")
        model = _constrained(model, "set", name.strip(), text)
    for name in getattr(args, "free", None) or []:
        model = _constrained(model, "free", name.strip())
    if n_fibres is not None and has_fibres(model):
        model = model.with_fibres(int(n_fibres))  # the constraints are replayed per fibre
    return model


def _constrained(model, kind: str, name: str, text: str | None = None):
    from ..models.steps import expand_name

    targets = expand_name(model, name) or [name]  # unknown: model.set/free raise, listing names
    for target in targets:
        try:
            if kind == "set":
                model = model.set(target, parse_value(model, target, text))
            else:
                model = model.free(target)
        except ValueError as err:
            msg = str(err).removeprefix("parameter: ")
            raise ValueError(msg if msg.startswith("--") else f"--{kind} {name}: {msg}") from None
    return model
