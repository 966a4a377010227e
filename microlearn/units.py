"""SI constants and unit converters.

Everything inside microlearn is SI: b in s/m², diffusivity in m²/s, lengths in m,
times in s, gradient strength in T/m. Conversions happen only at the boundaries
(file readers, ``from_*`` constructors, CLI flags, widget display).
"""

from __future__ import annotations

import numpy as np

#: Gyromagnetic ratio of the proton in rad/(s·T).
GAMMA = 2.6752218744e8

#: One s/mm² expressed in s/m².
S_PER_MM2 = 1e6
#: One ms/µm² expressed in s/m².
MS_PER_UM2 = 1e9
#: One µm²/ms (the usual display unit of diffusivity) expressed in m²/s.
UM2_PER_MS = 1e-9
#: One mm²/s expressed in m²/s.
MM2_PER_S = 1e-6
#: One micrometre in metres.
UM = 1e-6
#: One millisecond in seconds.
MS = 1e-3
#: One mT/m in T/m.
MT_PER_M = 1e-3

#: Multipliers from a named b-value unit to s/m².
BVAL_UNITS = {
    "s/m^2": 1.0,
    "s/m2": 1.0,
    "s/mm^2": S_PER_MM2,
    "s/mm2": S_PER_MM2,
    "ms/um^2": MS_PER_UM2,
    "ms/um2": MS_PER_UM2,
}

#: Multipliers from a display unit to SI, used by widgets and reports.
DISPLAY_SCALE = {
    "": 1.0,
    "1": 1.0,
    "rad": 1.0,
    "m²/s": 1.0,
    "µm²/ms": UM2_PER_MS,
    "mm²/s": MM2_PER_S,
    "m": 1.0,
    "µm": UM,
    "s": 1.0,
    "ms": MS,
    "s/m²": 1.0,
    "s/mm²": S_PER_MM2,
    "T/m": 1.0,
    "mT/m": MT_PER_M,
}


def bvals_to_si(bvals, unit: str) -> np.ndarray:
    """Convert b-values from ``unit`` to s/m².

    Parameters
    ----------
    bvals : array_like, shape (n,)
        b-values in ``unit``.
    unit : {"s/m^2", "s/mm^2", "ms/um^2"}
        Unit of ``bvals``.

    Returns
    -------
    ndarray, shape (n,)
        b-values in s/m².
    """
    key = unit.replace("²", "^2").replace("µ", "u").replace(" ", "")
    if key not in BVAL_UNITS:
        raise ValueError(
            f"bvals_unit={unit!r} is not known; use one of 's/m^2', 's/mm^2' or 'ms/um^2'."
        )
    return np.asarray(bvals, dtype=float) * BVAL_UNITS[key]


def to_display(value, display_unit: str):
    """Convert an SI value to ``display_unit`` (e.g. m²/s -> µm²/ms).

    Parameters
    ----------
    value : float or ndarray
        Value in SI units.
    display_unit : str
        A key of :data:`DISPLAY_SCALE` (``"µm²/ms"``, ``"µm"``, ``"ms"``...).

    Returns
    -------
    ndarray
        ``value`` in ``display_unit``, same shape.
    """
    return np.asarray(value) / DISPLAY_SCALE[display_unit]


def from_display(value, display_unit: str):
    """Convert a value in ``display_unit`` to SI.

    Parameters
    ----------
    value : float or ndarray
        Value in ``display_unit``.
    display_unit : str
        A key of :data:`DISPLAY_SCALE`.

    Returns
    -------
    ndarray
        ``value`` in SI units, same shape.
    """
    return np.asarray(value) * DISPLAY_SCALE[display_unit]
