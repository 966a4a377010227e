"""Spherical-mean models: SMT, multi-compartment SMT and SANDI.

They are fitted to powder-averaged data (one signal per shell and echo time, see
:mod:`microlearn.data.powder`), so they have no orientation and no fibre count; their
``spherical_mean`` flag tells fit, learn and simulate to powder-average data and
acquisition first.

- :func:`smt` (Kaden et al., MRM 2016): one spherical-mean microscopic tensor with free
  d∥ and d⊥ = r d∥ (0 <= r <= 1); maps ``d_par``, ``d_ratio``, ``d_perp`` and the
  microscopic ``micro_fa``, ``micro_md``.
- :func:`mcsmt` (Kaden et al., NeuroImage 2016): spherical-mean stick (intra-neurite,
  d∥) + spherical-mean zeppelin with the same d∥ and tortuous d⊥ = (1 - v_int) d∥, plus a
  CSF ball (d_iso = 3 µm²/ms); maps ``icvf`` (v_int), ``d_par``, ``fiso``.
- :func:`sandi` (Palombo et al., NeuroImage 2020): spherical-mean stick (d_in) + sphere
  (soma, D_is = 3 µm²/ms fixed) + ball (d_e); maps ``f_neurite``, ``f_soma``,
  ``f_extra``, ``rs`` (soma radius, m), ``d_in``, ``d_e``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..compartments import (
    Ball,
    SphereGPD,
    SphericalMeanStick,
    SphericalMeanTensor,
    SphericalMeanZeppelin,
)
from ..parameters import Parameter
from .core import Link, MultiCompartmentModel
from .fractions import FractionRule, NestedFractions, fraction_param

#: Intra-soma diffusivity of SANDI (m²/s), fixed as in Palombo et al. 2020 and AMICO.
D_SOMA = 3.0e-9
#: Diffusivity of the CSF ball of MC-SMT (m²/s).
D_CSF = 3.0e-9

D_PAR_SMT = Parameter("d_par", "m²/s", (0.1e-9, 3.5e-9), 1e-9, kind="diffusivity",
                      description="Microscopic diffusivity along the neurites.",
                      display_unit="µm²/ms", prior_bounds=(0.5e-9, 3.0e-9))
D_RATIO_SMT = Parameter("d_ratio", "", (0.0, 1.0), 1.0, kind="other",
                        description="d⊥ / d∥ of the microscopic tensor (0: stick, 1: "
                        "isotropic).", prior_bounds=(0.0, 0.6))
D_IN = Parameter("d_in", "m²/s", (0.1e-9, 3.5e-9), 1e-9, kind="diffusivity",
                 description="Intra-neurite axial diffusivity.", display_unit="µm²/ms",
                 prior_bounds=(0.25e-9, 3.0e-9))
D_E = Parameter("d_e", "m²/s", (0.1e-9, 3.5e-9), 1e-9, kind="diffusivity",
                description="Extra-cellular (ball) diffusivity.", display_unit="µm²/ms",
                prior_bounds=(0.25e-9, 3.0e-9))
SOMA_DIAMETER = Parameter("soma_diameter", "m", (1e-6, 30e-6), 1e-5, kind="length",
                          description="Soma (sphere) diameter; the rs map is its half.",
                          display_unit="µm", prior_bounds=(2e-6, 24e-6))
F_EXTRA = fraction_param("f_extra", "Extra-cellular (ball) signal fraction.")
F_NEURITE_IC = fraction_param(
    "f_neurite_ic", "Neurite share of the intra-cellular (neurite + soma) signal.")


@dataclass(frozen=True)
class CellFractions(FractionRule):
    """SANDI's fractions from (intra-cellular neurite share, extra-cellular fraction).

    f_extra = ``f_extra``; f_neurite = (1 - f_extra) s; f_soma = (1 - f_extra)(1 - s) with
    s = ``f_neurite_ic``. Both free parameters are boxes in [0, 1], so every value is a
    valid point of the simplex.

    Attributes
    ----------
    compartments : tuple of str
        Instance names (neurite, soma, extra), in model order.
    """

    compartments: tuple[str, ...] = ("neurite", "soma", "extra")

    @property
    def parameters(self):
        return (F_NEURITE_IC, F_EXTRA)

    def __call__(self, values):
        s = np.asarray(values["f_neurite_ic"], dtype=float)
        fe = np.asarray(values["f_extra"], dtype=float)
        s, fe = np.broadcast_arrays(s, fe)
        return np.stack([(1 - fe) * s, (1 - fe) * (1 - s), fe], axis=-1)

    def from_fractions(self, fractions) -> dict[str, np.ndarray]:
        """The free parameters giving compartment ``fractions`` (*batch, 3) (sum 1).

        Returns
        -------
        dict of str to ndarray
            ``f_neurite_ic`` and ``f_extra``, each ``(*batch,)``.
        """
        f = np.asarray(fractions, dtype=float)
        cell = f[..., 0] + f[..., 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(cell > 0, f[..., 0] / np.maximum(cell, 1e-300), 0.5)
        return {"f_neurite_ic": share, "f_extra": f[..., 2]}


def _d_perp(v):
    return np.asarray(v["d_par"], dtype=float) * np.asarray(v["d_ratio"], dtype=float)


def _micro_md(v):
    return (np.asarray(v["d_par"]) + 2 * _d_perp(v)) / 3.0


def _micro_fa(v):
    dpar, dperp = np.asarray(v["d_par"], float), _d_perp(v)
    md = (dpar + 2 * dperp) / 3.0
    num = np.sqrt(1.5 * ((dpar - md) ** 2 + 2 * (dperp - md) ** 2))
    den = np.sqrt(dpar**2 + 2 * dperp**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-300), 0.0)


def smt() -> MultiCompartmentModel:
    """SMT: one spherical-mean microscopic tensor (Kaden et al., MRM 2016).

    Free ``d_par`` (m²/s) and ``d_ratio`` = d⊥/d∥ in [0, 1] (the microscopic tensor is
    prolate); maps ``d_perp`` (m²/s), ``micro_fa`` and ``micro_md`` (m²/s) besides.

    Returns
    -------
    MultiCompartmentModel
        Flagged ``spherical_mean``; no fractions, no orientation.
    """
    comps = (("tensor", SphericalMeanTensor()),)
    links = {"tensor.d_par": Link("free", "d_par"), "tensor.d_ratio": Link("free", "d_ratio")}
    rule = NestedFractions(compartments=("tensor",), fibres=(), isotropic=("tensor",),
                           fiso_name=None)
    return MultiCompartmentModel(
        name="smt", compartments=comps, links=links, free_parameters=(D_PAR_SMT, D_RATIO_SMT),
        fractions=rule, n_fibres=0, fibres=(), targets=("d_par", "d_perp", "micro_fa"),
        derived={"d_perp": _d_perp, "micro_fa": _micro_fa, "micro_md": _micro_md},
        family="smt", recipe={"family": "smt", "n_fibres": 0, "settings": {}},
        spherical_mean=True,
    )


def mcsmt(*, d_iso: float = D_CSF) -> MultiCompartmentModel:
    """Multi-compartment SMT (Kaden et al., NeuroImage 2016), with a CSF ball.

    Spherical-mean stick (intra-neurite) + spherical-mean zeppelin with the same d∥ and
    d⊥ = (1 - v_int) d∥ + ball (d_iso fixed). Maps ``icvf`` (v_int, the intra-neurite
    fraction of tissue), ``d_par`` (m²/s), ``fiso``.

    Parameters
    ----------
    d_iso : float
        CSF diffusivity in m²/s.

    Returns
    -------
    MultiCompartmentModel
    """
    comps = (("intra", SphericalMeanStick()), ("extra", SphericalMeanZeppelin()),
             ("csf", Ball()))
    links = {"intra.d_par": Link("free", "d_par"), "extra.d_par": Link("free", "d_par"),
             "extra.d_perp": Link("tortuosity", source="extra.d_par", intra="intra",
                                  extra="extra"),
             "csf.d_iso": Link("fixed", value=float(d_iso))}
    rule = NestedFractions(compartments=("intra", "extra", "csf"),
                           fibres=(("intra", "extra"),), isotropic=("csf",))
    model = MultiCompartmentModel(
        name="mcsmt", compartments=comps, links=links, free_parameters=(D_PAR_SMT,),
        fractions=rule, n_fibres=0, fibres=(), targets=("icvf", "d_par", "fiso"),
        family="mcsmt", recipe={"family": "mcsmt", "n_fibres": 0,
                                "settings": {"d_iso": float(d_iso)}},
        spherical_mean=True,
    )
    return model


def _cell_fraction(v, *, index: int):
    return CellFractions()(v)[..., index]


def _radius(v):
    return 0.5 * np.asarray(v["soma_diameter"], dtype=float)


def sandi(*, d_soma: float = D_SOMA) -> MultiCompartmentModel:
    """SANDI (Palombo et al., NeuroImage 2020): neurites + soma + extra-cellular space.

    Spherical-mean stick (d_in) + SphereGPD soma (intra-soma diffusivity fixed) + ball
    (d_e), fitted on powder averages. Maps ``f_neurite``, ``f_soma``, ``f_extra``, ``rs``
    (soma radius, m), ``d_in``, ``d_e`` (m²/s), and the free ``soma_diameter`` and
    ``f_neurite_ic`` (neurite share of the intra-cellular signal).

    Parameters
    ----------
    d_soma : float
        Intra-soma diffusivity in m²/s (3 µm²/ms in the paper and in AMICO).

    Returns
    -------
    MultiCompartmentModel
    """
    comps = (("neurite", SphericalMeanStick()), ("soma", SphereGPD()), ("extra", Ball()))
    links = {"neurite.d_par": Link("free", "d_in"),
             "soma.diameter": Link("free", "soma_diameter"),
             "soma.d_intra": Link("fixed", value=float(d_soma)),
             "extra.d_iso": Link("free", "d_e")}
    derived = {"f_neurite": partial(_cell_fraction, index=0),
               "f_soma": partial(_cell_fraction, index=1), "rs": _radius}
    model = MultiCompartmentModel(
        name="sandi", compartments=comps, links=links,
        free_parameters=(D_IN, SOMA_DIAMETER, D_E), fractions=CellFractions(), n_fibres=0,
        fibres=(), derived=derived,
        targets=("f_neurite", "f_soma", "f_extra", "rs", "d_in", "d_e"), family="sandi",
        recipe={"family": "sandi", "n_fibres": 0, "settings": {"d_soma": float(d_soma)}},
        spherical_mean=True,
    )
    return model


__all__ = ["CellFractions", "D_SOMA", "mcsmt", "sandi", "smt"]
