"""The registry of model families: one record per family, read by every layer.

A :class:`ModelFamily` holds what the other layers need to know about a family and would
otherwise spell out as string tables: how to build it, which fibre counts it supports, its
default acquisition scheme, the maps ``compare`` scores, the fibre mixture of a training
set, the phantom's tissue ranges, how fitting starts, and its tissue presets. CLI choices,
panels, learning, the phantom and compare all read :data:`FAMILIES`; a new model adds a
factory and one :func:`register` call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .core import MultiCompartmentModel

#: Phantom labels (see :mod:`microlearn.data.phantom`): 1 CSF, 2 grey matter, 3 white
#: matter, 4 two-fibre and 5 three-fibre crossings. Uniform ranges of the fibre-model
#: parameters per label (SI units).
FIBRE_TISSUE = {
    2: {"odi": (0.40, 0.70), "icvf": (0.25, 0.45), "fiso": (0.05, 0.20), "diameter": (2e-6, 4e-6),
        "d_perp": (0.6e-9, 1.0e-9)},
    3: {"odi": (0.05, 0.15), "icvf": (0.55, 0.75), "fiso": (0.00, 0.10), "diameter": (3e-6, 8e-6),
        "d_perp": (0.3e-9, 0.7e-9)},
    4: {"odi": (0.05, 0.20), "icvf": (0.50, 0.70), "fiso": (0.00, 0.10), "diameter": (3e-6, 7e-6),
        "d_perp": (0.3e-9, 0.7e-9)},
    5: {"odi": (0.05, 0.20), "icvf": (0.50, 0.70), "fiso": (0.00, 0.10), "diameter": (3e-6, 7e-6),
        "d_perp": (0.3e-9, 0.7e-9)},
}
#: AxCaliber's labels: the fibre ranges with a gamma distribution of diameters (mean as
#: ActiveAx's diameter, shape 3–8: a spread of 35–60 %, as in histology).
AXCALIBER_TISSUE = {
    label: {**{k: v for k, v in ranges.items() if k != "diameter"},
            "diameter_mean": ranges["diameter"], "diameter_shape": (3.0, 8.0)}
    for label, ranges in FIBRE_TISSUE.items()}
#: Per-label IVIM ranges: perfusion fraction, tissue and pseudo-diffusivity (SI).
IVIM_TISSUE = {
    1: {"f": (0.00, 0.03), "d": (2.8e-9, 3.0e-9), "d_star": (8e-9, 12e-9)},
    2: {"f": (0.10, 0.20), "d": (0.8e-9, 1.0e-9), "d_star": (8e-9, 15e-9)},
    3: {"f": (0.03, 0.08), "d": (0.6e-9, 0.8e-9), "d_star": (8e-9, 15e-9)},
    4: {"f": (0.05, 0.10), "d": (0.7e-9, 0.9e-9), "d_star": (10e-9, 20e-9)},
    5: {"f": (0.05, 0.10), "d": (0.7e-9, 0.9e-9), "d_star": (10e-9, 20e-9)},
}
#: Per-label ranges of the spherical-mean models (SI). SMT: microscopic diffusivities;
#: MC-SMT: v_int, d∥, CSF; SANDI (Palombo et al. 2020, in vivo): grey matter has large
#: somas (rs 6–10 µm) and ~30 % soma signal, white matter few and small somas. SANDI's CSF
#: label is its own ball at 3 µm²/ms (f_extra ≈ 1).
_WM_SANDI = {"f_extra": (0.15, 0.30), "f_neurite_ic": (0.75, 0.95),
             "soma_diameter": (4e-6, 10e-6), "d_in": (2.0e-9, 3.0e-9), "d_e": (0.6e-9, 1.2e-9)}
SANDI_TISSUE = {
    1: {"f_extra": (0.97, 1.0), "f_neurite_ic": (0.3, 0.7), "soma_diameter": (10e-6, 16e-6),
        "d_in": (2.0e-9, 3.0e-9), "d_e": (2.9e-9, 3.0e-9)},
    2: {"f_extra": (0.15, 0.35), "f_neurite_ic": (0.40, 0.60),
        "soma_diameter": (12e-6, 20e-6), "d_in": (2.0e-9, 3.0e-9), "d_e": (0.8e-9, 1.4e-9)},
    3: _WM_SANDI, 4: _WM_SANDI, 5: _WM_SANDI,
}
_WM_SMT = {"d_par": (2.0e-9, 2.6e-9), "d_ratio": (0.08, 0.25)}
SMT_TISSUE = {1: {"d_par": (2.9e-9, 3.0e-9), "d_ratio": (0.97, 1.0)},
              2: {"d_par": (1.6e-9, 2.2e-9), "d_ratio": (0.25, 0.45)},
              3: _WM_SMT, 4: _WM_SMT, 5: _WM_SMT}
_WM_MCSMT = {"icvf": (0.55, 0.75), "d_par": (2.0e-9, 2.6e-9), "fiso": (0.0, 0.10)}
MCSMT_TISSUE = {2: {"icvf": (0.30, 0.50), "d_par": (1.6e-9, 2.2e-9), "fiso": (0.05, 0.20)},
                3: _WM_MCSMT, 4: _WM_MCSMT, 5: _WM_MCSMT}
#: Tissue presets of the fibre models (SI): in vivo white matter (the defaults), grey
#: matter NODDI (d∥ = 1.1 µm²/ms, Guerrero et al. 2019) and fixed ex vivo tissue at room
#: temperature (d∥ = 0.6, d_iso = 2.0 µm²/ms, the NODDI toolbox's ex vivo values; its extra
#: dot compartment is not added).
FIBRE_TISSUES = {"invivo": {"d_par": 1.7e-9, "d_iso": 3.0e-9},
                 "gm": {"d_par": 1.1e-9, "d_iso": 3.0e-9},
                 "exvivo": {"d_par": 0.6e-9, "d_iso": 2.0e-9}}


@dataclass(frozen=True)
class ModelFamily:
    """What every layer knows about one model family.

    Attributes
    ----------
    name : str
        Family name (CLI ``--model``, panels, saved estimators).
    factory : callable
        ``factory(n_fibres)`` (or ``factory()`` when ``fibre_counts == (0,)``) -> model.
    description : str
        One line for help texts and dropdowns.
    fibre_counts : tuple of int
        Fibre populations of its training sets and phantoms (fitting, with ``--n-fibres``
        or model selection, accepts 0–3 for every family with fibres).
    scheme : str
        Built-in acquisition scheme it is simulated on by default.
    compared_maps : tuple of str
        Scalar maps ``compare`` scores and plots.
    training_fibres : mapping of int to float
        Default fibre mixture of a learned estimator's training set.
    phantom_tissue : mapping
        Per phantom label, uniform ranges (SI) of parameters by base name.
    phantom_csf : mapping or None
        Truth of the CSF label when it is free water outside the model (signal of a
        3 µm²/ms ball); None when the CSF label is sampled from ``phantom_tissue``.
    start : {"search", "segmented"}
        How fitting starts: a global search (MIX stage 1) or IVIM's segmented fit.
    tissues : mapping of str to mapping
        Tissue presets: settings (SI) applied with :meth:`MultiCompartmentModel.set`.
    method : str
        The fitting method ``microlearn fit`` uses when none is given: ``mix``, or
        ``posterior`` for a family whose least-squares optimum is poorly determined.
    """

    name: str
    factory: Callable[..., MultiCompartmentModel]
    description: str
    fibre_counts: tuple[int, ...]
    scheme: str
    compared_maps: tuple[str, ...]
    training_fibres: Mapping[int, float]
    phantom_tissue: Mapping[int, Mapping[str, tuple[float, float]]] = field(
        default_factory=lambda: FIBRE_TISSUE)
    phantom_csf: Mapping[str, float] | None = None
    start: str = "search"
    tissues: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    method: str = "mix"

    @property
    def has_fibres(self) -> bool:
        """True when the family has fibre populations (and orientation maps)."""
        return any(k > 0 for k in self.fibre_counts)

    @property
    def default_fibres(self) -> int:
        """The fibre count used when none is given: 1 when supported, else the first."""
        return 1 if 1 in self.fibre_counts else self.fibre_counts[0]

    @property
    def setting_names(self) -> list[str]:
        """Keyword settings of the factory (e.g. ``d_par``, ``d_iso``)."""
        params = inspect.signature(self.factory).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def build(self, n_fibres: int | None = None, *, tissue: str | None = None,
              settings: Mapping[str, float] | None = None) -> MultiCompartmentModel:
        """The family's model with ``n_fibres`` populations, a tissue preset and settings.

        Parameters
        ----------
        n_fibres : int, optional
            Fibre populations; ignored by families without fibres.
        tissue : str, optional
            A key of :attr:`tissues`: its settings go to the factory.
        settings : mapping of str to float, optional
            Factory settings (SI), after the preset (see :attr:`setting_names`).

        Returns
        -------
        MultiCompartmentModel
        """
        kwargs = {}
        if tissue is not None:
            if tissue not in self.tissues:
                raise ValueError(f"tissue: {tissue!r} is not a preset of {self.name}; "
                                 f"choose one of {sorted(self.tissues) or 'none'}.")
            kwargs.update(self.tissues[tissue])
        kwargs.update({k: float(v) for k, v in (settings or {}).items()})
        bad = sorted(set(kwargs) - set(self.setting_names))
        if bad:
            raise ValueError(f"settings: {bad} are not settings of {self.name}; valid "
                             f"names: {', '.join(self.setting_names) or 'none'}.")
        if not self.has_fibres:
            return self.factory(**kwargs)
        n = self.default_fibres if n_fibres is None else n_fibres
        if n not in (0, 1, 2, 3):
            raise ValueError(f"n_fibres: {self.name} models have 0, 1, 2 or 3 fibre "
                             f"populations, not {n!r}.")
        return self.factory(int(n), **kwargs)


FAMILIES: dict[str, ModelFamily] = {}


def register(record: ModelFamily) -> ModelFamily:
    """Add (or replace) a family record; returns it."""
    FAMILIES[record.name] = record
    return record


def family(name: str) -> ModelFamily:
    """The record of a family by name.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(FAMILIES)} "
                         f"or give a model spec (.json).") from None


