"""The built-in model catalogue: NODDI, ActiveAx, AxCaliber, ZCD and IVIM with 0–3 fibres.

Each factory assembles a :class:`~microlearn.models.core.MultiCompartmentModel` from the
compartments; its facts for the other layers (fibre counts, schemes, compared maps, priors)
live in :mod:`microlearn.models.registry`.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from ..compartments import (
    Ball,
    CylinderGPD,
    Dot,
    GammaCylinders,
    WatsonStick,
    WatsonZeppelin,
    Zeppelin,
)
from ..compartments.dispersion import odi_to_kappa
from ..compartments.distributed import DIAMETER_MEAN, DIAMETER_SHAPE
from .core import Link, MultiCompartmentModel
from .fractions import FreeFractions, NestedFractions
from .params import D_PERP_ZCD, D_STAR, D_TISSUE, F_PERFUSION, MU, ODI, diameter_param

D_PAR_NODDI = 1.7e-9
D_ISO_CSF = 3.0e-9


def _check_n_fibres(n_fibres: int, model: str) -> None:
    if n_fibres not in (0, 1, 2, 3):
        raise ValueError(f"{model}: n_fibres must be 0, 1, 2 or 3, got {n_fibres!r}.")


def _suffix(i: int, n: int) -> str:
    return f"_{i}" if n > 1 else ""


def _fibre_model(name, n_fibres, fibre_parts, iso_parts, fibre_params, derived_maps,
                 iso_name="fiso", *, family: str, settings: dict, factory):
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
        family=family, recipe={"family": family, "n_fibres": n_fibres, "settings": settings},
        rebuild=partial(factory, **settings),
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
                        fibre_params, derived, family="noddi",
                        settings={"d_par": d_par, "d_iso": d_iso}, factory=noddi)


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
                        fibre_params, derived, family="activeax",
                        settings={"d_par": d_par, "d_iso": d_iso}, factory=activeax)


def _volume_mean(v, *, sfx: str):
    k = np.asarray(v[f"diameter_shape{sfx}"], dtype=float)
    return np.asarray(v[f"diameter_mean{sfx}"], dtype=float) * (k + 2.0) / k


def axcaliber(n_fibres: int = 1, *, d_par: float = D_PAR_NODDI, d_iso: float = D_ISO_CSF):
    """AxCaliber (Assaf et al. 2008): gamma-distributed cylinders + tortuous zeppelin + ball.

    Per fibre, cylinders whose diameters follow a gamma distribution (free number-weighted
    mean ``diameter_mean`` in m and shape ``diameter_shape``; signal d²-weighted, see
    :class:`~microlearn.compartments.GammaCylinders`) and a zeppelin sharing their
    orientation with tortuous d⊥; plus a ball. d∥ and d_iso fixed (in vivo defaults;
    ``tissue="exvivo"`` sets d∥ = 0.6, d_iso = 2.0 µm²/ms). Maps ``diameter_mean``,
    ``diameter_shape``, ``diameter_volume`` (the d²-weighted mean diameter, what ActiveAx's
    single diameter estimates), ``icvf``, ``fiso``, ``mu``. Which diameters a protocol
    resolves: ``microlearn plan --model axcaliber``.

    Parameters
    ----------
    n_fibres : {0, 1, 2, 3}
        Fibre populations (0: the isotropic part only).
    d_par : float
        Fixed intra-axonal (and extra-axonal parallel) diffusivity in m²/s.
    d_iso : float
        Fixed diffusivity of the ball in m²/s.

    Returns
    -------
    MultiCompartmentModel
    """
    _check_n_fibres(n_fibres, "axcaliber")

    def fibre_params(i, sfx, names):
        cyl, zep = names
        mu = MU.renamed(f"mu{sfx}")
        mean = DIAMETER_MEAN.renamed(f"diameter_mean{sfx}")
        shape = DIAMETER_SHAPE.renamed(f"diameter_shape{sfx}")
        links = {
            f"{cyl}.mu": Link("free", mu.name), f"{cyl}.d_par": Link("fixed", value=d_par),
            f"{cyl}.diameter_mean": Link("free", mean.name),
            f"{cyl}.diameter_shape": Link("free", shape.name),
            f"{zep}.mu": Link("free", mu.name), f"{zep}.d_par": Link("fixed", value=d_par),
            f"{zep}.d_perp": Link("tortuosity", f"{cyl}.d_par", intra=cyl, extra=zep),
        }
        return [mu, mean, shape], links

    def derived(model):
        out = {f"diameter_volume{_suffix(i, n_fibres)}":
               partial(_volume_mean, sfx=_suffix(i, n_fibres)) for i in range(1, n_fibres + 1)}
        if n_fibres > 1:
            out.update({"diameter_mean": _mean_over_fibres("diameter_mean", n_fibres),
                        "icvf": _mean_over_fibres("icvf", n_fibres)})
        return out

    iso = [("ball", Ball(), {"ball.d_iso": Link("fixed", value=d_iso)})]
    return _fibre_model(f"axcaliber{n_fibres}" if n_fibres != 1 else "axcaliber", n_fibres,
                        [("cylinders", GammaCylinders()), ("zeppelin", Zeppelin())], iso,
                        fibre_params, derived, family="axcaliber",
                        settings={"d_par": d_par, "d_iso": d_iso}, factory=axcaliber)


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
                         fibre_params, derived, iso_name="f_dot", family="zcd",
                         settings={"d_par": d_par}, factory=zcd)
    return model


def ivim():
    """IVIM (Le Bihan): S/S0 = f exp(-b D*) + (1 - f) exp(-b D).

    Maps ``f`` (perfusion fraction), ``d`` (tissue diffusivity, m²/s), ``d_star``
    (pseudo-diffusivity, m²/s); ``s0`` comes from every fit.

    Returns
    -------
    MultiCompartmentModel
    """
    comps = (("perfusion", Ball()), ("tissue", Ball()))
    links = {"perfusion.d_iso": Link("free", "d_star"), "tissue.d_iso": Link("free", "d")}
    rule = FreeFractions(("perfusion", "tissue"), single=F_PERFUSION)
    return MultiCompartmentModel(
        name="ivim", compartments=comps, links=links, free_parameters=(D_TISSUE, D_STAR),
        fractions=rule, n_fibres=0, fibres=(), targets=("f", "d", "d_star"),
        family="ivim", recipe={"family": "ivim", "n_fibres": 0, "settings": {}},
    )


MODELS = {"noddi": noddi, "activeax": activeax, "axcaliber": axcaliber, "zcd": zcd,
          "ivim": ivim}


__all__ = ["D_ISO_CSF", "D_PAR_NODDI", "MODELS", "activeax", "axcaliber", "ivim", "noddi",
           "zcd"]
