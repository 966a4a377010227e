"""Linearised dictionary fit (AMICO-style, Daducci et al. 2015): the fast baseline.

Each voxel's orientation comes from DIPY's tensor fit and is snapped to the nearest of a
fixed set of hemisphere directions. For every direction the candidate atoms (tissue atoms
of the search grid, plus the distinct isotropic atoms) form one dictionary, and all voxels
sharing that direction are solved together by non-negative least squares (on the
shared Gram matrix with a small ridge on the tissue atoms; exact active-set NNLS,
compiled and parallel over voxels, see :mod:`microlearn.fitting.compiled.nnls`). Parameters are
the coefficient-weighted means of the atoms' parameters (ODI through the mean κ), as in
AMICO; the isotropic fraction is the isotropic coefficients' share. For oriented models the
coefficients are AMICO's: free water from the NNLS fit, a non-negative lasso on the tissue
atoms, and an NNLS refit of the chosen atoms (debiasing).
"""

from __future__ import annotations

import time

import numpy as np
from numba import parallel_chunksize

from ...compartments.dispersion import kappa_to_odi, odi_to_kappa
from ...schemes import hemisphere_directions
from ..compiled.nnls import nnls_gram
from .base import Engine
from .search import outer_fraction_name

#: Directions the voxel orientations are snapped to (AMICO uses ~500).
N_DIRECTIONS = 500
#: Ridge weights (tissue atoms, isotropic atoms), relative to the Gram matrix's mean
#: diagonal, for models with a fibre orientation: they spread the coefficients over
#: neighbouring atoms, so their weighted means are smoother (NODDI, hcp, SNR 30, 8000
#: voxels: ODI/ICVF/FISO RMSE 0.118/0.034/0.074 without, 0.086/0.035/0.074 at 1e-4 at
#: ~5000 vox/s; 1e-3 gives 0.076/0.032/0.062 but the active sets grow, ~4x slower).
RIDGE = (1e-4, 1e-4)
#: The same for orientation-free models: IVIM's bi-exponential dictionary is far worse
#: conditioned and needs the pseudo-diffusion atoms held back (f RMSE / corr(D) on 8000
#: voxels: 0.118 / 0.83 without, 0.063 / 0.93 at (1e-3, 1e-2), ~70k vox/s).
RIDGE_ISOTROPIC = (1e-3, 1e-2)
#: AMICO's lasso weights for the tissue atoms of oriented models (``spams.lasso`` mode 2,
#: unit-norm atoms, normalised signal): λ1 selects few atoms, which are then refitted
#: (NODDI, hcp, SNR 30: ODI/ICVF/FISO RMSE 0.086/0.035/0.074 with NNLS alone,
#: 0.036/0.033/0.044 with lasso + debiasing + the κ-mean for ODI; AMICO 0.040/0.031/0.038).
LASSO_L1 = 0.5
LASSO_L2 = 1e-3


#: Dictionaries kept per (model, acquisition, settings), across calls and slabs.
_CACHE: dict = {}
#: At most this many kept (each up to ~170 MB for NODDI on the HCP scheme when every
#: direction is used).
CACHE_SIZE = 2