def family_of(model) -> ModelFamily | None:
    """The family record of a model (object or family name), or None for a composed one."""
    name = model if isinstance(model, str) else getattr(model, "family", "custom")
    return FAMILIES.get(name)


def family_names() -> list[str]:
    """Registered family names, in registration order."""
    return list(FAMILIES)


def has_fibres(model) -> bool:
    """True when ``model`` (object or family name) belongs to a family with fibre
    populations, which can be rebuilt with 0–3 fibres; False for IVIM-like families and
    composed models."""
    record = family_of(model)
    return record is not None and record.has_fibres


def compared_maps(model) -> tuple[str, ...]:
    """The scalar maps compare scores for a model: its family's, else its targets."""
    record = family_of(model)
    if record is not None:
        return record.compared_maps
    return tuple(model.targets)


def uses_segmented_start(model) -> bool:
    """True when a fit of ``model`` starts with IVIM's segmented fit."""
    record = family_of(model)
    names = set(getattr(model, "parameter_names", ()))
    return (record is not None and record.start == "segmented"
            and {"d", "d_star", "f"} <= names)


def default_method(model) -> str:
    """The fitting method used for a model when none is given (its family's, else mix)."""
    record = family_of(model)
    return record.method if record is not None else "mix"


def default_scheme(model) -> str:
    """The built-in scheme a model is simulated on when none is given."""
    record = family_of(model)
    if record is not None:
        return record.scheme
    return "hcp"


