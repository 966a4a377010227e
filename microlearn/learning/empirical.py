"""Empirical-Bayes training priors: learn from parameters fitted to the data itself.

A learned estimator minimises its error *under its training prior*. The model's default
priors are wide (ODI 0.02–0.98, 0–3 fibres), so on a brain they spend capacity on tissue
that is not there and blur the ambiguity between one dispersed fibre and a crossing. The
empirical-Bayes prior follows the data instead:

1. fit a random sample of the volume's voxels (default 2000) with a fitting engine, the
   fibre count chosen per voxel (:func:`microlearn.fitting.selection.fit_auto`) — or with one
   fibre population when ``crossings=False``;
2. draw training parameters from those fits (:func:`sample_empirical`): a fitted voxel at
   random, its scalar parameters smoothed by a Gaussian kernel (bandwidth by Scott's rule,
   clipped to the bounds) and its fibre directions turned together by a random rotation
   (crossing angles kept, orientations uniform: the features are rotation invariant);
   fibre counts in the proportions the fits found.

The training signals are then simulated from these parameters as usual, so the estimator
still learns from the model, on the part of parameter space the data occupies.
"""

from __future__ import annotations

import logging

import numpy as np

from .noise import noise_profile

log = logging.getLogger(__name__)

#: Voxels fitted to build the prior.
N_FIT = 2000
#: Kernel bandwidth relative to Scott's rule (std · n^(-1/5)).
BANDWIDTH = 1.0
#: Fitted FISO at or above which a single-population fit is counted as pure free water.
FREE_WATER = 0.95


def data_prior_helps(model) -> bool:
    """Whether the empirical prior is the better default for ``model`` (name, spec or model).

    For the fibre families (registry): their fits select 0–3 fibres per voxel. Not for IVIM:
    its fits of D* scatter widely at clinical SNR, so as a prior they are worse than the
    model's (phantom D* RMSE 8.2e-9 vs < 4e-9 m²/s); nor for the powder-averaged families
    and composed models, whose least-squares fits were not measured as priors.
    """
    from ..models.registry import has_fibres
    from ..models.spec import resolve_model

    return has_fibres(resolve_model(model))


def fit_sample(family: str, acq, signals, *, n_fit: int = N_FIT, method: str = "mix",
               crossings: bool = True, sigma=None, random_state=None) -> dict[int, np.ndarray]:
    """Fitted parameters of a random sample of voxels, grouped by fibre count
    (:func:`fit_prior` without the noise)."""
    return fit_prior(family, acq, signals, n_fit=n_fit, method=method, crossings=crossings,
                     sigma=sigma, random_state=random_state)[0]


def fit_prior(family: str, acq, signals, *, n_fit: int = N_FIT, method: str = "mix",
              crossings: bool = True, sigma=None, random_state=None):
    """Fitted parameters of a random sample of voxels, grouped by fibre count, and the
    data's noise (:func:`~microlearn.learning.noise.noise_profile`).

    Parameters
    ----------
    family : str, dict or MultiCompartmentModel
        The model (family name, spec or object).
    acq : Acquisition
    signals : ndarray, shape (n, N)
        Raw voxel signals (e.g. :func:`microlearn.run.chunked.sample_voxels`).
    n_fit : int
        Voxels to fit (all when fewer).
    method : str
        Fitting engine.
    crossings : bool
        Choose 0–3 fibre populations per voxel; otherwise fit one (IVIM: none).
    sigma : float, optional
        Noise σ in signal units (estimated from the b0 repeats when absent).

    Returns
    -------
    fitted : dict of int -> ndarray, shape (n_k, size_k)
        Packed parameters of ``get_model(family, k)`` for every fibre count found.
    noise : NoiseProfile or None
        σ from the b0 repeats, or else from the residuals of these fits.
    """
    from ..fitting import fit
    from ..models.registry import family_of
    from ..models.spec import resolve_model

    signals = np.asarray(signals, dtype=float)
    b0 = signals[:, acq.b0_mask].mean(axis=1)
    good = np.flatnonzero(np.all(np.isfinite(signals), axis=1) & (b0 > 0))
    if good.size < 20:
        raise ValueError(f"empirical prior: only {good.size} usable voxels to fit (need "
                         "20 or more); give more data, or train on the model's priors "
                         "(`microlearn learn --prior model`, train(prior_signals=None)).")
    rng = np.random.default_rng(random_state)
    take = rng.choice(good, size=min(int(n_fit), good.size), replace=False)
    sample = signals[take]
    base = resolve_model(family)
    record = family_of(base)
    if record is None or not record.has_fibres or not crossings:
        model = base if record is None or not record.has_fibres else base.with_fibres(
            base.n_fibres or 1)
        res = fit(model, acq, sample, method=method, sigma=sigma)
        ok = np.all(np.isfinite(res.params), axis=1)
        maps = res.maps()
        rms = maps.get("residual_rms") if res.sigma is None else None
        noise = noise_profile(acq, sample, sigma=sigma, residual_rms=rms,
                              n_free=model.parameters.size + 1)
        out = {model.n_fibres: res.params[ok]}
        if record is not None and 0 in record.fibre_counts and "fiso" in maps:
            # voxels the fit finds to be free water (CSF): their tissue maps are not
            # determined; trained as pure free water (0 fibres), as fit_auto counts them
            water = ok & (np.asarray(maps["fiso"]) >= FREE_WATER)
            out = {model.n_fibres: res.params[ok & ~water]}
            if water.any():
                out[0] = np.empty((int(water.sum()), base.with_fibres(0).parameters.size))
        return out, noise
    from ..fitting.selection import fit_auto

    res = fit_auto(base, acq, sample, method=method, sigma=sigma)
    maps, nf = res.maps(), np.asarray(res.n_fibres).astype(int)
    out = {}
    for k in np.unique(nf):
        if k not in record.fibre_counts:  # e.g. free water for ActiveAx: not in the model
            continue
        model = base.with_fibres(int(k))
        rows = nf == k
        values = {}
        for p in model.parameters:
            source = p.name if (k > 1 or p.name == "fiso" or f"{p.name}_1" not in maps) \
                else f"{p.name}_1"
            values[p.name] = np.asarray(maps[source])[rows]
        params = model.parameters.pack(values) if model.parameters.size else \
            np.empty((int(rows.sum()), 0))
        out[int(k)] = params[np.all(np.isfinite(params), axis=1)]
    log.info("empirical prior: fibre counts %s from %d voxels",
             {k: len(v) for k, v in out.items()}, len(sample))
    return out, measure_noise(base, acq, sample, sigma=sigma, method=method)


