"""Global search for the MIX stage 1 and the dictionary engine.

Single-fibre built-in models are axially symmetric, so a candidate's signal depends only
on the measurement and on c² = (g·μ)². Candidate signals are tabulated once per
acquisition on a c² grid and interpolated for every voxel's orientation, which makes the
search a few array gathers and matrix products for a whole block of voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...acquisition import Acquisition
from ...compartments.gaussian import tensor_design

#: Points of the c² grid used to tabulate candidate signals.
C2_GRID = 129
#: Target number of candidates in the global search.
N_CANDIDATES = 400


def min_length_bound(p) -> float:
    """Lowest diameter any engine fits: the parameter's lower prior bound.

    With clinical and preclinical gradients (G <= 300 mT/m) diameters below ~2 µm barely
    change the signal; without this bound, voxels with small true diameters drift to the
    hard bound (0.1 µm) on noise. A value at this bound reads "this small or smaller".
    """
    return float(max(p.bounds[0], p.prior_bounds[0]))



def outer_fraction_name(model) -> str | None:
    """The fraction splitting tissue from isotropic compartments (fiso, f_dot, f)."""
    for name in ("fiso", "f_dot", "f"):
        if name in model.parameter_names:
            return name
    return None


def search_names(model) -> list[str]:
    """Free non-orientation parameters explored by the global search."""
    outer = outer_fraction_name(model)
    return [p.name for p in model.parameters if p.kind != "orientation" and p.name != outer]


def _axis_values(p, n, interior=False):
    lo, hi = p.bounds
    if p.name.startswith("ffib"):
        lo, hi = 0.25, 1.0
    if p.kind == "length":
        return np.geomspace(min_length_bound(p), hi, n)
    if (p.kind == "diffusivity" or p.unit == "s") and lo > 0:  # diffusivities, T2
        return np.geomspace(lo, hi, n)
    if p.kind == "dispersion":
        hi = min(hi, 0.9)
    if interior:  # cell midpoints: no atom at a bound (icvf = 0 makes ODI meaningless)
        return lo + (hi - lo) * (np.arange(n) + 0.5) / n
    return np.linspace(lo, hi, n)


def candidate_grid(model, n_candidates: int = N_CANDIDATES, *,
                   interior: bool = False) -> dict[str, np.ndarray]:
    """A regular grid (product of axes) over :func:`search_names`, about ``n_candidates``.

    ``interior=True`` places linear axes at cell midpoints instead of on the bounds.
    """
    names = search_names(model)
    if not names:
        return {}
    per_axis = max(2, int(round(n_candidates ** (1.0 / len(names)))))
    axes = [_axis_values(model.parameters[n], per_axis, interior) for n in names]
    mesh = np.meshgrid(*axes, indexing="ij")
    return {n: m.ravel() for n, m in zip(names, mesh)}


def _pack(model, values, n, orientation=(0.0, 0.0)):
    full = {}
    for p in model.parameters:
        if p.kind == "orientation":
            full[p.name] = np.broadcast_to(np.asarray(orientation, float), (n, 2))
        elif p.name in values:
            full[p.name] = np.broadcast_to(values[p.name], (n,))
        else:
            full[p.name] = np.full(n, 0.5 * sum(p.prior_bounds))
    return model.parameters.pack(full)


@dataclass
class CandidateTable:
    """Tissue and isotropic atoms of every candidate, tabulated on a c² grid.

    Attributes
    ----------
    values : dict of ndarray, shape (C,)
        Candidate values of the searched parameters.
    tissue, iso : ndarray, shape (C, U, Q)
        Signals with the outer fraction at 0 and at 1, per unique measurement setting u
        and c² grid point q (Q = 1 for orientation-free models).
    setting : ndarray of int, shape (N,)
        Unique setting of every measurement.
    """

    model: object
    acq: Acquisition
    values: dict
    tissue: np.ndarray
    iso: np.ndarray | None
    setting: np.ndarray

    @classmethod
    def build(cls, model, acq, n_candidates: int = N_CANDIDATES, *,
              interior: bool = False) -> CandidateTable:
        """Tabulate the candidate atoms for ``model`` on ``acq`` (see :func:`candidate_grid`)."""
        if len(model.orientation_names) > 1:
            raise ValueError("CandidateTable needs a model with at most one orientation.")
        values = candidate_grid(model, n_candidates, interior=interior)
        n = len(next(iter(values.values()))) if values else 1
        relaxed = acq.TE is not None and bool(getattr(model, "relaxation", None))
        te = acq.TE if relaxed else np.zeros(acq.n_measurements)  # T2 models decay with TE
        keys = np.stack([acq.bvals, acq.delta, acq.Delta, acq.G, te], 1)
        _, first, setting = np.unique(np.round(keys, 12), axis=0, return_index=True,
                                      return_inverse=True)
        setting = setting.ravel()
        oriented = bool(model.orientation_names)
        q = C2_GRID if oriented else 1
        c = np.sqrt(np.linspace(0.0, 1.0, q)) if oriented else np.array([1.0])
        u = first.size
        vecs = np.stack([np.sqrt(1 - c**2), np.zeros_like(c), c], 1)
        virtual = Acquisition(
            np.repeat(acq.bvals[first], q), np.tile(vecs, (u, 1)),
            np.repeat(acq.delta[first], q), np.repeat(acq.Delta[first], q),
            G=np.repeat(acq.G[first], q), name="virtual", b0_threshold=acq.b0_threshold,
            TE=np.repeat(acq.TE[first], q) if relaxed else None)
        outer = outer_fraction_name(model)
        tissue = _evaluate(model, virtual, values, n, outer, 0.0).reshape(n, u, q)
        tissue = tissue.astype(np.float32)
        iso = None
        if outer is not None:
            iso = _evaluate(model, virtual, values, n, outer, 1.0).reshape(n, u, q)
            iso = iso.astype(np.float32)
        return cls(model, acq, values, tissue, iso, setting)

    @property
    def n_candidates(self) -> int:
        return self.tissue.shape[0]

    def atoms(self, table: np.ndarray, directions: np.ndarray | None) -> np.ndarray:
        """Interpolate ``table`` (C, U, Q) at each voxel's orientation.

        Returns
        -------
        ndarray, shape (V, C, N) or (1, C, N) for orientation-free models.
        """
        if table.shape[2] == 1 or directions is None:
            return table[:, self.setting, 0][None]
        c2 = np.clip((directions @ self.acq.bvecs.T) ** 2, 0.0, 1.0)  # (V, N)
        pos = c2 * (table.shape[2] - 1)
        i0 = np.minimum(pos.astype(int), table.shape[2] - 2)
        w = (pos - i0).astype(table.dtype)
        lo = table[:, self.setting[None, :], i0]  # (C, V, N)
        hi = table[:, self.setting[None, :], i0 + 1]
        return np.moveaxis(lo + (hi - lo) * w, 0, 1)


def _evaluate(model, acq, values, n, outer, outer_value):
    vals = dict(values)
    if outer is not None:
        vals[outer] = np.full(n, outer_value)
    return model.signal(acq, _pack(model, vals, n))


def nnls_two(a, b, y):
    """Batched non-negative least squares y ≈ α a + β b, α, β >= 0.

    Parameters
    ----------
    a, b : ndarray, shape (V or 1, C, N)
    y : ndarray, shape (V, N)

    Returns
    -------
    alpha, beta, sse : ndarray, shape (V, C)
    """
    aa = np.einsum("vcn,vcn->vc", a, a)
    bb = np.einsum("vcn,vcn->vc", b, b)
    ab = np.einsum("vcn,vcn->vc", a, b)
    ay = np.einsum("vcn,vn->vc", a, y) if a.shape[0] == y.shape[0] else y @ a[0].T
    by = np.einsum("vcn,vn->vc", b, y) if b.shape[0] == y.shape[0] else y @ b[0].T
    yy = np.einsum("vn,vn->v", y, y)[:, None]
    det = aa * bb - ab**2
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = (bb * ay - ab * by) / det
        beta = (aa * by - ab * ay) / det
        alpha_only = np.maximum(ay / aa, 0.0)
        beta_only = np.maximum(by / bb, 0.0)
    ok = (alpha >= 0) & (beta >= 0) & (det > 1e-12 * aa * bb)
    sse_both = (yy - 2 * (alpha * ay + beta * by) + alpha**2 * aa + 2 * alpha * beta * ab
                + beta**2 * bb)
    sse_a = yy - 2 * alpha_only * ay + alpha_only**2 * aa
    sse_b = yy - 2 * beta_only * by + beta_only**2 * bb
    use_a = ~ok & (sse_a <= sse_b)
    use_b = ~ok & ~use_a
    alpha = np.where(ok, alpha, np.where(use_a, alpha_only, 0.0))
    beta = np.where(ok, beta, np.where(use_b, beta_only, 0.0))
    sse = np.where(ok, sse_both, np.where(use_a, sse_a, sse_b))
    return alpha, beta, sse


def nonnegative_scale(a, y):
    """Batched y ≈ α a with α >= 0; a (V or 1, C, N), y (V, N) -> alpha, sse (V, C)."""
    aa = np.einsum("vcn,vcn->vc", a, a)
    ay = np.einsum("vcn,vn->vc", a, y) if a.shape[0] == y.shape[0] else y @ a[0].T
    alpha = np.maximum(ay / np.maximum(aa, 1e-30), 0.0)
    sse = np.einsum("vn,vn->v", y, y)[:, None] - 2 * alpha * ay + alpha**2 * aa
    return alpha, sse


def tensor_directions(acq, y, *, b_max=3.5e9) -> np.ndarray:
    """Principal diffusion directions of DIPY's OLS tensor fit, shape (V, 3).

    The same estimate as :func:`~microlearn.crossings.dipy_tools.tensor_fit` (DIPY's design
    matrix, measurements with b <= ``b_max``, signals clipped at 1e-6), with the principal
    eigenvector computed by the compiled :mod:`~microlearn.fitting.compiled.tensor_kernel`.
    The start is refined by the fit anyway (median angle to the truth 6.0° with OLS vs 5.7°
    with WLS on HCP-like NODDI voxels at SNR 30).
    """
    from ..compiled.tensor_kernel import principal_directions_ols

    keep = acq.bvals <= b_max
    if np.count_nonzero(keep & ~acq.b0_mask) < 6:
        keep = np.ones(acq.n_measurements, bool)
    bvals = np.where(acq.b0_mask, 0.0, acq.bvals)[keep] / 1e6  # s/mm², as DIPY
    pinv = np.linalg.pinv(tensor_design(bvals, acq.bvecs[keep]))
    data = np.asarray(y, dtype=float)
    data = np.ascontiguousarray(data if keep.all() else data[:, keep])
    return principal_directions_ols(data, np.ascontiguousarray(pinv), 1e-6)
