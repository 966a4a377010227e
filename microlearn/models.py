"""Multi-compartment models: composition, constraints, fibre populations, built-ins.

A :class:`MultiCompartmentModel` is immutable. It holds named compartment instances,
one *link* per compartment parameter (free, fixed, tied or tortuous), and a
:class:`~microlearn.fractions.FractionRule` that turns free parameters into volume
fractions. Its free parameters form a :class:`ParameterSpace` whose names are the map
names written by ``fit``/``predict``. Constraints return new models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from .compartments import Ball, Compartment, CylinderGPD, Dot, WatsonStick, WatsonZeppelin, Zeppelin
from .compartments.dispersion import odi_to_kappa
from .fractions import FractionRule, FreeFractions, NestedFractions
from .parameters import Parameter, ParameterSpace, angles_to_cartesian

D_PAR_NODDI = 1.7e-9
D_ISO_CSF = 3.0e-9


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
        lines.append("  free: " + ", ".join(self.parameter_names))
        return "\n".join(lines)

    # ----------------------------------------------------------------- constraints
    def _free(self, name: str) -> Parameter:
        for p in self.free_parameters:
            if p.name == name:
                return p
        raise ValueError(
            f"{name!r} is not a free compartment parameter of {self.name!r}; "
            f"choose from {[p.name for p in self.free_parameters]}."
        )

    def _relink(self, name: str, new: Link) -> MultiCompartmentModel:
        self._free(name)
        links = {k: (new if (v.kind == "free" and v.source == name) else v)
                 for k, v in self.links.items()}
        free = tuple(p for p in self.free_parameters if p.name != name)
        return replace(self, links=links, free_parameters=free,
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
        return self._relink(name, Link("fixed", value=float(value)))

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
        return self._relink(name, Link("free", source=to))

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
        return self._relink(d_perp, Link("tortuosity", source=d_par, intra=intra, extra=extra))

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
        """Signals of every compartment, unweighted.

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
        batch = fractions.shape[:-1]
        out = np.empty(batch + (len(self.compartments), acq.n_measurements))
        for i, (inst, comp) in enumerate(self.compartments):
            if isinstance(comp, Dot):
                out[..., i, :] = 1.0
            else:
                out[..., i, :] = comp.signal(acq, **kwargs[inst])
        return out

    def signal(self, acq, params) -> np.ndarray:
        """Normalised signal S/S0, shape ``(*batch, n_measurements)``.

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
                from .parameters import cartesian_to_angles

                params[name] = cartesian_to_angles(v)
        kwargs, fractions = self.resolve(params)
        total = None
        for i, (inst, comp) in enumerate(self.compartments):
            f = fractions[..., i, None]
            s = f if isinstance(comp, Dot) else f * comp.signal(acq, **kwargs[inst])
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
    return MultiCompartmentModel(
        name=name,
        compartments=tuple(zip(names, compartments)),
        links=links,
        free_parameters=tuple(free),
        fractions=FreeFractions(tuple(names)),
        n_fibres=1 if oriented else 0,
        fibres=(tuple(oriented),) if oriented else (),
        targets=tuple(p.name for p in free if p.kind != "orientation"),
    )


# ---------------------------------------------------------------------- built-ins
def _check_n_fibres(n_fibres: int, model: str) -> None:
    if n_fibres not in (0, 1, 2, 3):
        raise ValueError(f"{model}: n_fibres must be 0, 1, 2 or 3, got {n_fibres!r}.")


def _suffix(i: int, n: int) -> str:
    return f"_{i}" if n > 1 else ""


def _fibre_model(name, n_fibres, fibre_parts, iso_parts, fibre_params, derived_maps,
                 iso_name="fiso"):
    """Assemble a fibre model: per fibre ``fibre_parts``, plus isotropic ``iso_parts``.

    fibre_parts : list of (base instance name, Compartment)
    fibre_params : callable(i, suffix) -> (list of Parameter, dict of links)
    """
    comps, links, free, fibres = [], {}, [], []
    for i in range(1, n_fibres + 1):
        sfx = _suffix(i, n_fibres)
        names = []
        for base, comp in fibre_parts:
            inst = f"{base}{sfx}" if n_fibres > 1 else base
            comps.append((inst, comp))
            names.append(inst)
        params, fibre_links = fibre_params(i, sfx, names)
        free += params
        links.update(fibre_links)
        fibres.append(tuple(names))
    for inst, comp, iso_links in iso_parts:
        comps.append((inst, comp))
        links.update(iso_links)
    intra_extra = list(fibres)
    rule = NestedFractions(
        compartments=tuple(n for n, _ in comps),
        fibres=tuple(intra_extra),
        isotropic=tuple(inst for inst, _, _ in iso_parts),
        fiso_name=iso_name if iso_parts and fibres else None,
    )
    targets = [p.name for p in free if p.kind != "orientation"] + [
        p.name for p in rule.parameters]
    model = MultiCompartmentModel(
        name=name, compartments=tuple(comps), links=links, free_parameters=tuple(free),
        fractions=rule, n_fibres=n_fibres, fibres=tuple(fibres), targets=tuple(targets),
    )
    return replace(model, derived=derived_maps(model))


def _fibre_mean(v, *, name: str, n: int):
    if n == 1:
        return np.asarray(v[name])
    w = np.stack([np.asarray(v[f"ffib_{i}"]) for i in range(1, n + 1)], -1)
    x = np.stack([np.asarray(v[f"{name}_{i}"]) for i in range(1, n + 1)], -1)
    return np.sum(w * x, -1) / np.maximum(np.sum(w, -1), 1e-12)


def _mean_over_fibres(name: str, n: int):
    """Derived map: the fibre-weight average of per-fibre map ``name``."""
    return partial(_fibre_mean, name=name, n=n)


def _kappa_of(v, *, odi_name: str):
    return odi_to_kappa(v[odi_name])


def _kappa_map(odi_name: str):
    """Derived map: Watson κ from an ODI map."""
    return partial(_kappa_of, odi_name=odi_name)


def _total_fraction(v, *, rule, prefix: str):
    return rule.total_fraction(v, prefix)


def _ones(v):
    return np.ones(np.shape(next(iter(v.values()), 0.0)))


from .model_params import MU, ODI, diameter_param  # noqa: E402


def noddi(n_fibres: int = 1, *, d_par: float = D_PAR_NODDI, d_iso: float = D_ISO_CSF):
    """NODDI (Zhang et al. 2012) with 0–3 fibre populations.

    Per fibre: Watson-dispersed stick (intra-neurite) + Watson-dispersed zeppelin with the
    Watson-averaged tensor and tortuosity d⊥ = d∥ (1 - icvf); plus a CSF ball. d∥ =
    1.7e-9 m²/s and d_iso = 3e-9 m²/s are fixed. Maps: ``odi``, ``icvf``, ``fiso``,
    ``mu`` (with ``_1``.. suffixes and ``ffib_i`` for several fibres).

    Parameters
    ----------
    n_fibres : {0, 1, 2, 3}
        Fibre populations (0: the isotropic part only).
    d_par : float
        Fixed intra-axonal (and extra-axonal parallel) diffusivity in m²/s.
    d_iso : float
        Fixed diffusivity of the CSF ball in m²/s.

    Returns
    -------
    MultiCompartmentModel
    """
    _check_n_fibres(n_fibres, "noddi")

    def fibre_params(i, sfx, names):
        stick, zep = names
        mu, odi = MU.renamed(f"mu{sfx}"), ODI.renamed(f"odi{sfx}")
        links = {
            f"{stick}.mu": Link("free", mu.name), f"{stick}.d_par": Link("fixed", value=d_par),
            f"{stick}.odi": Link("free", odi.name), f"{zep}.mu": Link("free", mu.name),
            f"{zep}.d_par": Link("fixed", value=d_par), f"{zep}.odi": Link("free", odi.name),
            f"{zep}.d_perp": Link("tortuosity", f"{stick}.d_par", intra=stick, extra=zep),
        }
        return [mu, odi], links

    def derived(model):
        out = {}
        if n_fibres == 0:
            out["fiso"] = _ones
        if n_fibres >= 1:
            out["kappa"] = _kappa_map("odi" if n_fibres == 1 else "odi_1")
        if n_fibres > 1:
            out["odi"] = _mean_over_fibres("odi", n_fibres)
            out["icvf"] = _mean_over_fibres("icvf", n_fibres)
        return out

    iso = [("ball", Ball(), {"ball.d_iso": Link("fixed", value=d_iso)})]
    return _fibre_model(f"noddi{n_fibres}" if n_fibres != 1 else "noddi", n_fibres,
                        [("stick", WatsonStick()), ("zeppelin", WatsonZeppelin())], iso,
                        fibre_params, derived)


def activeax(n_fibres: int = 1, *, d_par: float = D_PAR_NODDI, d_iso: float = D_ISO_CSF):
    """ActiveAx (Alexander et al. 2010): CylinderGPD + tortuous zeppelin + CSF ball.

    d∥ = 1.7e-9 and d_iso = 3e-9 m²/s fixed. Maps: ``diameter`` (m), ``icvf``, ``fiso``,
    ``mu``. Diameters below ~2 µm are not identifiable at G <= 300 mT/m.

    Parameters
    ----------
    n_fibres : {0, 1, 2, 3}
        Fibre populations (0: the isotropic part only).
    d_par : float
        Fixed intra-axonal (and extra-axonal parallel) diffusivity in m²/s.
    d_iso : float
        Fixed diffusivity of the CSF ball in m²/s.

    Returns
    -------
    MultiCompartmentModel
    """
    _check_n_fibres(n_fibres, "activeax")

    def fibre_params(i, sfx, names):
        cyl, zep = names
        mu, dia = MU.renamed(f"mu{sfx}"), diameter_param(f"diameter{sfx}")
        links = {
            f"{cyl}.mu": Link("free", mu.name), f"{cyl}.d_par": Link("fixed", value=d_par),
            f"{cyl}.diameter": Link("free", dia.name), f"{zep}.mu": Link("free", mu.name),
            f"{zep}.d_par": Link("fixed", value=d_par),
            f"{zep}.d_perp": Link("tortuosity", f"{cyl}.d_par", intra=cyl, extra=zep),
        }
        return [mu, dia], links

    def derived(model):
        if n_fibres > 1:
            return {"diameter": _mean_over_fibres("diameter", n_fibres),
                    "icvf": _mean_over_fibres("icvf", n_fibres)}
        return {}

    iso = [("ball", Ball(), {"ball.d_iso": Link("fixed", value=d_iso)})]
    return _fibre_model(f"activeax{n_fibres}" if n_fibres != 1 else "activeax", n_fibres,
                        [("cylinder", CylinderGPD()), ("zeppelin", Zeppelin())], iso,
                        fibre_params, derived)


def zcd(n_fibres: int = 1, *, d_par: float = D_PAR_NODDI):
    """Zeppelin-Cylinder-Dot (Panagiotaki et al. 2012).

    Per fibre a CylinderGPD and a zeppelin (free d⊥) share the orientation; a dot models
    stationary water. Fractions ``f_cylinder``, ``f_zeppelin``, ``f_dot`` sum to one.

    Parameters
    ----------
    n_fibres : {0, 1, 2, 3}
        Fibre populations (0: the isotropic part only).
    d_par : float
        Fixed intra-axonal (and extra-axonal parallel) diffusivity in m²/s.

    Returns
    -------
    MultiCompartmentModel
    """
    _check_n_fibres(n_fibres, "zcd")
    from .model_params import D_PERP_ZCD

    def fibre_params(i, sfx, names):
        cyl, zep = names
        mu, dia = MU.renamed(f"mu{sfx}"), diameter_param(f"diameter{sfx}")
        dpe = D_PERP_ZCD.renamed(f"d_perp{sfx}")
        links = {
            f"{cyl}.mu": Link("free", mu.name), f"{cyl}.d_par": Link("fixed", value=d_par),
            f"{cyl}.diameter": Link("free", dia.name), f"{zep}.mu": Link("free", mu.name),
            f"{zep}.d_par": Link("fixed", value=d_par), f"{zep}.d_perp": Link("free", dpe.name),
        }
        return [mu, dia, dpe], links

    def derived(model):
        fr = model.fractions
        out = {name: partial(_total_fraction, rule=fr, prefix=name[2:])
               for name in ("f_cylinder", "f_zeppelin", "f_dot")}
        if n_fibres > 1:
            out["diameter"] = _mean_over_fibres("diameter", n_fibres)
        return out

    iso = [("dot", Dot(), {})]
    model = _fibre_model(f"zcd{n_fibres}" if n_fibres != 1 else "zcd", n_fibres,
                         [("cylinder", CylinderGPD()), ("zeppelin", Zeppelin())], iso,
                         fibre_params, derived, iso_name="f_dot")
    return model


def ivim():
    """IVIM (Le Bihan): S/S0 = f exp(-b D*) + (1 - f) exp(-b D).

    Maps ``f`` (perfusion fraction), ``d`` (tissue diffusivity, m²/s), ``d_star``
    (pseudo-diffusivity, m²/s); ``s0`` comes from every fit.

    Returns
    -------
    MultiCompartmentModel
    """
    from .model_params import D_STAR, D_TISSUE, F_PERFUSION

    comps = (("perfusion", Ball()), ("tissue", Ball()))
    links = {"perfusion.d_iso": Link("free", "d_star"), "tissue.d_iso": Link("free", "d")}
    rule = FreeFractions(("perfusion", "tissue"), single=F_PERFUSION)
    return MultiCompartmentModel(
        name="ivim", compartments=comps, links=links, free_parameters=(D_TISSUE, D_STAR),
        fractions=rule, n_fibres=0, fibres=(), targets=("f", "d", "d_star"),
    )


MODELS = {"noddi": noddi, "activeax": activeax, "zcd": zcd, "ivim": ivim}


def get_model(name: str, n_fibres: int = 1) -> MultiCompartmentModel:
    """A built-in model by name (``noddi``, ``activeax``, ``zcd``, ``ivim``).

    Parameters
    ----------
    name : {"noddi", "activeax", "zcd", "ivim"}
    n_fibres : {0, 1, 2, 3}
        Fibre populations; ignored for ``ivim``, which has none.

    Returns
    -------
    MultiCompartmentModel

    Raises
    ------
    ValueError
        For an unknown name.
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}.") from None
    return factory() if name == "ivim" else factory(n_fibres)


__all__ = ["Link", "MultiCompartmentModel", "Parameter", "compose", "noddi", "activeax",
           "zcd", "ivim", "get_model", "MODELS", "Zeppelin"]