def measure_noise(model, acq, signals, *, sigma=None, method: str = "mix", n_fit: int = 300,
                  random_state=0):
    """The data's :class:`~microlearn.learning.noise.NoiseProfile`: σ from the b0 repeats
    (or ``sigma``), else from the residuals of a fit of up to ``n_fit`` voxels of
    ``model`` with its default fibre count."""
    from ..data.voxels import estimate_sigma_by_te, usable_voxels
    from ..fitting import fit
    from ..models.registry import family_of
    from ..models.spec import resolve_model

    signals = np.asarray(signals, dtype=float)
    signals = signals[usable_voxels(signals, acq)]
    if len(signals) == 0:
        return None
    if sigma is not None or estimate_sigma_by_te(signals, acq) is not None:
        return noise_profile(acq, signals, sigma=sigma)  # given, or from the b0 repeats
    base = resolve_model(model)
    record = family_of(base)
    if record is not None and record.has_fibres and base.n_fibres == 0:
        base = base.with_fibres(1)
    rng = np.random.default_rng(random_state)
    take = rng.choice(len(signals), size=min(int(n_fit), len(signals)), replace=False)
    res = fit(base, acq, signals[take], method=method)
    return noise_profile(acq, signals[take], residual_rms=res.maps().get("residual_rms"),
                         n_free=base.parameters.size + 1)


def _random_rotations(n, rng) -> np.ndarray:
    """``n`` rotation matrices uniform on SO(3), shape (n, 3, 3)."""
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = np.linalg.det(q)
    q[:, :, 0] *= det[:, None]
    return q


def sample_empirical(model, fitted: np.ndarray, n: int, *, bandwidth: float = BANDWIDTH,
                     rng=None) -> np.ndarray:
    """Draw ``n`` packed parameter vectors of ``model`` around fitted ones (smoothed bootstrap).

    Parameters
    ----------
    model : MultiCompartmentModel
    fitted : ndarray, shape (m, size)
        Packed fitted parameters (:func:`fit_sample`).
    n : int
    bandwidth : float
        Kernel width relative to Scott's rule.
    rng : numpy.random.Generator
    """
    from ..parameters import angles_to_cartesian, cartesian_to_angles

    rng = np.random.default_rng(rng)
    space = model.parameters
    if space.size == 0:
        return np.empty((n, 0))
    if len(fitted) == 0:
        raise ValueError(f"empirical prior: no fitted voxels for {model.name}.")
    out = fitted[rng.integers(0, len(fitted), n)].copy()
    lo, hi = space.bounds()
    scalar = np.ones(space.size, bool)
    orient = [space.slice(name) for name in model.orientation_names]
    for s in orient:
        scalar[s] = False
    cols = np.flatnonzero(scalar)
    h = bandwidth * fitted[:, cols].std(axis=0) * len(fitted) ** (-1 / 5)
    out[:, cols] = np.clip(out[:, cols] + rng.normal(size=(n, cols.size)) * h,
                           lo[cols], hi[cols])
    if orient:
        rot = _random_rotations(n, rng)
        for s in orient:
            v = angles_to_cartesian(out[:, s])
            out[:, s] = cartesian_to_angles(np.einsum("nij,nj->ni", rot, v))
    return out
