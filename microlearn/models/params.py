"""Parameter records of the built-in models (one place, read by every layer)."""

from __future__ import annotations

from ..compartments.base import MU as _MU
from ..compartments.base import ODI as _ODI
from ..parameters import Parameter
from .fractions import fraction_param

MU = _MU
ODI = _ODI.renamed("odi")
ICVF = fraction_param("icvf", "Intra-axonal volume fraction of the tissue.", prior=(0.1, 0.9))
FISO = fraction_param("fiso", "Isotropic (free water) volume fraction.", prior=(0.0, 0.5))


def diameter_param(name: str = "diameter") -> Parameter:
    """Axon diameter in m; bounds 0.1–20 µm, prior 1–10 µm.

    Parameters
    ----------
    name : str
        Parameter name (``"diameter"``, ``"diameter_2"``...).

    Returns
    -------
    Parameter
    """
    return Parameter(name, "m", (0.1e-6, 20e-6), 1e-6, kind="length",
                     description="Axon diameter (trust it above ~2 µm at G <= 300 mT/m).",
                     display_unit="µm", prior_bounds=(1e-6, 10e-6))


D_PERP_ZCD = Parameter("d_perp", "m²/s", (0.05e-9, 1.7e-9), 1e-9, kind="diffusivity",
                       description="Extra-axonal perpendicular diffusivity.",
                       display_unit="µm²/ms", prior_bounds=(0.2e-9, 1.2e-9))
D_TISSUE = Parameter("d", "m²/s", (0.05e-9, 3.5e-9), 1e-9, kind="diffusivity",
                     description="Tissue (true) diffusivity.", display_unit="µm²/ms",
                     prior_bounds=(0.5e-9, 2.0e-9))
D_STAR = Parameter("d_star", "m²/s", (3.0e-9, 100e-9), 10e-9, kind="diffusivity",
                   description="Perfusion pseudo-diffusivity.", display_unit="µm²/ms",
                   prior_bounds=(5e-9, 20e-9))
F_PERFUSION = fraction_param("f", "Perfusion fraction.", prior=(0.05, 0.3))
