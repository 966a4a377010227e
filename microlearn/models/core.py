"""Multi-compartment models: composition, constraints, fibre populations.

A :class:`MultiCompartmentModel` is immutable. It holds named compartment instances,
one *link* per compartment parameter (free, fixed, tied or tortuous), and a
:class:`~microlearn.models.fractions.FractionRule` that turns free parameters into volume
fractions. Its free parameters form a :class:`ParameterSpace` whose names are the map
names written by ``fit``/``predict``. Constraints return new models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..compartments import Compartment, Dot
from ..parameters import Parameter, ParameterSpace, angles_to_cartesian
from . import relaxation as _t2
from .fractions import FractionRule, FreeFractions
from .steps import apply_steps, model_to_spec


@dataclass(frozen=True)
class Link:
    """How one compartment parameter gets its value.

    Attributes
    ----------
    kind : {"free", "fixed", "tortuosity"}
        ``free``: the value of free parameter ``source``; ``fixed``: ``value``;
        ``tortuosity``: d⊥ = d∥ · (1 - f_intra / (f_intra + f_extra)) with d∥ from
        compartment key ``source`` and the fractions of ``intra`` and ``extra``.
    source : str, optional
        Free parameter name (``free``) or compartment key ``"<instance>.<param>"``
        (``tortuosity``).
    value : float, optional
        Fixed value in SI units (``fixed``).
    intra, extra : str, optional
        Instance names of the intra- and extra-axonal compartments (``tortuosity``).
    """

    kind: str
    source: str | None = None
    value: float | None = None
    intra: str | None = None
    extra: str | None = None


@dataclass(frozen=True)
class MultiCompartmentModel:
    """A weighted sum of compartments with shared, fixed and tortuous parameters.

    Build one with :func:`compose` or a built-in (:func:`noddi`, :func:`activeax`,
    :func:`zcd`, :func:`ivim`). ``signal`` returns S/S0. Constraints (:meth:`fix`,
    :meth:`tie`, :meth:`tortuosity`) return new models.

    Attributes
    ----------
    name : str
        Model name (``"noddi"``, ``"noddi2"``, ``"custom"``...).
    compartments : tuple of (str, Compartment)
        Instance name and compartment, in order.
    links : mapping of str to Link
        How each compartment parameter ``"<instance>.<param>"`` gets its value.
    free_parameters : tuple of Parameter
        Non-fraction free parameters.
    fractions : FractionRule
        How the compartment fractions follow from the free fraction parameters.
    n_fibres : int
        Fibre populations (0–3).
    fibres : tuple of tuple of str
        Instance names of each fibre population's compartments.
    derived : mapping of str to callable
        Derived maps (e.g. ``kappa``, fibre-weighted means) from the free values.
    targets : tuple of str
        Maps a learned estimator predicts by default.
    family : str
        Registry family (``"noddi"``...) of a built-in, ``"custom"`` for a composed model.
    recipe : mapping
        How the base model was built (family, fibre count and settings, or the composed
        compartments): with ``steps``, what :meth:`to_spec` saves.
    steps : tuple of tuple
        Constraints applied after the base, in order (``("fix", name, value)``...).
    spherical_mean : bool
        True when the model describes direction-averaged (powder-averaged) signals.
    rebuild : callable, optional
        ``rebuild(n_fibres)`` -> the base model with another fibre count (family factories
        set it with their settings); :meth:`with_fibres` replays ``steps`` on it.
    relaxation : mapping of str to Link
        Compartment T2, opt-in (:mod:`microlearn.models.relaxation`): instance name ->
        ``Link("fixed", value=T2 in s)`` or ``Link("free", source=parameter)``. Empty (the
        default): no T2, S/S0 per echo time. Set with ``set/free("t2_<instance>")``.
    """

    name: str
    compartments: tuple[tuple[str, Compartment], ...]
    links: Mapping[str, Link]
    free_parameters: tuple[Parameter, ...]
    fractions: FractionRule
    n_fibres: int = 1
    fibres: tuple[tuple[str, ...], ...] = ()
    derived: Mapping[str, Callable] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    family: str = "custom"
    recipe: Mapping = field(default_factory=dict)
    steps: tuple[tuple, ...] = ()
    spherical_mean: bool = False
    rebuild: Callable | None = field(default=None, compare=False, repr=False)
    relaxation: Mapping[str, Link] = field(default_factory=dict)

    # ----------------------------------------------------------------- structure
    @property
    def parameters(self) -> ParameterSpace:
        """Free parameters (compartment parameters, then fraction parameters)."""
        return ParameterSpace(self.free_parameters + self.fractions.parameters)

    @property
    def parameter_names(self) -> list[str]:
        """Names of the free parameters (and of the fitted maps)."""
        return self.parameters.names

    @property
    def compartment_names(self) -> list[str]:
        """Instance names of the compartments, in order."""
        return [n for n, _ in self.compartments]

    @property
    def map_names(self) -> list[str]:
        """Every map a fit produces: free parameters then derived maps."""
        return self.parameter_names + [n for n in self.derived if n not in self.parameter_names]

    @property
    def orientation_names(self) -> list[str]:
        """Names of the free orientation parameters (one per fibre)."""
        return [p.name for p in self.parameters if p.kind == "orientation"]

    @property
    def nonlinear_names(self) -> list[str]:
        """Free parameters that are not fractions (the MIX global-search variables)."""
        return [p.name for p in self.free_parameters]

    def describe(self) -> str:
        """A readable summary of compartments, links and free parameters."""
        lines = [f"model {self.name!r} with {self.n_fibres} fibre population(s)"]
        for inst, comp in self.compartments:
            parts = []
            for p in comp.parameters:
                link = self.links[f"{inst}.{p.name}"]
                if link.kind == "free":
                    parts.append(f"{p.name}={link.source}")
                elif link.kind == "fixed":
                    parts.append(f"{p.name}={link.value:g}")
                else:
                    parts.append(f"{p.name}=tortuosity({link.source})")
            lines.append(f"  {inst}: {type(comp).__name__}({', '.join(parts)})")
        if self.relaxation:
            lines.append(_t2.describe(self))
        lines.append("  free: " + ", ".join(self.parameter_names))
        return "\n".join(lines)

    @property
    def relaxed(self) -> bool:
        """True when some compartment has a T2: one S0 at TE = 0 for every echo time."""
        return bool(self.relaxation)

    # ----------------------------------------------------------------- constraints
    def _free(self, name: str) -> Parameter:
        for p in self.free_parameters:
            if p.name == name:
                return p
        raise ValueError(
            f"{name!r} is not a free compartment parameter of {self.name!r}; "
            f"valid names: {', '.join(p.name for p in self.free_parameters)}."
        )

    def _relink(self, name: str, new: Link) -> MultiCompartmentModel:
        self._free(name)
        links = {k: (new if (v.kind == "free" and v.source == name) else v)
                 for k, v in self.links.items()}
        relax = {k: (new if (v.kind == "free" and v.source == name) else v)
                 for k, v in self.relaxation.items()}
        free = tuple(p for p in self.free_parameters if p.name != name)
        return replace(self, links=links, free_parameters=free, relaxation=relax,
                       targets=tuple(t for t in self.targets if t != name))

    def fix(self, name: str, value: float) -> MultiCompartmentModel:
        """A new model with a free parameter fixed.

        Parameters
        ----------
        name : str
            Free parameter (not an orientation).
        value : float
            Its value in SI units.

        Returns
        -------
        MultiCompartmentModel
        """
        p = self._free(name)
        if p.kind == "orientation":
            raise ValueError(f"fix: orientation {name!r} cannot be fixed to a scalar.")
        return replace(self._relink(name, Link("fixed", value=float(value))),
                       steps=self.steps + (("fix", name, float(value)),))

    def tie(self, name: str, to: str) -> MultiCompartmentModel:
        """A new model where one free parameter takes the value of another.

        Parameters
        ----------
        name : str
            Free parameter that stops being free.
        to : str
            Free parameter whose value it takes.

        Returns
        -------
        MultiCompartmentModel
        """
        self._free(to)
        return replace(self._relink(name, Link("free", source=to)),
                       steps=self.steps + (("tie", name, to),))

    def tortuosity(self, d_perp: str, *, d_par: str, intra: str, extra: str):
        """A new model with d⊥ = d∥ (1 - f_intra / (f_intra + f_extra)).

        Parameters
        ----------
        d_perp : str
            Free parameter to constrain.
        d_par : str
            Compartment key ``"<instance>.<param>"`` of the parallel diffusivity.
        intra, extra : str
            Instance names of the intra- and extra-axonal compartments.
        """
        for inst in (intra, extra):
            if inst not in self.compartment_names:
                raise ValueError(f"tortuosity: unknown compartment {inst!r}.")
        if d_par not in self.links:
            raise ValueError(f"tortuosity: unknown compartment parameter {d_par!r}.")
        model = self._relink(d_perp, Link("tortuosity", source=d_par, intra=intra, extra=extra))
        return replace(model, steps=self.steps + (("tortuosity", d_perp, d_par, intra, extra),))

    # ----------------------------------------------------------------- settings
    @property
    def fixed_values(self) -> dict[str, float]:
        """Every fixed compartment parameter ``"<instance>.<param>"`` and its SI value."""
        return {k: float(v.value) for k, v in self.links.items() if v.kind == "fixed"}

    @property
    def setting_names(self) -> list[str]:
        """Names :meth:`set` and :meth:`free` accept for fixed parameters: the compartment
        parameter name (all instances) and each ``"<instance>.<param>"`` key."""
        keys = list(self.fixed_values)
        return sorted({k.split(".", 1)[1] for k in keys}) + keys

    def parameter_record(self, name: str) -> Parameter:
        """The :class:`Parameter` of a free parameter or of a fixed setting (its
        compartment parameter's record: unit, bounds, display unit)."""
        if name in self.parameters:
            return self.parameters[name]
        if _t2.targets(self, name):
            return _t2.T2.renamed(name)
        keys = self._fixed_keys(name)
        if not keys:
            raise self._unknown("parameter", name, self.parameter_names + self.setting_names)
        inst, pname = keys[0].split(".", 1)
        return next(p for p in dict(self.compartments)[inst].parameters if p.name == pname)

    def _fixed_keys(self, name: str) -> list[str]:
        return [k for k in self.fixed_values if k == name or k.split(".", 1)[1] == name]

    def _unknown(self, what: str, name: str, valid: list[str]):
        return ValueError(f"{what}: {name!r} is not a parameter of model {self.name!r}; "
                          f"valid names: {', '.join(valid) or 'none'}.")

    def set(self, name: str, value: float) -> MultiCompartmentModel:
        """A new model with ``name`` held at ``value`` (SI units).

        A free parameter is fixed (as :meth:`fix`); a fixed setting (e.g. ``d_par``, every
        compartment's d∥, or one key such as ``"ball.d_iso"``) gets the new value.

        Parameters
        ----------
        name : str
            Free parameter or fixed setting.
        value : float
            Value in SI units.

        Returns
        -------
        MultiCompartmentModel
        """
        free = [p.name for p in self.free_parameters if p.kind != "orientation"]
        if name in free:
            return self.fix(name, value)
        keys = self._fixed_keys(name)
        if not keys and _t2.targets(self, name):
            return _t2.set_t2(self, name, value)
        if not keys:
            raise self._unknown("set", name, free + self.setting_names
                                + _t2.relaxation_names(self))
        if not np.isfinite(value):
            raise ValueError(f"set: {name} must be a finite number, got {value!r}.")
        links = dict(self.links)
        links.update({k: Link("fixed", value=float(value)) for k in keys})
        return replace(self, links=links, steps=self.steps + (("set", name, float(value)),))

    def free(self, name: str) -> MultiCompartmentModel:
        """A new model where the fixed setting ``name`` becomes one free parameter.

        Parameters
        ----------
        name : str
            A compartment parameter name (every fixed instance of it, e.g. ``d_par``) or one
            key ``"<instance>.<param>"``. The new free parameter is called ``name`` (dots
            become underscores) with the compartment parameter's bounds.

        Returns
        -------
        MultiCompartmentModel
        """
        keys = self._fixed_keys(name)
        if not keys and _t2.targets(self, name):
            return _t2.free_t2(self, name)
        if not keys:
            raise self._unknown("free", name, self.setting_names + _t2.relaxation_names(self))
        new_name = name.replace(".", "_")
        if new_name in self.parameter_names:
            raise ValueError(f"free: {new_name!r} is already a free parameter of {self.name!r}.")
        inst, pname = keys[0].split(".", 1)
        proto = next(p for p in dict(self.compartments)[inst].parameters if p.name == pname)
        links = dict(self.links)
        links.update({k: Link("free", source=new_name) for k in keys})
        return replace(self, links=links,
                       free_parameters=self.free_parameters + (proto.renamed(new_name),),
                       targets=self.targets + (new_name,),
                       steps=self.steps + (("free", name),))

    # ----------------------------------------------------------------- specs
    def to_spec(self) -> dict:
        """The model as a JSON-ready recipe (see :func:`microlearn.models.spec.load_model`)."""
        return model_to_spec(self)

    def to_json(self) -> str:
        """The model's spec as JSON text (``load_model`` reads it back)."""
        return json.dumps(self.to_spec(), indent=2) + "\n"

    def with_fibres(self, n_fibres: int) -> MultiCompartmentModel:
        """The same model (settings and constraints) with ``n_fibres`` fibre populations.

        Raises
        ------
        ValueError
            For a model without a family factory (composed), whose fibre count is its
            composition.
        """
        n_fibres = int(n_fibres)
        if n_fibres == self.n_fibres:
            return self
        if self.rebuild is None:
            raise ValueError(f"model {self.name!r} is composed with {self.n_fibres} fibre "
                             f"population(s); it cannot be rebuilt with {n_fibres}.")
        return apply_steps(self.rebuild(n_fibres), self.steps, strict=False)

    # ----------------------------------------------------------------- evaluation
    def as_dict(self, params) -> dict[str, np.ndarray]:
        """Free parameters as a dict.

        Parameters
        ----------
        params : ndarray, shape (*batch, size), or dict of str to ndarray
            Free parameters in SI units (orientations as angles or unit vectors).

        Returns
        -------
        dict of str to ndarray
        """
        if isinstance(params, Mapping):
            return dict(params)
        return self.parameters.unpack(np.asarray(params, dtype=float))

    def resolve(self, params) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
        """Compartment keyword arguments and fractions from free parameters.

        Parameters
        ----------
        params : ndarray, shape (*batch, size), or dict of str to ndarray
            Free parameters in SI units (orientations as angles or unit vectors).

        Returns
        -------
        kwargs : dict
            ``{instance: {param: value}}`` with orientations as unit vectors.
        fractions : ndarray, shape (*batch, n_compartments)
        """
        values = self.as_dict(params)
        fractions = self.fractions(values)
        index = {n: i for i, n in enumerate(self.compartment_names)}
        resolved: dict[str, np.ndarray] = {}
        pending = []
        for key, link in self.links.items():
            if link.kind == "free":
                v = np.asarray(values[link.source], dtype=float)
                resolved[key] = angles_to_cartesian(v) if v.shape[-1:] == (2,) and key.endswith(
                    ".mu") else v
            elif link.kind == "fixed":
                resolved[key] = np.asarray(link.value)
            else:
                pending.append((key, link))
        for key, link in pending:
            fi, fe = fractions[..., index[link.intra]], fractions[..., index[link.extra]]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(fi + fe > 0, fi / (fi + fe), 0.0)
            resolved[key] = resolved[link.source] * (1.0 - ratio)
        kwargs = {inst: {} for inst in self.compartment_names}
        for key, v in resolved.items():
            inst, pname = key.split(".", 1)
            kwargs[inst][pname] = v
        return kwargs, fractions

    def compartment_signals(self, acq, params) -> np.ndarray:
        """Signals of every compartment, unweighted (with their T2 decay when relaxed).

        Parameters
        ----------
        acq : Acquisition
        params : ndarray, shape (*batch, size), or dict of str to ndarray
            Free parameters in SI units (orientations as angles or unit vectors).

        Returns
        -------
        ndarray, shape (*batch, n_compartments, n_measurements)
        """
        kwargs, fractions = self.resolve(params)
        decay = _t2.decay(self, acq, self.as_dict(params))
        batch = fractions.shape[:-1]
        out = np.empty(batch + (len(self.compartments), acq.n_measurements))
        for i, (inst, comp) in enumerate(self.compartments):
            if isinstance(comp, Dot):
                out[..., i, :] = 1.0
            else:
                out[..., i, :] = comp.signal(acq, **kwargs[inst])
            if inst in decay:
                out[..., i, :] *= decay[inst]
        return out

    def signal(self, acq, params) -> np.ndarray:
        """Normalised signal S/S0, shape ``(*batch, n_measurements)``.

        For a relaxed model (:attr:`relaxed`), S0 is the signal at b = 0 and TE = 0 and the
        signal is Σ f_i · exp(−TE/T2_i) · S_i.

        Parameters
        ----------
        acq : Acquisition
        params : ndarray, shape (*batch, size), or dict of str to ndarray
            Free parameters in SI units (orientations as angles or unit vectors).

        Returns
        -------
        ndarray, shape (*batch, n_measurements)
        """
        batch = None
        if not isinstance(params, Mapping):
            batch = np.shape(params)[:-1]
        params = self.as_dict(params)
        for name in self.orientation_names:
            v = np.asarray(params[name], dtype=float)
            if v.shape[-1] == 3:
                from ..parameters import cartesian_to_angles

                params[name] = cartesian_to_angles(v)
        kwargs, fractions = self.resolve(params)
        decay = _t2.decay(self, acq, params)
        total = None
        for i, (inst, comp) in enumerate(self.compartments):
            f = fractions[..., i, None]
            s = f if isinstance(comp, Dot) else f * comp.signal(acq, **kwargs[inst])
            if inst in decay:
                s = s * decay[inst]
            total = s if total is None else total + s
        if batch is None:
            batch = fractions.shape[:-1]
        return np.broadcast_to(total, tuple(batch) + (acq.n_measurements,)).copy()

    def maps(self, params) -> dict[str, np.ndarray]:
        """Free and derived maps.

        Parameters
        ----------
        params : ndarray, shape (*batch, size), or dict of str to ndarray
            Free parameters in SI units (orientations as angles or unit vectors).

        Returns
        -------
        dict of str to ndarray
            ``(*batch,)`` per scalar map (SI units), ``(*batch, 3)`` unit vectors per
            orientation.
        """
        batch = None if isinstance(params, Mapping) else np.shape(params)[:-1]
        values = self.as_dict(params)
        out = {}
        for p in self.parameters:
            v = np.asarray(values[p.name])
            out[p.name] = angles_to_cartesian(v) if p.kind == "orientation" else v
        rule = self.fractions
        if isinstance(rule, FreeFractions) and rule.single is None:
            # free weights are defined up to a common scale: report the volume fractions
            shares = rule(values)
            for i, inst in enumerate(rule.compartments):
                out[f"f_{inst}"] = shares[..., i]
        for name, fn in self.derived.items():
            out[name] = fn(values)
            if batch is not None and np.ndim(out[name]) == 0:
                out[name] = np.full(batch, float(out[name]))
        return out


# ---------------------------------------------------------------------- composition
def compose(compartments: Sequence[Compartment], *, names: Sequence[str] | None = None,
            name: str = "custom") -> MultiCompartmentModel:
    """Compose compartments into a model with free fractions ``f_<instance>``.

    Every compartment parameter becomes a free parameter named ``<instance>_<param>``;
    use :meth:`~MultiCompartmentModel.fix`, :meth:`~MultiCompartmentModel.tie` and
    :meth:`~MultiCompartmentModel.tortuosity` to constrain them.

    Parameters
    ----------
    compartments : sequence of Compartment
        The compartments, in order.
    names : sequence of str, optional
        Instance names; default the compartment names, numbered when repeated.
    name : str
        Model name.

    Returns
    -------
    MultiCompartmentModel
    """
    if not compartments:
        raise ValueError("compose: give at least one compartment.")
    if names is None:
        base = [c.name for c in compartments]
        names = [f"{b}_{base[:i].count(b) + 1}" if base.count(b) > 1 else b
                 for i, b in enumerate(base)]
    if len(set(names)) != len(names):
        raise ValueError(f"compose: instance names must be unique, got {names}.")
    links, free = {}, []
    for inst, comp in zip(names, compartments):
        for p in comp.parameters:
            fname = f"{inst}_{p.name}"
            links[f"{inst}.{p.name}"] = Link("free", source=fname)
            free.append(p.renamed(fname))
    oriented = [n for n, c in zip(names, compartments) if c.oriented]
    averaged = [bool(getattr(c, "spherical_mean", False)) for c in compartments]
    if any(averaged) and oriented:
        raise ValueError(f"compose: spherical-mean compartments describe direction-averaged "
                         f"signals and cannot be mixed with oriented ones ({oriented}).")
    recipe = {"name": name, "compose": [{"compartment": type(c).__name__, "name": n}
                                        for n, c in zip(names, compartments)]}
    return MultiCompartmentModel(
        name=name,
        compartments=tuple(zip(names, compartments)),
        links=links,
        free_parameters=tuple(free),
        fractions=FreeFractions(tuple(names)),
        n_fibres=1 if oriented else 0,
        fibres=(tuple(oriented),) if oriented else (),
        targets=tuple(p.name for p in free if p.kind != "orientation")
        + tuple(f"f_{n}" for n in names),
        recipe=recipe,
        spherical_mean=any(averaged),
    )



__all__ = ["Link", "MultiCompartmentModel", "compose"]