class _Dictionaries:
    """Rotated dictionaries and their Gram matrices per snapped direction, built on demand.

    ``D`` (K, A, N) holds the A atoms (distinct tissue atoms, then the distinct isotropic
    ones) rotated to each of the K snapped directions (K = 1 for orientation-free models)
    and ``grams`` (K, A, A) their ridged Gram matrices; only the rows of directions some
    voxel used are filled (``built``), all of a call's new directions at once.
    """

    def __init__(self, table, tissue_first, iso_first, directions, ridge):
        self.table, self.tissue_first, self.iso_first = table, tissue_first, iso_first
        self.directions = directions  # (K, 3) or None
        self.ridge = ridge
        K = 1 if directions is None else directions.shape[0]
        C, A = tissue_first.size, tissue_first.size + iso_first.size
        N = table.setting.size
        self.D = np.empty((K, A, N), np.float32)
        self.grams = np.empty((K, A, A))
        self.norms = np.empty((K, C))
        self.lasso = np.empty((K, C, C)) if directions is not None else None
        self.built = np.zeros(K, bool)

    def ensure(self, used):
        """Build the dictionaries of the directions ``used`` (int array) not built yet."""
        from ..compiled.dictionary_kernel import gram_matrices

        new = used[~self.built[used]]
        if not new.size:
            return
        tab = self.table
        dirs = None if self.directions is None else self.directions[new]
        parts = [tab.atoms(tab.tissue[self.tissue_first], dirs)]
        if self.iso_first.size:
            iso = tab.atoms(tab.iso[self.iso_first], dirs)
            parts.append(np.broadcast_to(iso, (parts[0].shape[0],) + iso.shape[1:]))
        atoms = np.concatenate(parts, axis=1)  # (k, A, N)
        self.D[new] = atoms
        sq = np.einsum("kan,kan->ka", atoms, atoms, dtype=float)  # squared atom norms
        C = self.tissue_first.size
        weight = np.where(np.arange(atoms.shape[1]) < C, self.ridge[0], self.ridge[1])
        ridge = weight[None] * (sq.sum(1) / atoms.shape[1])[:, None]  # rel. to mean diagonal
        self.grams[new] = gram_matrices(self.D, new, ridge)
        self.norms[new] = n = np.sqrt(sq[:, :C])
        if self.lasso is not None:  # unit-norm tissue atoms' Gram matrices plus LASSO_L2·I
            g = self.grams[new][:, :C, :C]
            diag = np.arange(C)
            g[:, diag, diag] = sq[:, :C]  # without the ridge
            self.lasso[new] = g / (n[:, :, None] * n[:, None, :]) + LASSO_L2 * np.eye(C)
        self.built[new] = True


def _model_key(model) -> tuple:
    return (model.name, tuple(model.parameter_names), repr(getattr(model, "links", None)))