def _register_builtins() -> None:
    from .builtin import activeax, axcaliber, ivim, noddi, zcd

    register(ModelFamily(
        "noddi", noddi, "NODDI: Watson-dispersed stick + tortuous zeppelin + CSF ball",
        (0, 1, 2, 3), "hcp", ("odi", "icvf", "fiso"), {0: 0.1, 1: 0.3, 2: 0.3, 3: 0.3},
        phantom_csf={"fiso": 1.0}, tissues=FIBRE_TISSUES))
    register(ModelFamily(
        "activeax", activeax, "ActiveAx: cylinder (axon diameter) + tortuous zeppelin + ball",
        (1, 2, 3), "activeax", ("diameter", "icvf", "fiso"), {1: 1.0, 2: 1.0, 3: 1.0},
        phantom_csf={"fiso": 1.0}, tissues=FIBRE_TISSUES))
    register(ModelFamily(
        "axcaliber", axcaliber, "AxCaliber: gamma-distributed cylinders (diameter "
        "distribution) + tortuous zeppelin + ball; --tissue exvivo for fixed tissue",
        (1, 2, 3), "activeax", ("diameter_mean", "icvf", "fiso"), {1: 1.0, 2: 1.0, 3: 1.0},
        phantom_tissue=AXCALIBER_TISSUE, phantom_csf={"fiso": 1.0}, tissues=FIBRE_TISSUES))
    register(ModelFamily(
        "zcd", zcd, "ZCD: zeppelin + cylinder + dot", (1, 2, 3), "activeax",
        ("diameter", "icvf", "f_dot"), {1: 1.0, 2: 1.0, 3: 1.0},
        phantom_csf={"f_dot": 0.0},
        tissues={k: {"d_par": v["d_par"]} for k, v in FIBRE_TISSUES.items()}))
    register(ModelFamily(
        "ivim", ivim, "IVIM: perfusion + tissue balls (low b)", (0,), "ivim",
        ("f", "d", "d_star"), {0: 1.0}, phantom_tissue=IVIM_TISSUE, start="segmented"))

    from .spherical import mcsmt, sandi, smt

    register(ModelFamily(
        "smt", smt, "SMT: one spherical-mean microscopic tensor (d∥, d⊥, micro FA/MD)", (0,),
        "hcp", ("d_par", "d_perp", "micro_fa"), {0: 1.0}, phantom_tissue=SMT_TISSUE))
    register(ModelFamily(
        "mcsmt", mcsmt, "MC-SMT: spherical-mean stick + tortuous zeppelin + CSF ball", (0,),
        "hcp", ("icvf", "d_par", "fiso"), {0: 1.0}, phantom_tissue=MCSMT_TISSUE,
        phantom_csf={"fiso": 1.0}))
    register(ModelFamily(
        "sandi", sandi, "SANDI: neurites (sticks) + soma (sphere) + extra-cellular ball, "
        "on powder averages", (0,), "sandi", ("f_neurite", "f_soma", "f_extra", "rs", "d_in"),
        {0: 1.0}, phantom_tissue=SANDI_TISSUE, method="posterior"))


def get_model(name: str, n_fibres: int = 1) -> MultiCompartmentModel:
    """A built-in model by family name (see :mod:`microlearn.models.registry`).

    Parameters
    ----------
    name : str
        A registered family (``noddi``, ``activeax``, ``zcd``, ``ivim``...).
    n_fibres : {0, 1, 2, 3}
        Fibre populations; ignored by families without fibres (``ivim``).

    Returns
    -------
    MultiCompartmentModel

    Raises
    ------
    ValueError
        For an unknown name.
    """
    return family(name).build(n_fibres)


_register_builtins()

__all__ = ["FAMILIES", "FIBRE_TISSUES", "ModelFamily", "compared_maps", "default_method",
           "default_scheme", "family", "family_names", "family_of", "get_model", "has_fibres",
           "register", "uses_segmented_start"]
