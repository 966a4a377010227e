"""Information criteria and greedy next-fibre directions of fibre-count selection.

Used by :mod:`microlearn.fitting.selection` (see its docstring for the criterion, the
starts and the gating).
"""

from __future__ import annotations

import numpy as np

from ..crossings.dipy_tools import MIN_SEPARATION
from ..models import D_PAR_NODDI

CRITERIA = ("aic", "bic")


def n_free(model) -> int:
    """Free parameters counted by the criterion: packed entries + S0 − 1 for fibre weights."""
    k = model.parameters.size + 1
    if any(n.startswith("ffib_") for n in model.parameter_names):
        k -= 1
    return k


def penalty(criterion: str, n_meas: int) -> float:
    """Penalty per parameter: 2 (AIC) or log N (BIC)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    return 2.0 if criterion == "aic" else float(np.log(n_meas))


def floor_cost(pred, y, sigma) -> np.ndarray:
    """Rician-floor cost Σ (sqrt(S² + σ²) − y)² / σ² per voxel (plain SSE when σ is None)."""
    if sigma is None:
        return np.sum((pred - y) ** 2, axis=-1)
    return np.sum((np.sqrt(pred * pred + sigma * sigma) - y) ** 2, axis=-1) / sigma**2


def information_criterion(cost, k, n_meas, criterion="aic", *, sigma_known=True):
    """IC of fits with residual ``cost`` (:func:`floor_cost`) and ``k`` parameters."""
    pen = penalty(criterion, n_meas)
    cost = np.where(np.isfinite(cost), cost, np.inf)
    if sigma_known:
        return cost + pen * k
    with np.errstate(divide="ignore"):
        return n_meas * np.log(np.maximum(cost, 1e-300) / n_meas) + pen * k


def _hemisphere():
    """Upper half (z >= 0) of DIPY's ``repulsion724`` sphere, unit vectors (362, 3).

    Read from DIPY's data file: ``dipy.data`` itself imports its fetchers and the
    streamline/VTK modules (~1 s in a fresh process).
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("dipy")
    path = Path(spec.origin).parent / "data" / "files" / "repulsion724.npz"
    if path.is_file():
        v = np.load(path)["vertices"].astype(float)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    else:  # another DIPY layout
        from dipy.data import get_sphere

        v = get_sphere(name="repulsion724").vertices
    return v[v[:, 2] >= 0]


_STICK_ATOMS: dict = {}


def _stick_atoms(acq):
    """Hemisphere directions U (D, 3) and their unit-norm, shell-demeaned stick atoms
    (N, D), kept per acquisition."""
    key = acq.fingerprint()
    if key not in _STICK_ATOMS:
        U = _hemisphere()
        K = np.exp(-acq.bvals[:, None] * D_PAR_NODDI * (acq.bvecs @ U.T) ** 2)
        for s in np.unique(acq.shell_index):
            rows = acq.shell_index == s
            K[rows] -= K[rows].mean(0)
        K /= np.linalg.norm(K, axis=0) + 1e-12
        if len(_STICK_ATOMS) >= 4:
            _STICK_ATOMS.clear()
        _STICK_ATOMS[key] = (U, K)
    return _STICK_ATOMS[key]


def residual_directions(acq, residual, previous, *, exclude_deg=MIN_SEPARATION,
                        return_score=False):
    """Greedy next-fibre direction from a fit residual.

    Parameters
    ----------
    acq : Acquisition
    residual : ndarray, shape (V, N)
        ``data − prediction`` of the (n−1)-fibre fit (any signal scale).
    previous : ndarray, shape (V, n−1, 3)
        Directions already in the model; candidates within ``exclude_deg`` are skipped.

    return_score : bool
        Also return the best score.

    Returns
    -------
    ndarray, shape (V, 3)
        The hemisphere direction whose stick atom (d∥ = 1.7e-9 m²/s, demeaned per shell,
        unit norm) correlates best with the residual.
    score : ndarray, shape (V,)
        (With ``return_score``.) That correlation, residual · atom: the drop of the sum of
        squares were the atom added with a free amplitude is its square.
    """
    U, K = _stick_atoms(acq)
    score = np.asarray(residual, dtype=float) @ K
    near = np.abs(np.einsum("vkc,dc->vkd", np.nan_to_num(previous), U))
    close = np.any(near > np.cos(np.deg2rad(exclude_deg)), axis=1)
    score = np.where(close, -np.inf, score)
    best = np.argmax(score, axis=1)
    if return_score:
        return U[best], score[np.arange(len(best)), best]
    return U[best]


def complete_directions(dirs, fallback=None):
    """Replace NaN directions: first by ``fallback`` (V, 3), later ones orthogonally."""
    d = np.array(dirs, dtype=float)
    if fallback is not None:
        miss = ~np.all(np.isfinite(d[:, 0]), axis=1)
        d[miss, 0] = fallback[miss]
    for i in range(1, d.shape[1]):
        miss = ~np.all(np.isfinite(d[:, i]), axis=1)
        if not miss.any():
            continue
        prev = d[miss, i - 1]
        if i >= 2:
            o = np.cross(d[miss, 0], prev)
        else:
            helper = np.where(np.abs(prev[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
            o = np.cross(prev, helper)
        d[miss, i] = o / np.linalg.norm(o, axis=1, keepdims=True)
    return d


def _floor_residual(y, pred, sigma):
    """``y`` minus the Rician-floor expectation sqrt(pred² + σ²) (minus ``pred`` without σ)."""
    return y - (pred if sigma is None else np.sqrt(pred * pred + sigma * sigma))
