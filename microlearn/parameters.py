"""Parameter records and parameter spaces.

One frozen :class:`Parameter` per model parameter drives optimiser bounds, simulation
priors, learning targets, CLI map names and widget sliders. A :class:`ParameterSpace`
is an ordered collection that packs named arrays into one ``(*batch, n)`` vector and
back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from .units import DISPLAY_SCALE

KINDS = (
    "diffusivity",
    "fraction",
    "orientation",
    "dispersion",
    "length",
    "signal",
    "other",
)


@dataclass(frozen=True)
class Parameter:
    """One model parameter, in SI units.

    Parameters
    ----------
    name : str
        Identifier, also the map/file name (``"odi"``, ``"d_par"``, ``"mu"``).
    unit : str
        SI unit (``"m²/s"``, ``"m"``, ``"rad"``, ``""`` for dimensionless).
    bounds : tuple of float
        ``(low, high)`` in SI. For orientations, the bounds of each angle.
    scale : float
        Typical magnitude, so that ``value / scale`` is O(1) for optimisers.
    cardinality : int
        Number of scalars (2 for an orientation stored as ``(theta, phi)``).
    kind : str
        One of :data:`KINDS`.
    description : str
        One sentence for tooltips and help texts.
    display_unit : str
        Unit used by widgets and reports (``"µm²/ms"``, ``"µm"``).
    prior : str
        ``"uniform"`` (on ``prior_bounds``) or ``"sphere"`` (uniform orientations).
    prior_bounds : tuple of float, optional
        Range of the uniform simulation prior, within ``bounds`` (default ``bounds``).
    """

    name: str
    unit: str
    bounds: tuple[float, float]
    scale: float = 1.0
    cardinality: int = 1
    kind: str = "other"
    description: str = ""
    display_unit: str = ""
    prior: str = "uniform"
    prior_bounds: tuple[float, float] | None = None

    def __post_init__(self):
        if self.prior_bounds is None:
            object.__setattr__(self, "prior_bounds", tuple(self.bounds))
        if self.kind not in KINDS:
            raise ValueError(f"Parameter {self.name!r}: kind={self.kind!r} not in {KINDS}.")
        lo, hi = self.bounds
        if not lo <= hi:
            raise ValueError(f"Parameter {self.name!r}: bounds {self.bounds} are not ordered.")
        if self.display_unit not in DISPLAY_SCALE:
            raise ValueError(
                f"Parameter {self.name!r}: unknown display unit {self.display_unit!r}."
            )

    @property
    def display_scale(self) -> float:
        """Multiplier from the display unit to SI."""
        return DISPLAY_SCALE[self.display_unit]

    def renamed(self, name: str, description: str | None = None) -> Parameter:
        """A copy with a new name (and optionally description).

        Parameters
        ----------
        name : str
            New name (e.g. ``"odi_2"``).
        description : str, optional
            New description; the old one is kept when absent.

        Returns
        -------
        Parameter
        """
        return replace(self, name=name, description=description or self.description)

    def with_bounds(self, low: float, high: float) -> Parameter:
        """A copy with new bounds.

        Parameters
        ----------
        low, high : float
            Bounds in the parameter's SI unit.

        Returns
        -------
        Parameter
        """
        return replace(self, bounds=(float(low), float(high)))


def orientation(name: str = "mu", description: str = "Fibre orientation") -> Parameter:
    """An orientation parameter stored as ``(theta, phi)`` in radians.

    Parameters
    ----------
    name : str
        Parameter name (``"mu"``, ``"mu_2"``...).
    description : str
        Human-readable description.

    Returns
    -------
    Parameter
        Cardinality 2 (polar and azimuth angles), kind ``"orientation"``.
    """
    return Parameter(
        name=name,
        unit="rad",
        bounds=(-np.pi, np.pi),
        scale=1.0,
        cardinality=2,
        kind="orientation",
        description=description + " as polar/azimuth angles (theta, phi).",
        display_unit="rad",
        prior="sphere",
    )


class ParameterSpace:
    """Ordered set of :class:`Parameter` with packing helpers.

    Parameters
    ----------
    parameters : iterable of Parameter
        The parameters, in vector order.
    """

    def __init__(self, parameters: Iterable[Parameter]):
        self.parameters = tuple(parameters)
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"ParameterSpace: duplicate parameter names in {names}.")
        self._by_name = {p.name: p for p in self.parameters}
        slices, start = {}, 0
        for p in self.parameters:
            slices[p.name] = slice(start, start + p.cardinality)
            start += p.cardinality
        self._slices = slices
        self.size = start

    def __iter__(self):
        return iter(self.parameters)

    def __len__(self):
        return len(self.parameters)

    def __contains__(self, name):
        return name in self._by_name

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"No parameter {name!r}; known: {self.names}") from None

    def __repr__(self):
        return f"ParameterSpace({', '.join(self.names)})"

    @property
    def names(self) -> list[str]:
        """Parameter names in vector order."""
        return [p.name for p in self.parameters]

    def slice(self, name: str) -> slice:
        """Slice of one parameter in the packed vector.

        Parameters
        ----------
        name : str
            Parameter name.

        Returns
        -------
        slice
            Columns of the ``(*batch, size)`` array that hold ``name``.
        """
        return self._slices[name]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the packed vector, in SI."""
        lo = np.empty(self.size)
        hi = np.empty(self.size)
        for p in self.parameters:
            s = self._slices[p.name]
            if p.kind == "orientation":
                lo[s], hi[s] = (0.0, -np.pi), (np.pi, np.pi)
            else:
                lo[s], hi[s] = p.bounds
        return lo, hi

    def scales(self) -> np.ndarray:
        """Typical magnitude of every packed entry."""
        out = np.empty(self.size)
        for p in self.parameters:
            out[self._slices[p.name]] = p.scale
        return out

    def pack(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """Pack named arrays into one ``(*batch, size)`` array.

        Parameters
        ----------
        values : mapping of str to float or ndarray
            Every parameter by name, in SI units: scalars or ``(*batch,)`` arrays;
            orientations as ``(*batch, 2)`` angles in rad or ``(*batch, 3)`` unit vectors.

        Returns
        -------
        ndarray, shape (*batch, size)

        Raises
        ------
        ValueError
            When a parameter is missing.
        """
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ValueError(f"Missing parameters {missing}; expected {self.names}.")
        cols = []
        for p in self.parameters:
            v = np.asarray(values[p.name], dtype=float)
            if p.kind == "orientation":
                if v.shape[-1] == 3:
                    v = cartesian_to_angles(v)
                cols.append(v)
            else:
                cols.append(v[..., None])
        if not cols:  # a model without free parameters (e.g. NODDI with 0 fibres)
            return np.zeros((0,))
        batch = np.broadcast_shapes(*(c.shape[:-1] for c in cols))
        return np.concatenate([np.broadcast_to(c, batch + c.shape[-1:]) for c in cols], axis=-1)

    def unpack(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Split a packed array into named arrays (views).

        Parameters
        ----------
        array : ndarray, shape (*batch, size)

        Returns
        -------
        dict of str to ndarray
            ``(*batch,)`` per scalar parameter, ``(*batch, 2)`` angles per orientation.
        """
        array = np.asarray(array)
        if array.shape[-1] != self.size:
            raise ValueError(f"Expected last axis of size {self.size}, got {array.shape}.")
        out = {}
        for p in self.parameters:
            s = self._slices[p.name]
            out[p.name] = array[..., s] if p.cardinality > 1 else array[..., s.start]
        return out


def angles_to_cartesian(angles: np.ndarray) -> np.ndarray:
    """Unit vectors from polar and azimuth angles.

    Parameters
    ----------
    angles : ndarray, shape (*batch, 2)
        Polar angle θ and azimuth φ in rad.

    Returns
    -------
    ndarray, shape (*batch, 3)
        Unit vectors (sin θ cos φ, sin θ sin φ, cos θ).
    """
    angles = np.asarray(angles, dtype=float)
    theta, phi = angles[..., 0], angles[..., 1]
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def cartesian_to_angles(vectors: np.ndarray) -> np.ndarray:
    """Polar and azimuth angles of vectors.

    Parameters
    ----------
    vectors : ndarray, shape (*batch, 3)
        Any non-zero vectors (zero vectors give θ = 0).

    Returns
    -------
    ndarray, shape (*batch, 2)
        Polar angle θ in [0, π] and azimuth φ in (-π, π], in rad.
    """
    v = np.asarray(vectors, dtype=float)
    norm = np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.clip(v[..., 2] / norm, -1.0, 1.0)
    theta = np.arccos(np.where(norm > 0, z, 1.0))
    phi = np.arctan2(v[..., 1], v[..., 0])
    return np.stack([theta, phi], axis=-1)
