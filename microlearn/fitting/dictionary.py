"""Linearised dictionary fit (AMICO-style, Daducci et al. 2015): the fast baseline.

Each voxel's orientation comes from DIPY's tensor fit and is snapped to the nearest of a
fixed set of hemisphere directions. For every direction the candidate atoms (tissue atoms
of the search grid, plus the distinct isotropic atoms) form one dictionary, and all voxels
sharing that direction are solved together by non-negative least squares (on the
shared Gram matrix with a small ridge on the tissue atoms; exact active-set NNLS,
compiled and parallel over voxels, see :mod:`microlearn.fitting.nnls`). Parameters are
the coefficient-weighted means of the atoms' parameters (ODI through the mean κ), as in
AMICO; the isotropic fraction is the isotropic coefficients' share. For oriented models the
coefficients are AMICO's: free water from the NNLS fit, a non-negative lasso on the tissue
atoms, and an NNLS refit of the chosen atoms (debiasing).
"""

from __future__ import annotations

import numpy as np
from numba import parallel_chunksize

from ..compartments.dispersion import kappa_to_odi, odi_to_kappa
from ..schemes import hemisphere_directions
from .engine import Engine
from .nnls import nnls_gram
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


class DictionaryEngine(Engine):
    """AMICO-style rotated dictionary + NNLS; no nonlinear refinement."""

    name = "dictionary"
    convergence = ("exact active-set NNLS (finite termination); no answer when no atom is "
                   "selected")
    threaded = True  # the compiled NNLS is parallel over voxels

    def __init__(self, model, acq, *, n_candidates: int = 144,
                 ridge: tuple[float, float] | None = None, lasso: float = LASSO_L1, **kw):
        super().__init__(model, acq, n_candidates=n_candidates, **kw)
        self._dictionaries = {}
        self.ridge = (RIDGE if self.n_orient else RIDGE_ISOTROPIC) if ridge is None else ridge
        self.lasso = float(lasso)

        if self.n_orient > 1:
            raise ValueError(
                "the dictionary engine fits single-fibre or isotropic models; use "
                "method='mix' for several fibres.")
        self.directions = hemisphere_directions(N_DIRECTIONS)

    @property
    def table(self):
        """Candidate atoms on an interior grid (no degenerate atoms at the bounds)."""
        if self._table is None:
            from .search import CandidateTable

            self._table = CandidateTable.build(self.model, self.acq, self.n_candidates,
                                               interior=True)
        return self._table

    @staticmethod
    def _distinct(atoms):
        """Indices of the first of each distinct atom in ``atoms`` (C, ...)."""
        flat = atoms.reshape(atoms.shape[0], -1)
        _, first = np.unique(np.round(flat, 10), axis=0, return_index=True)
        return np.sort(first)

    def _iso_atoms(self):
        """Distinct isotropic atoms (none for models without an isotropic part)."""
        tab = self.table
        return self._distinct(tab.iso) if tab.iso is not None else np.zeros(0, int)

    def _tissue_atoms(self):
        """Distinct tissue atoms (IVIM's do not depend on D*: 12 of 144 grid points)."""
        return self._distinct(self.table.tissue)

    def fit_block(self, y, sigma=None, directions=None):
        tab = self.table
        V = y.shape[0]
        dirs = self.initial_directions(y, directions)
        if sigma is not None:  # first-order removal of the Rician noise floor
            y = np.sqrt(np.maximum(y**2 - np.asarray(sigma)[:, None] ** 2, 0.0))
        tissue_first = self._tissue_atoms()
        C = tissue_first.size
        iso_first = self._iso_atoms()
        if self.n_orient:
            snap = np.argmax(np.abs(dirs[:, 0] @ self.directions.T), axis=1)
        else:
            snap = np.zeros(V, int)
        used, group = np.unique(snap, return_inverse=True)
        grams = np.empty((used.size, C + iso_first.size, C + iso_first.size))
        dty = np.empty((V, C + iso_first.size))
        for k, d in enumerate(used):  # one matrix product per direction, not per voxel
            rows = np.flatnonzero(group == k)
            D, grams[k] = self._dictionary(d, tissue_first, iso_first)
            dty[rows] = y[rows] @ D.T
        group = group.ravel()
        with parallel_chunksize(32):  # active sets of different sizes: small work chunks
            x = nnls_gram(grams, group, dty)
        if self.n_orient and iso_first.size and self.lasso > 0:
            x = self._sparse_debiased(y, x, used, group, dty, grams, tissue_first, iso_first)
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

    def _sparse_debiased(self, y, x, used, group, dty, grams, tissue_first, iso_first):
        """AMICO's sparse estimate (Daducci et al. 2015) from the NNLS solution ``x``.

        The isotropic part of the NNLS fit is removed from the signal, the tissue atoms
        (scaled to unit norm) are fitted to the rest by a non-negative lasso (λ1 =
        ``lasso``, λ2 = 1e-3: an NNLS in Gram form with Dᵀy − λ1), and the chosen atoms plus
        the isotropic ones are refitted by NNLS (debiasing).
        """
        C = tissue_first.size
        rhs_lasso = np.empty((y.shape[0], C))
        grams_lasso = np.empty((used.size, C, C))
        support_rhs = dty.copy()
        for k, d in enumerate(used):
            rows = np.flatnonzero(group == k)
            D = self._dictionary(d, tissue_first, iso_first)[0]
            norms = np.linalg.norm(D[:C], axis=1)
            unit = D[:C] / norms[:, None]
            grams_lasso[k] = unit @ unit.T + LASSO_L2 * np.eye(C)
            rest = np.maximum(y[rows] - x[rows, C:] @ D[C:], 0.0)
            rhs_lasso[rows] = rest @ unit.T - self.lasso
        with parallel_chunksize(32):
            chosen = nnls_gram(grams_lasso, group, rhs_lasso) > 0
        keep = np.concatenate([chosen, np.ones((y.shape[0], iso_first.size), bool)], axis=1)
        # atoms left out get a strongly negative Dᵀy, so the active set never takes them
        out = -10.0 * np.abs(dty).max(axis=1, keepdims=True)
        support_rhs = np.where(keep, support_rhs, out)
        with parallel_chunksize(32):
            return nnls_gram(grams, group, support_rhs)

    def _dictionary(self, d, tissue_first, iso_first):
        """Atoms (A, N) rotated to hemisphere direction ``d`` and their Gram matrix (cached)."""
        if d not in self._dictionaries:
            tab = self.table
            direction = self.directions[d][None] if self.n_orient else None
            atoms = [tab.atoms(tab.tissue[tissue_first], direction)[0]]
            if iso_first.size:
                atoms.append(tab.atoms(tab.iso[iso_first], direction)[0])
            D = np.concatenate(atoms, 0).astype(float)
            gram = D @ D.T
            scale = np.trace(gram) / gram.shape[0]
            diag = np.arange(gram.shape[0])
            tissue = diag < tissue_first.size
            gram[diag, diag] += np.where(tissue, self.ridge[0], self.ridge[1]) * scale
            self._dictionaries[d] = (D, gram)
        return self._dictionaries[d]

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
