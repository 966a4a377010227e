"""Volume-fraction rules: from free parameters to per-compartment fractions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..parameters import Parameter


def fraction_param(name: str, description: str, prior=(0.0, 1.0)) -> Parameter:
    """A dimensionless fraction in [0, 1] with a uniform prior on ``prior``.

    Parameters
    ----------
    name : str
        Parameter name (``"icvf"``, ``"fiso"``, ``"f_stick"``...).
    description : str
        Human-readable description.
    prior : (float, float)
        Range of the uniform simulation prior.

    Returns
    -------
    Parameter
    """
    return Parameter(name, "", (0.0, 1.0), 1.0, kind="fraction", description=description,
                     prior_bounds=tuple(prior))


class FractionRule:
    """Turns free parameters into fractions ``(*batch, n_compartments)``."""

    def __call__(self, values) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def total_fraction(self, values, prefix: str) -> np.ndarray:
        """Sum of the fractions of compartments whose instance name starts with ``prefix``.

        Parameters
        ----------
        values : dict of str to ndarray
            Free parameters, each ``(*batch,)``.
        prefix : str
            Instance-name prefix (``"cylinder"`` matches ``cylinder_1``, ``cylinder_2``).

        Returns
        -------
        ndarray, shape (*batch,)
        """
        f = self(values)
        idx = [i for i, n in enumerate(self.compartments) if n.startswith(prefix)]
        return f[..., idx].sum(-1)


@dataclass(frozen=True)
class FreeFractions(FractionRule):
    """One free weight ``f_<instance>`` per compartment, normalised to sum to one.

    With ``single`` (two compartments), one fraction parameter gives ``(f, 1 - f)``.

    Attributes
    ----------
    compartments : tuple of str
        Instance names, in model order.
    single : Parameter, optional
        The one fraction parameter of a two-compartment model.
    """

    compartments: tuple[str, ...]
    single: Parameter | None = None

    @property
    def parameters(self):
        if self.single is not None:
            return (self.single,)
        return tuple(fraction_param(f"f_{n}", f"Volume fraction of {n}.")
                     for n in self.compartments)

    def __call__(self, values):
        if self.single is not None:
            f = np.asarray(values[self.single.name], dtype=float)
            return np.stack([f, 1.0 - f], axis=-1)
        w = np.stack([np.asarray(values[f"f_{n}"], dtype=float) for n in self.compartments], -1)
        total = w.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, w / total, 1.0 / len(self.compartments))


@dataclass(frozen=True)
class NestedFractions(FractionRule):
    """Fibre models: isotropic fraction, intra fraction per fibre, fibre weights.

    fractions = fiso for the isotropic compartment; for fibre i with (intra, extra):
    (1 - fiso) w_i icvf_i and (1 - fiso) w_i (1 - icvf_i), with w_i = ffib_i / Σ ffib.

    Attributes
    ----------
    compartments : tuple of str
        Instance names, in model order.
    fibres : tuple of tuple of str
        (intra, extra) instance names of each fibre population.
    isotropic : tuple of str
        Instance names of the isotropic compartments.
    fiso_name : str or None
        Name of the isotropic fraction parameter (None: no isotropic part).
    intra_name : str
        Base name of the intra-axonal fraction parameters (``icvf``).
    """

    compartments: tuple[str, ...]
    fibres: tuple[tuple[str, ...], ...]
    isotropic: tuple[str, ...]
    fiso_name: str | None = "fiso"
    intra_name: str = "icvf"

    @property
    def parameters(self):
        n = len(self.fibres)
        out = []
        for i in range(1, n + 1):
            sfx = f"_{i}" if n > 1 else ""
            if len(self.fibres[i - 1]) == 2:
                out.append(fraction_param(
                    f"{self.intra_name}{sfx}",
                    "Intra-axonal (intra-neurite) volume fraction of the tissue"
                    + (f" of fibre {i}." if n > 1 else "."), prior=(0.1, 0.9)))
        if n > 1:
            out += [fraction_param(f"ffib_{i}", f"Weight of fibre population {i}.",
                                   prior=(0.25, 1.0)) for i in range(1, n + 1)]
        if self.fiso_name and self.isotropic:
            out.append(fraction_param(self.fiso_name, "Isotropic (free water) volume fraction.",
                                      prior=(0.0, 0.5)))
        return tuple(out)

    def __call__(self, values):
        n = len(self.fibres)
        index = {c: k for k, c in enumerate(self.compartments)}
        names = [p.name for p in self.parameters]
        arrays = [np.asarray(values[k], dtype=float) for k in names]
        batch = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
        out = np.zeros(batch + (len(self.compartments),))
        if n == 0:
            out[..., [index[c] for c in self.isotropic]] = 1.0 / len(self.isotropic)
            return out
        fiso = (np.asarray(values[self.fiso_name], dtype=float)
                if self.fiso_name and self.isotropic else np.zeros(batch))
        if n > 1:
            w = np.stack([np.asarray(values[f"ffib_{i}"], dtype=float)
                          for i in range(1, n + 1)], -1)
            w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
        else:
            w = np.ones(batch + (1,))
        for i, fibre in enumerate(self.fibres):
            sfx = f"_{i + 1}" if n > 1 else ""
            share = (1.0 - fiso) * w[..., i]
            if len(fibre) == 2:
                icvf = np.asarray(values[f"{self.intra_name}{sfx}"], dtype=float)
                out[..., index[fibre[0]]] = share * icvf
                out[..., index[fibre[1]]] = share * (1.0 - icvf)
            else:
                out[..., index[fibre[0]]] = share
        for c in self.isotropic:
            out[..., index[c]] = fiso / len(self.isotropic)
        return out