class DictionaryEngine(Engine):
    """AMICO-style rotated dictionary + NNLS; no nonlinear refinement."""

    name = "dictionary"
    convergence = ("exact active-set NNLS (finite termination); no answer when no atom is "
                   "selected")
    threaded = True  # the compiled NNLS is parallel over voxels

    def __init__(self, model, acq, *, n_candidates: int = 144,
                 ridge: tuple[float, float] | None = None, lasso: float = LASSO_L1, **kw):
        super().__init__(model, acq, n_candidates=n_candidates, **kw)
        self.ridge = (RIDGE if self.n_orient else RIDGE_ISOTROPIC) if ridge is None else ridge
        self.lasso = float(lasso)

        if self.n_orient > 1:
            raise ValueError(
                "the dictionary engine fits single-fibre or isotropic models; use "
                "method='mix' for several fibres.")
        self.directions = hemisphere_directions(N_DIRECTIONS)
        #: Seconds spent building dictionaries (kept afterwards), counted as set-up.
        self.setup_extra = 0.0
        self._key = (_model_key(model), acq.fingerprint(), n_candidates, tuple(self.ridge))

    @property
    def table(self):
        """Candidate atoms on an interior grid (no degenerate atoms at the bounds)."""
        return self.dictionaries.table

    @property
    def dictionaries(self) -> _Dictionaries:
        """The kept dictionaries of this model, acquisition and settings."""
        dic = _CACHE.pop(self._key, None)
        if dic is None:
            from .search import CandidateTable

            tab = CandidateTable.build(self.model, self.acq, self.n_candidates, interior=True)
            iso_first = (self._distinct(tab.iso) if tab.iso is not None
                         else np.zeros(0, int))
            dic = _Dictionaries(tab, self._distinct(tab.tissue), iso_first,
                                self.directions if self.n_orient else None, self.ridge)
        _CACHE[self._key] = dic  # most recently used last
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        return dic

    @staticmethod
    def _distinct(atoms):
        """Indices of the first of each distinct atom in ``atoms`` (C, ...)."""
        flat = atoms.reshape(atoms.shape[0], -1)
        _, first = np.unique(np.round(flat, 10), axis=0, return_index=True)
        return np.sort(first)

    def fit_block(self, y, sigma=None, directions=None):
        from ..compiled.dictionary_kernel import project

        dic = self.dictionaries
        tab = dic.table
        V = y.shape[0]
        dirs = self.initial_directions(y, directions)
        if sigma is not None:  # first-order removal of the Rician noise floor
            y = np.sqrt(np.maximum(y**2 - np.asarray(sigma)[:, None] ** 2, 0.0))
        y = np.ascontiguousarray(y, dtype=float)
        tissue_first, iso_first = dic.tissue_first, dic.iso_first
        C = tissue_first.size
        if self.n_orient:
            snap = np.argmax(np.abs(dirs[:, 0] @ self.directions.T), axis=1)
        else:
            snap = np.zeros(V, np.int64)
        used = np.unique(snap)
        t0 = time.perf_counter()
        dic.ensure(used)
        self.setup_extra += time.perf_counter() - t0  # dictionaries are set-up, not voxels
        dty = project(dic.D, snap, y, 0, dic.D.shape[1])
        with parallel_chunksize(32):  # active sets of different sizes: small work chunks
            x = nnls_gram(dic.grams, snap, dty)
        if self.n_orient and iso_first.size and self.lasso > 0:
            x = self._sparse_debiased(dic, y, x, snap, dty)
        coef_t, coef_i = x[:, :C], x[:, C:]
        tissue = coef_t.sum(1)
        iso = coef_i.sum(1)
        total = tissue + iso
        values = {}
        for name, grid in tab.values.items():
            if iso_first.size and self._iso_only(name):
                w = coef_i
                g = grid[iso_first]
                values[name] = (w @ g) / np.maximum(w.sum(1), 1e-30)
            elif self.space[name].kind == "dispersion":  # AMICO: the mean κ, then ODI
                kappa = (coef_t @ odi_to_kappa(grid[tissue_first])) / np.maximum(tissue, 1e-30)
                values[name] = kappa_to_odi(kappa)
            else:
                values[name] = (coef_t @ grid[tissue_first]) / np.maximum(tissue, 1e-30)
        outer = outer_fraction_name(self.model)
        if outer is not None:
            values[outer] = iso / np.maximum(total, 1e-30)
        x = self._pack(values, dirs, total)
        x = self.canonical(x)
        success = (total > 0) & np.all(np.isfinite(x), axis=1)
        return x[:, :-1], x[:, -1], success

    def _sparse_debiased(self, dic, y, x, snap, dty):
        """AMICO's sparse estimate (Daducci et al. 2015) from the NNLS solution ``x``.

        The isotropic part of the NNLS fit is removed from the signal, the tissue atoms
        (scaled to unit norm) are fitted to the rest by a non-negative lasso (λ1 =
        ``lasso``, λ2 = 1e-3: an NNLS in Gram form with Dᵀy − λ1), and the chosen atoms plus
        the isotropic ones are refitted by NNLS (debiasing).
        """
        from ..compiled.dictionary_kernel import combine, project

        C = dic.tissue_first.size
        rest = np.maximum(y - combine(dic.D, snap, np.ascontiguousarray(x[:, C:]), C), 0.0)
        rhs_lasso = project(dic.D, snap, rest, 0, C) / dic.norms[snap] - self.lasso
        with parallel_chunksize(32):
            chosen = nnls_gram(dic.lasso, snap, rhs_lasso) > 0
        keep = np.concatenate([chosen, np.ones((y.shape[0], dic.iso_first.size), bool)], axis=1)
        # atoms left out get a strongly negative Dᵀy, so the active set never takes them
        out = -10.0 * np.abs(dty).max(axis=1, keepdims=True)
        support_rhs = np.where(keep, dty, out)
        with parallel_chunksize(32):
            return nnls_gram(dic.grams, snap, support_rhs)

    def _iso_only(self, name):
        """True when parameter ``name`` changes the isotropic atoms only (IVIM D*)."""
        tab = self.table
        same_others = np.ones(tab.n_candidates, bool)
        ref = tab.n_candidates // 2  # an interior candidate (edges can be degenerate)
        for other, g in tab.values.items():
            if other != name:
                same_others &= g == g[ref]
        rows = np.flatnonzero(same_others)
        if rows.size < 2:
            return False
        flat_t = tab.tissue.reshape(tab.n_candidates, -1)
        return bool(np.allclose(flat_t[rows[0]], flat_t[rows[-1]]))
