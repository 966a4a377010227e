"""Linearised dictionary fit (AMICO-style, Daducci et al. 2015): the fast baseline.

Each voxel's orientation comes from DIPY's tensor fit and is snapped to the nearest of a
fixed set of hemisphere directions. For every direction the candidate atoms (tissue atoms
of the search grid, plus the distinct isotropic atoms) form one dictionary, and all voxels
sharing that direction are solved together by non-negative least squares (FISTA on the
shared Gram matrix). Parameters are the coefficient-weighted means of the atoms'
parameters, as in AMICO; the isotropic fraction is the isotropic coefficients' share.
"""

from __future__ import annotations

import numpy as np

from ..schemes import hemisphere_directions
from .engine import Engine
from .search import outer_fraction_name

#: Directions the voxel orientations are snapped to (AMICO uses ~500).
N_DIRECTIONS = 500
#: FISTA iterations.
N_ITER = 400


def fista_nnls(gram, dty, lipschitz, n_iter=N_ITER):
    """min ½‖D x − y‖², x >= 0 for a block sharing one dictionary.

    Parameters
    ----------
    gram : ndarray, shape (A, A)
        DᵀD.
    dty : ndarray, shape (V, A)
        Dᵀy per voxel.
    """
    x = np.zeros_like(dty)
    z, t = x.copy(), 1.0
    step = 1.0 / lipschitz
    for _ in range(n_iter):
        x_new = np.maximum(z - step * (z @ gram - dty), 0.0)
        t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
        z = x_new + ((t - 1) / t_new) * (x_new - x)
        x, t = x_new, t_new
    return x


class DictionaryEngine(Engine):
    """AMICO-style rotated dictionary + NNLS; no nonlinear refinement."""

    name = "dictionary"

    def __init__(self, model, acq, *, n_candidates: int = 120, **kw):
        super().__init__(model, acq, n_candidates=n_candidates, **kw)
        if self.n_orient > 1:
            raise ValueError(
                "the dictionary engine fits single-fibre or isotropic models; use "
                "method='mix' for several fibres.")
        self.directions = hemisphere_directions(N_DIRECTIONS)

    def _iso_atoms(self):
        tab = self.table
        flat = tab.iso.reshape(tab.n_candidates, -1)
        _, first, inverse = np.unique(np.round(flat, 10), axis=0, return_index=True,
                                      return_inverse=True)
        return first, inverse.ravel()

    def fit_block(self, y, sigma=None, directions=None):
        tab = self.table
        V = y.shape[0]
        dirs = self.initial_directions(y, directions)
        if sigma is not None:  # first-order removal of the Rician noise floor
            y = np.sqrt(np.maximum(y**2 - np.asarray(sigma)[:, None] ** 2, 0.0))
        C = tab.n_candidates
        iso_first, iso_of = self._iso_atoms() if tab.iso is not None else (np.zeros(0, int),
                                                                           None)
        if self.n_orient:
            snap = np.argmax(np.abs(dirs[:, 0] @ self.directions.T), axis=1)
        else:
            snap = np.zeros(V, int)
        coef_t = np.zeros((V, C))
        coef_i = np.zeros((V, iso_first.size))
        for d in np.unique(snap):
            rows = np.flatnonzero(snap == d)
            direction = self.directions[d][None] if self.n_orient else None
            T = tab.atoms(tab.tissue, direction)[0]  # (C, N)
            atoms = [T]
            if iso_first.size:
                atoms.append(tab.atoms(tab.iso[iso_first], direction)[0])
            D = np.concatenate(atoms, 0)  # (A, N)
            gram = D @ D.T
            lip = np.linalg.eigvalsh(gram)[-1]
            x = fista_nnls(gram, y[rows] @ D.T, lip)
            coef_t[rows], coef_i[rows] = x[:, :C], x[:, C:]
        tissue = coef_t.sum(1)
        iso = coef_i.sum(1)
        total = tissue + iso
        values = {}
        for name, grid in tab.values.items():
            if iso_first.size and self._iso_only(name):
                w = coef_i
                g = grid[iso_first]
                values[name] = (w @ g) / np.maximum(w.sum(1), 1e-30)
            else:
                values[name] = (coef_t @ grid) / np.maximum(tissue, 1e-30)
        outer = outer_fraction_name(self.model)
        if outer is not None:
            values[outer] = iso / np.maximum(total, 1e-30)
        x = self._pack(values, dirs, total)
        x = self.canonical(x)
        success = (total > 0) & np.all(np.isfinite(x), axis=1)
        return x[:, :-1], x[:, -1], success

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
