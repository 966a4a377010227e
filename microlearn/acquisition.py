"""The acquisition: b-values, gradient directions and timings, in SI units."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

import numpy as np

from .units import GAMMA, MS, MT_PER_M, S_PER_MM2, bvals_to_si

log = logging.getLogger(__name__)

#: b-values below this (s/m²) count as b0 (50 s/mm²).
B0_THRESHOLD = 50e6
#: Two b-values belong to one shell when closer than max(5 s/mm², 5 % of b).
SHELL_ABS_TOLERANCE = 5e6
SHELL_REL_TOLERANCE = 0.05
#: Used instead of B0_THRESHOLD when the data have several b-values below 200 s/mm² (IVIM).
IVIM_B0_THRESHOLD = 5e6

#: Echo times closer than this (s) form one TE group.
TE_TOLERANCE = 0.5e-3

HCP_TIMING = {"delta": 10.6 * MS, "Delta": 43.1 * MS, "TE": 89.5 * MS}


def _per_measurement(value, n, name):
    if value is None:
        return None
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    arr = arr.ravel()
    if arr.size != n:
        raise ValueError(
            f"{name} has {arr.size} values but there are {n} measurements; give one value "
            f"for all measurements or one per measurement."
        )
    return arr


def _fill_b0_timings(bvals, delta, Delta, b0_threshold):
    """b0 rows have no gradient, so their δ, Δ do not matter: rows whose timings are not a
    valid PGSE pair (e.g. δ = Δ = 0 in scheme files) take the median timings of the
    diffusion-weighted rows (or HCP's when there are none)."""
    b0 = bvals <= b0_threshold
    invalid = b0 & ~((delta > 0) & (Delta > delta))
    if not invalid.any():
        return delta, Delta
    dw = ~b0 & (delta > 0) & (Delta > delta)
    d_fill = float(np.median(delta[dw])) if dw.any() else HCP_TIMING["delta"]
    D_fill = float(np.median(Delta[dw])) if dw.any() else HCP_TIMING["Delta"]
    delta, Delta = delta.copy(), Delta.copy()
    delta[invalid], Delta[invalid] = d_fill, D_fill
    return delta, Delta


def gradient_strength(bvals, delta, Delta):
    """Gradient strength G in T/m from b (s/m²), δ and Δ (s) for a PGSE sequence.

    Uses b = (γ G δ)² (Δ − δ/3).
    """
    bvals = np.asarray(bvals, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.sqrt(np.clip(bvals, 0, None) / (Delta - delta / 3.0)) / (GAMMA * delta)
    return np.where(bvals > 0, g, 0.0)


def b_value(G, delta, Delta):
    """b-value in s/m² of a PGSE sequence with strength G (T/m), δ and Δ (s)."""
    return (GAMMA * np.asarray(G) * delta) ** 2 * (Delta - delta / 3.0)


@dataclass(frozen=True, eq=False)
class Acquisition:
    """A diffusion acquisition in SI units.

    Parameters
    ----------
    bvals : ndarray, shape (n,)
        b-values in s/m².
    bvecs : ndarray, shape (n, 3)
        Unit gradient directions (zero rows allowed for b0).
    delta, Delta : ndarray, shape (n,)
        Gradient pulse duration δ and separation Δ in s.
    TE : ndarray, shape (n,) or None
        Echo time in s.
    G : ndarray, shape (n,)
        Gradient strength in T/m (derived from b, δ, Δ when not given).
    name : str
        A label (scheme name or file stem).
    b0_threshold : float
        b-values (s/m²) at or below this are b0 (default 50 s/mm²).
    assumed : tuple of str
        Timings (``delta``, ``Delta``, ``TE``) the data did not give, filled with HCP's
        (:data:`HCP_TIMING`); input checks warn about them.
    """

    bvals: np.ndarray
    bvecs: np.ndarray
    delta: np.ndarray
    Delta: np.ndarray
    TE: np.ndarray | None = None
    G: np.ndarray | None = None
    name: str = "custom"
    b0_threshold: float = B0_THRESHOLD
    assumed: tuple = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        bvals = np.asarray(self.bvals, dtype=float).ravel()
        n = bvals.size
        bvecs = np.asarray(self.bvecs, dtype=float)
        if bvecs.ndim != 2 or bvecs.shape[1] != 3 or bvecs.shape[0] != n:
            raise ValueError(
                f"bvecs must have shape ({n}, 3) to match {n} bvals, got {bvecs.shape}."
            )
        delta = _per_measurement(self.delta, n, "delta")
        Delta = _per_measurement(self.Delta, n, "Delta")
        delta, Delta = _fill_b0_timings(bvals, delta, Delta, self.b0_threshold)
        dw = bvals > self.b0_threshold
        bad = dw & ~((delta > 0) & (Delta > delta))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"Timings need 0 < delta < Delta (seconds) on diffusion-weighted measurements; "
                f"measurement {i} has delta={delta[i]:g}, Delta={Delta[i]:g}. Check the "
                "timings' unit (seconds) and order (delta is the pulse duration)."
            )
        G = _per_measurement(self.G, n, "G")
        if G is None:
            G = gradient_strength(bvals, delta, Delta)
        for name, value in [("bvals", bvals), ("bvecs", bvecs), ("delta", delta),
                            ("Delta", Delta), ("G", G)]:
            value = np.ascontiguousarray(value)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        te = _per_measurement(self.TE, n, "TE")
        if te is not None:
            te.setflags(write=False)
        object.__setattr__(self, "TE", te)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_bvals_bvecs(cls, bvals, bvecs, *, bvals_unit="s/m^2", delta=None, Delta=None,
                         TE=None, G=None, name="custom", check=True, b0_threshold=None):
        """Build an acquisition from b-values and vectors.

        Parameters
        ----------
        bvals : array_like, shape (n,)
            b-values in ``bvals_unit``.
        bvecs : array_like, shape (n, 3) or (3, n)
            Gradient directions; non-b0 rows must be unit length.
        bvals_unit : str
            Unit of ``bvals``: ``"s/m^2"`` (SI, default), ``"s/mm^2"`` (FSL/HCP files) or
            ``"ms/um^2"``. Must be given explicitly when not SI.
        delta, Delta, TE : float or array_like, optional
            Timings in s. When absent, the HCP timings are used with a logged note.
        G : float or array_like, optional
            Gradient strength in T/m; derived from b, δ, Δ when absent.
        check : bool
            Check that the b-values look like ``bvals_unit`` says.
        b0_threshold : float, optional
            b-values (s/m²) at or below this are b0. Default 50 s/mm², or 5 s/mm² when the
            data hold several distinct b-values below 200 s/mm² (an IVIM protocol).
        """
        raw = np.asarray(bvals, dtype=float).ravel()
        if check:
            check_bvals_unit(raw, bvals_unit)
        b = bvals_to_si(raw, bvals_unit)
        vecs = np.asarray(bvecs, dtype=float)
        if vecs.ndim == 2 and vecs.shape[0] == 3 and vecs.shape[1] != 3:
            vecs = vecs.T
        if vecs.ndim != 2 or vecs.shape[1] != 3:
            raise ValueError(f"bvecs must have shape (n, 3) or (3, n), got {vecs.shape}.")
        if vecs.shape[0] != b.size:
            raise ValueError(
                f"bvals has {b.size} entries but bvecs has {vecs.shape[0]}; they must match."
            )
        if b0_threshold is None:
            low = np.unique(np.round(b[(b > IVIM_B0_THRESHOLD) & (b < 200e6)] / 5e6))
            b0_threshold = IVIM_B0_THRESHOLD if low.size >= 3 else B0_THRESHOLD
        if not np.any(b <= b0_threshold):
            raise ValueError(
                f"There is no b0 volume (no b-value <= {b0_threshold / S_PER_MM2:g} s/mm²); "
                "microlearn needs at least one to normalise the signal (the b0 threshold "
                "is set with --b0-threshold, in s/mm²)."
            )
        vecs = normalise_bvecs(vecs, b > b0_threshold)
        assumed = ()
        if delta is None or Delta is None:
            given = {"delta": delta, "Delta": Delta, "TE": TE}
            assumed = tuple(k for k, v in given.items() if v is None)
            log.info("No delta/Delta given: using the HCP timings (%s).", ", ".join(
                f"{k} {HCP_TIMING[k] / MS:g} ms" for k in assumed))
            delta = HCP_TIMING["delta"] if delta is None else delta
            Delta = HCP_TIMING["Delta"] if Delta is None else Delta
            TE = HCP_TIMING["TE"] if TE is None else TE
        return cls(b, vecs, delta, Delta, TE=TE, G=G, name=name, b0_threshold=b0_threshold,
                   assumed=assumed)

    @classmethod
    def from_dipy(cls, gtab, *, delta=None, Delta=None, TE=None, name="dipy"):
        """Build from a :class:`dipy.core.gradients.GradientTable` (bvals in s/mm²).

        Timings come from ``gtab.small_delta`` / ``gtab.big_delta`` (in s) when set.
        """
        delta = delta if delta is not None else getattr(gtab, "small_delta", None)
        Delta = Delta if Delta is not None else getattr(gtab, "big_delta", None)
        return cls.from_bvals_bvecs(gtab.bvals, gtab.bvecs, bvals_unit="s/mm^2", delta=delta,
                                    Delta=Delta, TE=TE, name=name)

    def to_dipy(self):
        """A :class:`dipy.core.gradients.GradientTable` (bvals in s/mm², timings in s)."""
        from dipy.core.gradients import gradient_table

        bvecs = self.bvecs.copy()
        bvecs[self.b0_mask] = 0.0
        kw = {}
        if np.allclose(self.delta, self.delta[0]) and np.allclose(self.Delta, self.Delta[0]):
            kw = {"small_delta": float(self.delta[0]), "big_delta": float(self.Delta[0])}
        return gradient_table(self.bvals / S_PER_MM2, bvecs=bvecs,
                              b0_threshold=self.b0_threshold / S_PER_MM2, **kw)

    @classmethod
    def scheme(cls, name: str) -> Acquisition:
        """A built-in scheme: ``"hcp"``, ``"activeax"`` or ``"ivim"``."""
        from .schemes import SCHEMES

        try:
            return SCHEMES[name]()
        except KeyError:
            raise ValueError(
                f"Unknown scheme {name!r}; choose one of {sorted(SCHEMES)}."
            ) from None

    # ------------------------------------------------------------------ properties
    @property
    def n_measurements(self) -> int:
        """Number of measurements (volumes)."""
        return self.bvals.size

    @property
    def b0_mask(self) -> np.ndarray:
        """Boolean mask of b0 measurements."""
        return self.bvals <= self.b0_threshold

    @property
    def n_b0(self) -> int:
        """Number of b0 measurements."""
        return int(self.b0_mask.sum())

    @property
    def qvals(self) -> np.ndarray:
        """q = γGδ/2π in 1/m."""
        return GAMMA * self.G * self.delta / (2 * np.pi)

    def _shells(self):
        """Shells: measurements of one b (within max(5 s/mm², 5 %)) and one δ, Δ and TE
        (within 0.1 ms, 0.1 ms and :data:`TE_TOLERANCE`); b0 measurements form one shell."""
        if "shells" not in self._cache:
            te = np.zeros(self.n_measurements) if self.TE is None else self.TE
            keys = np.stack([self.bvals, self.delta, self.Delta, te], axis=1)
            order = np.lexsort((keys[:, 3], keys[:, 2], keys[:, 1], keys[:, 0]))
            index = np.empty(self.n_measurements, dtype=int)
            reps = []
            for i in order:
                b, d, D, t = keys[i]
                for k, (rb, rd, rD, rt) in enumerate(reps):
                    if b <= self.b0_threshold and rb <= self.b0_threshold:
                        index[i] = k
                        break
                    tol = max(SHELL_ABS_TOLERANCE, SHELL_REL_TOLERANCE * rb)
                    if (abs(b - rb) < tol and abs(d - rd) < 1e-4 and abs(D - rD) < 1e-4
                            and abs(t - rt) < TE_TOLERANCE):
                        index[i] = k
                        break
                else:
                    index[i] = len(reps)
                    reps.append((b, d, D, t))
            shell_b = np.array([np.mean(self.bvals[index == k]) for k in range(len(reps))])
            self._cache["shells"] = (index, shell_b)
        return self._cache["shells"]

    def shell_table(self) -> list[dict]:
        """One row per shell (b0 shell first): ``b`` (s/m², mean), ``delta``, ``Delta``,
        ``TE`` (s, medians; TE None when unknown) and ``n`` measurements."""
        rows = []
        for k, b in enumerate(self.shell_bvals):
            sel = self.shell_index == k
            rows.append({"b": float(b), "delta": float(np.median(self.delta[sel])),
                         "Delta": float(np.median(self.Delta[sel])),
                         "TE": None if self.TE is None else float(np.median(self.TE[sel])),
                         "n": int(sel.sum())})
        return rows

    @property
    def shell_index(self) -> np.ndarray:
        """Shell number of every measurement (shells sorted by b, b0 shell first)."""
        return self._shells()[0]

    @property
    def shell_bvals(self) -> np.ndarray:
        """Mean b-value (s/m²) of each shell, b0 shell included."""
        return self._shells()[1]

    @property
    def shells(self) -> np.ndarray:
        """Mean b-value (s/m²) of each non-b0 shell."""
        b = self.shell_bvals
        return b[b > self.b0_threshold]

    def _te_groups(self):
        if "te" not in self._cache:
            if self.TE is None:
                index, values = np.zeros(self.n_measurements, int), np.array([np.nan])
            else:
                key = np.round(self.TE / TE_TOLERANCE)
                _, first, index = np.unique(key, return_index=True, return_inverse=True)
                values = np.array([np.mean(self.TE[index == k]) for k in range(first.size)])
            self._cache["te"] = (index.ravel(), values)
        return self._cache["te"]

    @property
    def te_index(self) -> np.ndarray:
        """Echo-time group of every measurement, shape (n,) (all 0 without TE or with one TE).

        Measurements whose TE differ by less than :data:`TE_TOLERANCE` share a group.
        """
        return self._te_groups()[0]

    @property
    def te_values(self) -> np.ndarray:
        """Mean echo time (s) of each TE group, ascending (``[nan]`` without TE)."""
        return self._te_groups()[1]

    @property
    def n_te(self) -> int:
        """Number of echo-time groups."""
        return self.te_values.size

    def check_te_groups(self, source: str = "acquisition") -> None:
        """Raise ``ValueError`` naming every TE group that has no b0 measurement.

        Each TE group is normalised by its own b0s (T2 weighting differs between echo
        times), so each needs at least one.
        """
        idx, values = self._te_groups()
        has_b0 = np.bincount(idx[self.b0_mask], minlength=values.size) > 0
        if not has_b0.all():
            missing = ", ".join(f"{v / MS:.1f} ms" for v in values[~has_b0])
            raise ValueError(
                f"{source}: echo time(s) {missing} have no b0 measurement, so their signal "
                "cannot be normalised (each TE has its own T2 weighting); acquire or keep a "
                "b0 at every TE, or drop those measurements."
            )

    def describe(self) -> str:
        """A human-readable one-paragraph summary."""
        parts = []
        for k, b in enumerate(self.shell_bvals):
            sel = self.shell_index == k
            parts.append(
                f"b={b / S_PER_MM2:.0f} s/mm² x{sel.sum()}"
                f" (δ={self.delta[sel][0] / MS:.1f} ms, Δ={self.Delta[sel][0] / MS:.1f} ms,"
                f" G={self.G[sel].max() / MT_PER_M:.0f} mT/m)"
            )
        text = f"{self.name}: {self.n_measurements} measurements, {self.n_b0} b0; " + "; ".join(
            parts)
        if self.n_te > 1:
            text += "; TE " + ", ".join(f"{v / MS:.1f}" for v in self.te_values) + " ms"
        return text

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-ready dict (SI units)."""
        d = {"name": self.name, "bvals": self.bvals.tolist(), "bvecs": self.bvecs.tolist(),
             "delta": self.delta.tolist(), "Delta": self.Delta.tolist(), "G": self.G.tolist(),
             "b0_threshold": self.b0_threshold, "assumed": list(self.assumed)}
        d["TE"] = None if self.TE is None else self.TE.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Acquisition:
        """Inverse of :meth:`to_dict`."""
        return cls(np.asarray(d["bvals"]), np.asarray(d["bvecs"]), d["delta"], d["Delta"],
                   TE=d.get("TE"), G=d.get("G"), name=d.get("name", "custom"),
                   b0_threshold=d.get("b0_threshold", B0_THRESHOLD),
                   assumed=tuple(d.get("assumed", ())))

    def fingerprint(self) -> str:
        """A short hash of b-values, directions and timings (for matching data to models)."""
        h = hashlib.sha1()
        for arr in (self.bvals / S_PER_MM2, self.bvecs, self.delta / MS, self.Delta / MS):
            h.update(np.round(np.asarray(arr, dtype=float), 3).tobytes())
        return h.hexdigest()[:16]

    def matches(self, other: Acquisition, *, rtol=1e-3) -> bool:
        """True when both acquisitions have the same measurements (to ``rtol``)."""
        if self.n_measurements != other.n_measurements:
            return False
        scale_b = max(self.bvals.max(), 1.0)
        return (
            np.allclose(self.bvals, other.bvals, atol=rtol * scale_b)
            and np.allclose(np.abs(np.sum(self.bvecs * other.bvecs, -1))[~self.b0_mask], 1.0,
                            atol=1e-3)
            and np.allclose(self.delta, other.delta, rtol=rtol)
            and np.allclose(self.Delta, other.Delta, rtol=rtol)
        )

    def subset(self, index) -> Acquisition:
        """The acquisition restricted to measurements ``index``."""
        te = None if self.TE is None else self.TE[index]
        return Acquisition(self.bvals[index], self.bvecs[index], self.delta[index],
                           self.Delta[index], TE=te, G=self.G[index], name=self.name,
                           b0_threshold=self.b0_threshold, assumed=self.assumed)

    def __repr__(self):
        return f"Acquisition({self.describe()})"

    def to_json(self) -> str:
        """JSON string of :meth:`to_dict`."""
        return json.dumps(self.to_dict())


#: Plausible largest b-value per unit: clinical to preclinical protocols reach b from
#: ~50 s/mm² (IVIM) to 10⁶ s/mm² (ex vivo); the same range in s/m² is 5·10⁷–10¹².
BVAL_RANGES = {"s/mm^2": (20.0, 1e6), "s/m^2": (2e7, 1e12), "ms/um^2": (0.02, 1e3)}
_BVAL_FLAG = {"s/mm^2": "s/mm2", "s/m^2": "s/m2", "ms/um^2": "ms/um2"}


def _unit_key(unit: str) -> str:
    key = unit.replace("²", "^2").replace("µ", "u").replace(" ", "")
    key = {"s/mm2": "s/mm^2", "s/m2": "s/m^2", "ms/um2": "ms/um^2"}.get(key, key)
    if key not in BVAL_RANGES:
        raise ValueError(f"b-value unit {unit!r} is not known; use one of 's/mm2', 's/m2' or "
                         "'ms/um2'.")
    return key


def check_bvals_unit(bvals: np.ndarray, unit: str, source: str = "bvals") -> None:
    """Raise ``ValueError`` when b-values cannot be in ``unit``.

    The largest b-value must lie in the plausible range of ``unit``
    (:data:`BVAL_RANGES`): 20–10⁶ s/mm², 2·10⁷–10¹² s/m² or 0.02–1000 ms/µm². The ranges
    of s/mm² and s/m² do not overlap, so a preclinical b of 10⁵ s/mm² is never mistaken
    for s/m² (which is ~10⁸–10¹⁰). The message names the unit the values look like and the
    ``--bvals-unit`` / ``bvals_unit`` value that states it.
    """
    bmax = float(np.max(bvals)) if np.size(bvals) else 0.0
    key = _unit_key(unit)
    if bmax <= 0:
        return
    lo, hi = BVAL_RANGES[key]
    if lo <= bmax <= hi:
        return
    names = {"s/mm^2": "s/mm²", "s/m^2": "s/m²", "ms/um^2": "ms/µm²"}
    likely = [k for k, (a, b) in BVAL_RANGES.items() if k != key and a <= bmax <= b]
    # prefer the neighbouring unit in the direction of the mismatch
    if likely:
        order = sorted(likely, key=lambda k: BVAL_RANGES[k][0], reverse=bmax > hi)
        guess = order[0]
        raise ValueError(
            f"{source}: largest b-value is {bmax:.3g}, which looks like {names[guess]}, not "
            f"{names[key]} (plausible {lo:g}–{hi:g}); state the unit with --bvals-unit "
            f"{_BVAL_FLAG[guess]} (Python: bvals_unit='{guess}') or convert the file."
        )
    raise ValueError(
        f"{source}: largest b-value {bmax:.3g} is implausible in {names[key]} (expected "
        f"{lo:g}–{hi:g}); check the file and state its unit with --bvals-unit."
    )


def normalise_bvecs(bvecs: np.ndarray, dw_mask: np.ndarray, source: str = "bvecs"):
    """Check that diffusion-weighted directions are unit length (to 2 %) and normalise."""
    norms = np.linalg.norm(bvecs, axis=1)
    bad = dw_mask & (np.abs(norms - 1.0) > 0.02)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: {int(bad.sum())} diffusion-weighted direction(s) are not unit length "
            f"(e.g. volume {i} has norm {norms[i]:.3g}); normalise them or check the file."
        )
    out = np.zeros_like(bvecs)
    ok = norms > 0
    out[ok] = bvecs[ok] / norms[ok, None]
    return out
