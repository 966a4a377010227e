"""A simulated crossing set with known fibres, and the scores of a fibre estimate on it."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from ..models import get_model
from ..parameters import angles_to_cartesian
from ..simulate import add_noise, as_rng, sample_parameters, simulate

#: White-matter-like parameter ranges of the crossing set (per fibre, SI).
CROSSING_RANGES = {"odi": (0.02, 0.3), "icvf": (0.3, 0.8), "fiso": (0.0, 0.3)}
#: Smallest weight of a fibre population in the crossing set.
MIN_WEIGHT = 0.25
#: Isotropic tissue (grey-matter-like, no preferred direction): one Watson-dispersed
#: NODDI population with ODI near 1 (κ < 0.16), counted as 0 fibres.
ISOTROPIC_TISSUE_RANGES = {"odi": (0.9, 0.98), "icvf": (0.2, 0.5), "fiso": (0.0, 0.3)}


@dataclass
class CrossingSet:
    """Simulated voxels with 0–3 fibres.

    Attributes
    ----------
    signal : ndarray, shape (V, N)
        Noisy raw signals (S0 = ``s0``).
    n_fibres : ndarray of int, shape (V,)
    directions : ndarray, shape (V, 3, 3)
        True fibre directions, NaN where absent.
    truth : dict of ndarray
        Per-fibre ``odi_i``, ``icvf_i``, ``ffib_i`` (V,) NaN where absent, and ``fiso``.
    acq : Acquisition
    snr : float
    """

    signal: np.ndarray
    n_fibres: np.ndarray
    directions: np.ndarray
    truth: dict
    acq: object
    snr: float


def crossing_dataset(acq, n_per_count: int = 100, *, snr: float = 30.0, random_state=0,
                     s0: float = 1000.0, min_angle: float = 45.0,
                     ranges: dict | None = None,
                     isotropic_tissue: float = 0.0) -> CrossingSet:
    """NODDI voxels, a quarter each with 0, 1, 2 and 3 fibres.

    0 fibres: free water (d_iso = 3e-9 m²/s), or for a share ``isotropic_tissue`` of them
    isotropic tissue (:data:`ISOTROPIC_TISSUE_RANGES`; ``truth`` gives their FISO).
    Fibres: ODI, ICVF and FISO uniform on ``ranges`` (default :data:`CROSSING_RANGES`,
    white-matter-like), pairwise crossing angles uniform in [``min_angle``, 90]°, fibre
    weights ≥ 0.25 (0.25 + the rest split by a flat Dirichlet draw). Rician noise with σ = s0 / snr.
    """
    rng = as_rng(random_state)
    ranges = {**CROSSING_RANGES, **(ranges or {})}
    sig, counts, dirs = [], [], []
    truth = {k: [] for k in ("fiso", *(f"{b}_{i}" for b in ("odi", "icvf", "ffib")
                                        for i in (1, 2, 3)))}
    for k in range(4):
        model = get_model("noddi", k)
        r = {p.name: ranges[p.name.split("_")[0]] for p in model.parameters
             if p.name.split("_")[0] in ranges}
        params = sample_parameters(model, n_per_count, random_state=rng, ranges=r,
                                   min_crossing_angle=min_angle)
        vals = model.parameters.unpack(params)
        w = np.ones((n_per_count, max(k, 1)))
        if k > 1:
            w = MIN_WEIGHT + (1 - MIN_WEIGHT * k) * rng.dirichlet(np.ones(k), n_per_count)
            for i in range(k):
                params[:, model.parameters.slice(f"ffib_{i + 1}")] = w[:, i:i + 1]
        n_iso = int(round(isotropic_tissue * n_per_count)) if k == 0 else 0
        fiso = np.ones(n_per_count) if k == 0 else vals["fiso"]
        if n_iso:  # the last n_iso fibre-free voxels: tissue without a preferred direction
            one = get_model("noddi", 1)
            r = {p.name: ISOTROPIC_TISSUE_RANGES[p.name] for p in one.parameters
                 if p.name in ISOTROPIC_TISSUE_RANGES}
            iso_params = sample_parameters(one, n_iso, random_state=rng, ranges=r)
            tissue = simulate(one, acq, iso_params)
            fiso = fiso.copy()
            fiso[-n_iso:] = one.parameters.unpack(iso_params)["fiso"]
        signal = simulate(model, acq, params)
        if n_iso:
            signal[-n_iso:] = tissue
        sig.append(signal)
        counts.append(np.full(n_per_count, k))
        d = np.full((n_per_count, 3, 3), np.nan)
        for i, name in enumerate(model.orientation_names):
            d[:, i] = angles_to_cartesian(vals[name])
        dirs.append(d)
        truth["fiso"].append(fiso)
        for i in (1, 2, 3):
            sfx = "" if k == 1 else f"_{i}"
            for b in ("odi", "icvf"):
                truth[f"{b}_{i}"].append(vals[b + sfx] if i <= k else np.full(n_per_count,
                                                                                np.nan))
            truth[f"ffib_{i}"].append(w[:, i - 1] if i <= k else np.full(n_per_count, np.nan))
    clean = np.concatenate(sig) * s0
    noisy = add_noise(clean, snr, s0=s0, random_state=rng)
    return CrossingSet(noisy, np.concatenate(counts), np.concatenate(dirs),
                       {k: np.concatenate(v) for k, v in truth.items()}, acq, snr)


# ---------------------------------------------------------------------- scores
def confusion_matrix(true, estimated, n_classes: int = 4) -> np.ndarray:
    """Counts ``C[t, e]`` of voxels with true count t and estimated count e."""
    cm = np.zeros((n_classes, n_classes), int)
    np.add.at(cm, (np.asarray(true, int), np.clip(np.asarray(estimated, int), 0,
                                                   n_classes - 1)), 1)
    return cm


def count_scores(true, estimated) -> dict:
    """Overall accuracy, per-count recall and the confusion matrix."""
    cm = confusion_matrix(true, estimated)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = cm.diagonal() / cm.sum(1)
    return {"accuracy": float(np.trace(cm) / cm.sum()), "recall": recall, "confusion": cm}


def match_fibres(true_dirs, est_dirs):
    """Pair estimated with true fibres by the smallest total angle (per voxel).

    Parameters
    ----------
    true_dirs, est_dirs : ndarray, shape (V, 3, 3)
        Unit vectors, NaN rows where a fibre is absent.

    Returns
    -------
    perm : ndarray of int, shape (V, 3)
        ``est_dirs[v, perm[v, i]]`` is matched to true fibre i.
    angles : ndarray, shape (V, 3)
        Angle in degrees of each matched pair (axial, 0–90°); NaN where either is absent.
    """
    t = np.asarray(true_dirs, float)
    e = np.asarray(est_dirs, float)
    cos = np.abs(np.einsum("vic,vjc->vij", t, e))  # (V, true, est)
    ang = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
    perms = np.array(list(permutations(range(3))))  # (6, 3)
    pair = ang[:, np.arange(3)[None, :], perms]  # (V, 6, 3)
    total = np.where(np.isfinite(pair), pair, 0.0).sum(-1) - 1e3 * np.isfinite(pair).sum(-1)
    best = perms[np.argmin(total, axis=1)]
    return best, np.take_along_axis(ang, best[:, :, None], 2)[..., 0]


def evaluate_fibres(cset: CrossingSet, n_fibres, directions, maps=None) -> dict:
    """Scores of a fibre estimate on a :class:`CrossingSet`.

    Parameters
    ----------
    n_fibres : ndarray, shape (V,)
    directions : ndarray, shape (V, 3, 3)
        Estimated directions (NaN where absent).
    maps : dict, optional
        Fitted per-fibre maps (``odi_i``, ``icvf_i``, (V,)) for the microstructure errors.

    Returns
    -------
    dict
        ``accuracy``, ``recall`` (per count), ``confusion``, ``angle_median`` (degrees,
        matched fibres of voxels whose count is right), ``angle_median_k`` per count, and
        with ``maps``: ``rmse_<odi|icvf>_<k>`` over the matched fibres of correctly counted
        k-fibre voxels, and ``rmse_<odi|icvf>_mean_<k>`` (k = 2, 3) of the fibre-weighted
        mean maps (``odi``, ``icvf``) against the weighted mean of the true fibres.
    """
    out = count_scores(cset.n_fibres, n_fibres)
    perm, ang = match_fibres(cset.directions, directions)
    right = np.asarray(n_fibres) == cset.n_fibres
    out["angle_median"] = float(np.nanmedian(ang[right])) if np.isfinite(
        ang[right]).any() else float("nan")
    for k in (1, 2, 3):
        sel = right & (cset.n_fibres == k)
        a = ang[sel]
        out[f"angle_median_{k}"] = float(np.nanmedian(a)) if np.isfinite(a).any() else np.nan
    if maps is not None:
        for b in ("odi", "icvf"):
            est = np.stack([np.asarray(maps[f"{b}_{i}"], float) if f"{b}_{i}" in maps else
                            np.full(len(perm), np.nan) for i in (1, 2, 3)], 1)
            est = np.take_along_axis(est, perm, 1)
            tru = np.stack([cset.truth[f"{b}_{i}"] for i in (1, 2, 3)], 1)
            for k in (1, 2, 3):
                sel = right & (cset.n_fibres == k)
                err = (est[sel] - tru[sel])[:, :k]
                err = err[np.isfinite(err)]
                out[f"rmse_{b}_{k}"] = float(np.sqrt(np.mean(err**2))) if err.size else np.nan
            if b not in maps:
                continue
            w = np.stack([cset.truth[f"ffib_{i}"] for i in (1, 2, 3)], 1)
            mean = np.nansum(w * tru, 1) / np.nansum(w, 1)
            for k in (2, 3):
                sel = right & (cset.n_fibres == k)
                err = np.asarray(maps[b], float)[sel] - mean[sel]
                err = err[np.isfinite(err)]
                out[f"rmse_{b}_mean_{k}"] = (float(np.sqrt(np.mean(err**2))) if err.size
                                             else np.nan)
    return out
