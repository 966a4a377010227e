"""Features for learned estimators: normalised signal, rotation invariants, hybrid.

* ``signal`` — the diffusion-weighted measurements divided by the voxel's mean b0.
* ``rotation-invariant`` — per shell, a least-squares fit of DIPY's real symmetric
  spherical-harmonic basis (``descoteaux07``) for all voxels at once, reduced to one
  number per even order l: the root of the rotational power ``sqrt(Σ_m c_lm²)``. The
  l = 0 term is the spherical mean times sqrt(4π). These need no fibre orientation: a
  rotated voxel gives the same features. Shells with too few directions for l = 2 give
  their spherical mean only.
* ``hybrid`` — parameters fitted by a fitting engine (non-orientation maps) followed by
  the rotation invariants.
* SHORE scalars (RTOP, MSD; :func:`microlearn.crossings.shore_features`) can be appended
  to any of them with ``shore=True``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

#: Feature families accepted by :class:`FeatureSpec`.
FEATURE_KINDS = ("signal", "rotation-invariant", "hybrid")
#: Laplace–Beltrami regularisation of the per-shell SH fits (tiny: stronger values make the
#: per-order power depend on orientation through the non-uniform gradient sampling).
SH_REGULARISATION = 1e-6


def normalise_by_b0(signal, acq):
    """Signals divided by each voxel's mean b0 (of each echo time), and a mask of unusable
    voxels (see :func:`microlearn.data.voxels.normalise`).

    Parameters
    ----------
    signal : ndarray, shape (n, N)
    acq : Acquisition

    Returns
    -------
    normalised : ndarray, shape (n, N), float64 (NaN rows where the b0 is not positive
        or a value is not finite)
    bad : ndarray of bool, shape (n,)
    """
    from ..data.voxels import normalise

    out, _, usable = normalise(np.asarray(signal, dtype=float), acq)
    bad = ~usable
    out[bad] = np.nan
    return out, bad


def max_sh_order(n_directions: int, lmax: int) -> int:
    """Largest even order <= ``lmax`` whose basis size fits ``n_directions`` points."""
    order = 0
    while order + 2 <= lmax and (order + 3) * (order + 4) // 2 <= n_directions:
        order += 2
    return order


@lru_cache(maxsize=32)
def _sh_projector(bvecs_bytes: bytes, n: int, lmax: int):
    from dipy.core.geometry import cart2sphere
    from dipy.reconst.shm import real_sh_descoteaux

    bvecs = np.frombuffer(bvecs_bytes).reshape(n, 3)
    _, theta, phi = cart2sphere(bvecs[:, 0], bvecs[:, 1], bvecs[:, 2])
    basis, _, l_values = real_sh_descoteaux(lmax, theta, phi, legacy=False)
    lap = np.diag((l_values * (l_values + 1.0)) ** 2)
    projector = np.linalg.solve(basis.T @ basis + SH_REGULARISATION * lap, basis.T)
    return projector, l_values


def feature_shells(acq, split_te: bool = True) -> np.ndarray:
    """Feature shell of every measurement (-1 for b0s): the acquisition's shells (b, δ, Δ),
    split by echo time when ``split_te``.

    A shell measured at several TEs is several shells here: after the per-TE b0
    normalisation their signals still differ when compartments have different T2, and an
    SH fit across them would read that difference as anisotropy (simulated multi-echo
    data: learned ODI at its lower bound in every voxel).
    """
    shells = acq.shell_index.astype(np.int64)
    if split_te and acq.n_te > 1:
        shells = shells * acq.n_te + acq.te_index
    _, shells = np.unique(shells, return_inverse=True)
    return np.where(acq.b0_mask, -1, shells.ravel()).astype(np.int64)


def shell_layout(acq, lmax: int = 6, split_te: bool = True):
    """Per non-b0 feature shell (:func:`feature_shells`): measurement indices and the SH
    order used.

    Returns
    -------
    list of (indices, order)
    """
    shells = feature_shells(acq, split_te)
    out = []
    for s in np.unique(shells[shells >= 0]):
        idx = np.flatnonzero(shells == s)
        out.append((idx, max_sh_order(idx.size, lmax)))
    return out


def rotation_invariant_features(normalised, acq, *, lmax: int = 6,
                                split_te: bool = True) -> np.ndarray:
    """Rotational power per shell and even SH order, shape ``(n, n_features)``.

    Parameters
    ----------
    normalised : ndarray, shape (n, N)
        Signals divided by the b0 mean (:func:`normalise_by_b0`).
    acq : Acquisition
    lmax : int
        Highest even SH order (limited per shell by its number of directions).
    split_te : bool
        One shell per echo time (:func:`feature_shells`).
    """
    normalised = np.asarray(normalised, dtype=float)
    cols = []
    for idx, order in shell_layout(acq, lmax, split_te):
        shell = normalised[:, idx]
        if order == 0:
            cols.append(shell.mean(axis=1, keepdims=True))
            continue
        g = np.ascontiguousarray(acq.bvecs[idx], dtype=float)
        projector, l_values = _sh_projector(g.tobytes(), idx.size, order)
        coef = shell @ projector.T
        power = np.stack([np.sqrt(np.sum(coef[:, l_values == ell] ** 2, axis=1))
                          for ell in range(0, order + 1, 2)], axis=1)
        cols.append(power)
    return np.concatenate(cols, axis=1)


@lru_cache(maxsize=32)
def _fused_projector(bvecs_bytes: bytes, shells_bytes: bytes, n: int, lmax: int):
    """All shells' SH projections as one (n, K) matrix and the (K, F) order grouping."""
    bvecs = np.frombuffer(bvecs_bytes).reshape(n, 3)
    shells = np.frombuffer(shells_bytes, dtype=np.int64)
    blocks = []
    for s in np.unique(shells[shells >= 0]):
        idx = np.flatnonzero(shells == s)
        order = max_sh_order(idx.size, lmax)
        if order == 0:
            blocks.append((idx, np.full((1, idx.size), 1.0 / idx.size), np.zeros(1), 0))
            continue
        g = np.ascontiguousarray(bvecs[idx])
        projector, l_values = _sh_projector(g.tobytes(), idx.size, order)
        blocks.append((idx, projector, l_values, order))
    n_coef = sum(b[1].shape[0] for b in blocks)
    n_feat = sum(b[3] // 2 + 1 for b in blocks)
    P, G = np.zeros((n, n_coef)), np.zeros((n_coef, n_feat))
    c0 = f0 = 0
    for idx, projector, l_values, order in blocks:
        P[idx, c0:c0 + projector.shape[0]] = projector.T
        for j, ell in enumerate(range(0, order + 1, 2)):
            G[c0 + np.flatnonzero(l_values == ell), f0 + j] = 1.0
        c0 += projector.shape[0]
        f0 += order // 2 + 1
    return P, G


def rotation_invariant_from_raw(signal, acq, *, lmax: int = 6):
    """:func:`rotation_invariant_features` of raw signals of a single-TE acquisition.

    The rotational power is homogeneous of degree 1 in the signal, so the per-voxel b0
    division is applied to the F features instead of the N measurements, and all shells
    are projected by one matrix product (3x faster than normalising first; equal to
    round-off).

    Returns
    -------
    features : ndarray, shape (n, F) (NaN rows for unusable voxels)
    bad : ndarray of bool, shape (n,)
        Voxels with a non-finite value or a non-positive b0 mean.
    """
    if acq.n_te != 1:
        raise ValueError("rotation_invariant_from_raw: one echo time only; use "
                         "normalise_by_b0 + rotation_invariant_features.")
    signal = np.asarray(signal, dtype=float)
    b0_mask = acq.b0_mask
    shells = np.where(b0_mask, -1, acq.shell_index).astype(np.int64)
    bvecs = np.ascontiguousarray(np.nan_to_num(acq.bvecs), dtype=float)
    P, G = _fused_projector(bvecs.tobytes(), shells.tobytes(), acq.n_measurements, int(lmax))
    finite = np.isfinite(signal)
    bad = ~np.all(finite, axis=1)
    if bad.any():
        signal = np.where(finite, signal, 0.0)
    b0 = signal[:, b0_mask].mean(axis=1)
    bad |= ~(b0 > 0)
    coef = signal @ P
    orders = np.flatnonzero(G.sum(axis=0) > 1)  # order-0-only shells keep the mean's sign
    feats = np.empty((len(signal), G.shape[1]))
    power = np.sqrt((coef * coef) @ G[:, orders])
    feats[:, orders] = power
    means = np.setdiff1d(np.arange(G.shape[1]), orders)
    if means.size:
        feats[:, means] = coef[:, np.argmax(G[:, means], axis=0)]
    with np.errstate(invalid="ignore", divide="ignore"):
        feats /= b0[:, None]
    feats[bad] = np.nan
    return feats, bad


def rotation_invariant_names(acq, *, lmax: int = 6, split_te: bool = True) -> list[str]:
    """Names of :func:`rotation_invariant_features` columns (``b1000_l2``, with several
    echo times ``b1000_te80_l2``...)."""
    names = []
    for idx, order in shell_layout(acq, lmax, split_te):
        b = int(round(float(np.mean(acq.bvals[idx])) / 1e6))
        te = (f"_te{float(np.mean(acq.TE[idx])) * 1e3:.0f}"
              if split_te and acq.n_te > 1 else "")
        names += [f"b{b}{te}_l{ell}" for ell in range(0, order + 1, 2)]
    return names


@dataclass(frozen=True)
class FeatureSpec:
    """Which features an estimator uses; stored with the estimator.

    Attributes
    ----------
    kind : {"signal", "rotation-invariant", "hybrid"}
    lmax : int
        Highest SH order of the rotation invariants.
    shore : bool
        Append SHORE RTOP and MSD (log-scaled).
    hybrid_method : str
        Fitting engine of the hybrid features.
    model : str
        Model family fitted for the hybrid features.
    split_te : bool
        Rotation invariants per shell and echo time (:func:`feature_shells`); False only
        for estimators saved before it existed.
    """

    kind: str = "rotation-invariant"
    lmax: int = 6
    shore: bool = False
    hybrid_method: str = "mix"
    model: str | dict = "noddi"
    split_te: bool = True

    def __post_init__(self):
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"features: unknown kind {self.kind!r}; choose one of "
                             f"{list(FEATURE_KINDS)}.")
        if self.lmax < 0 or self.lmax % 2:
            raise ValueError(f"lmax must be a non-negative even integer, not {self.lmax}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> FeatureSpec:
        return cls(**{"split_te": False, **d})  # older files: shells across echo times

    def compute(self, signal, acq, *, progress: bool = False):
        """Features of raw signals.

        Parameters
        ----------
        signal : ndarray, shape (n, N)
            Raw (or S0-normalised) signals.
        acq : Acquisition

        Returns
        -------
        features : ndarray, shape (n, F), float64; NaN rows for unusable voxels
        bad : ndarray of bool, shape (n,)
        """
        if self.kind == "rotation-invariant" and not self.shore and acq.n_te == 1:
            feats, bad = rotation_invariant_from_raw(signal, acq, lmax=self.lmax)
            bad = bad | ~np.all(np.isfinite(feats), axis=1)
            feats[bad] = np.nan
            return feats, bad
        norm, bad = normalise_by_b0(signal, acq)
        if self.kind == "signal":
            feats = norm[:, ~acq.b0_mask]
        else:
            feats = rotation_invariant_features(norm, acq, lmax=self.lmax,
                                                split_te=self.split_te)
        if self.kind == "hybrid":
            feats = np.concatenate([self._fitted(norm, bad, acq, progress), feats], axis=1)
        if self.shore:
            from ..crossings import shore_features

            sh = shore_features(acq, np.where(bad[:, None], 1.0, norm))
            extra = np.stack([np.log(np.clip(sh["rtop"], 1e-30, None)),
                              np.log(np.clip(sh["msd"], 1e-30, None))], axis=1)
            feats = np.concatenate([feats, extra], axis=1)
        bad = bad | ~np.all(np.isfinite(feats), axis=1)
        feats[bad] = np.nan
        return feats, bad

    def _fitted(self, norm, bad, acq, progress):
        from ..fitting import fit
        from ..models.spec import resolve_model

        model = resolve_model(self.model)
        data = np.where(bad[:, None], 1.0, norm)
        res = fit(model, acq, data, method=self.hybrid_method, progress=progress)
        maps = res.maps()
        # SI values; the estimators standardise every feature column
        return np.stack([np.asarray(maps[t], dtype=float) for t in model.targets], axis=1)

    def names(self, acq) -> list[str]:
        """Column names of :meth:`compute`."""
        if self.kind == "signal":
            base = [f"s{i}" for i in np.flatnonzero(~acq.b0_mask)]
        else:
            base = rotation_invariant_names(acq, lmax=self.lmax, split_te=self.split_te)
        if self.kind == "hybrid":
            from ..models.spec import resolve_model

            model = resolve_model(self.model)
            base = [f"fit_{t}" for t in model.targets] + base
        return base + (["log_rtop", "log_msd"] if self.shore else [])
