"""Can an acquisition support a model? Cramér–Rao bounds and Monte-Carlo fits and learning.

:func:`plan` draws voxels from the model's prior, and for every scalar parameter reports

* the **Cramér–Rao bound** on its standard deviation at SNR ``snr`` (median and the share
  of voxels where it is infinite: the parameter cannot be identified at all), from
  :func:`microlearn.fitting.uncertainty.cramer_rao_std`, or for multi-fibre NODDI from the
  compiled kernel's Fisher matrix (:mod:`microlearn.fitting.crossing_bounds`, which handles the
  fibre fractions' redundancy);
* the **expected RMSE and bias of fitting** (the fitting engine on Rician-noisy
  simulations of those voxels, fibres matched by direction) and of **learning** (an
  estimator trained on the same prior, for the maps a learned estimator predicts);
* a **verdict**: ``not supported`` when the median Cramér–Rao std reaches 0.8 of the
  prior's spread (the rule ``fit`` applies to its own std maps,
  :func:`microlearn.fitting.quality.identifiability`, so plan and fit agree on a protocol
  and SNR) or the bound is infinite in more than 5 % of the voxels; otherwise
  ``supported`` when the error is below half the prior's spread, ``weak`` below 0.8.
  For lengths (axon diameter) also the smallest value from which the bound is below
  half the value (``resolvable_from``).

Typical findings: single-shell NODDI cannot separate ICVF from FISO; axon diameters below
a few µm are not resolvable on clinical gradients; per-fibre ICVF in crossings is not
supported at SNR 30 on HCP-like data.
"""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np

log = logging.getLogger(__name__)

#: Error / prior spread below which a parameter is supported, and below which it is weak.
SUPPORTED, WEAK = 0.5, 0.8
#: Share of voxels with an infinite bound above which a parameter is not supported.
MAX_UNIDENTIFIABLE = 0.05
#: Relative bound (std / value) below which a length counts as resolvable.
RESOLVABLE = 0.5
#: Signal at b = 0 of the simulated voxels (any positive number: results are relative).
S0 = 1000.0


def crb_std(model, acq, params, sigma: float) -> dict[str, np.ndarray]:
    """Per-voxel Cramér–Rao std of every scalar parameter, ``inf`` where unidentifiable.

    Parameters
    ----------
    model : MultiCompartmentModel
    acq : Acquisition
    params : ndarray, shape (V, size)
        Packed true parameters.
    sigma : float
        Noise relative to S0 = 1.
    """
    from ..fitting.crossing_bounds import fisher_std, kernel_fisher, kernel_rows_from

    if model.family == "noddi" and not model.steps and model.n_fibres > 1:
        k = model.n_fibres
        maps = model.maps(params)
        directions = np.stack([maps[f"mu_{i + 1}"] for i in range(k)], axis=1)
        sd = fisher_std(kernel_fisher(acq, kernel_rows_from(maps, directions, k), k, sigma))
        out = {}
        for i in range(k):
            out[f"odi_{i + 1}"], out[f"icvf_{i + 1}"] = sd[:, 5 * i + 2], sd[:, 5 * i + 3]
        out["fiso"] = sd[:, 5 * k]
        return out
    from ..fitting.uncertainty import cramer_rao_std

    std = cramer_rao_std(model, acq, params, sigma)
    scalar = [p.name for p in model.parameters if p.kind != "orientation"]
    return {name: np.where(np.isfinite(std[name]), std[name], np.inf) for name in scalar}


def _normalised_fractions(maps: dict, k: int) -> dict:
    """Fibre fractions as weights summing to one (the identifiable quantity)."""
    if k < 2:
        return maps
    maps = dict(maps)
    w = np.stack([maps[f"ffib_{i + 1}"] for i in range(k)], axis=1)
    w = w / np.sum(w, axis=1, keepdims=True)
    for i in range(k):
        maps[f"ffib_{i + 1}"] = w[:, i]
    return maps


def _match_fibres(truth: dict, fitted: dict, k: int) -> dict:
    """Reorder fitted per-fibre maps so that fibre i is the one closest to true fibre i."""
    if k < 2:
        return fitted
    t = np.stack([truth[f"mu_{i + 1}"] for i in range(k)], axis=1)
    f = np.stack([fitted[f"mu_{i + 1}"] for i in range(k)], axis=1)
    perms = list(itertools.permutations(range(k)))
    score = np.stack([np.nansum(np.abs(np.sum(t * f[:, list(p)], axis=-1)), axis=1)
                      for p in perms], axis=1)
    best = np.asarray(perms)[np.argmax(score, axis=1)]  # (V, k)
    out = dict(fitted)
    rows = np.arange(len(best))
    for name in {n.rsplit("_", 1)[0] for n in fitted if n.endswith("_1")}:
        stack = np.stack([fitted[f"{name}_{i + 1}"] for i in range(k)], axis=1)
        for i in range(k):
            out[f"{name}_{i + 1}"] = stack[rows, best[:, i]]
    return out


def _errors(estimate, truth):
    ok = np.isfinite(estimate) & np.isfinite(truth)
    if not ok.any():
        return np.nan, np.nan
    d = estimate[ok] - truth[ok]
    return float(np.sqrt(np.mean(d ** 2))), float(np.mean(d))


def _resolvable_from(values, std, n_bins: int = 8):
    """Smallest bin start from which the median relative bound stays below RESOLVABLE."""
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, n_bins - 1)
    rel = np.array([np.median(std[which == b] / values[which == b]) if np.any(which == b)
                    else np.inf for b in range(n_bins)])
    good = rel < RESOLVABLE
    if not good[-1]:
        return None
    start = n_bins - 1
    while start > 0 and good[start - 1]:
        start -= 1
    return float(edges[start])


def plan(model: str, acq, *, snr: float = 30.0, n_fibres: int = 1, n_voxels: int = 500,
         ranges=None, method: str = "mix", learn: bool = True,
         estimator: str = "polynomial", n_train: int = 20_000, random_state=0) -> dict:
    """What ``acq`` can tell about each parameter of ``model`` at ``snr``.

    Parameters
    ----------
    model : str
        Model family (``noddi``, ``activeax``, ``zcd``, ``ivim``).
    acq : Acquisition
    snr : float
        b = 0 signal over the noise σ (Rician).
    n_fibres : int
        Fibre populations of the simulated voxels (NODDI/ActiveAx/ZCD: 1-3).
    n_voxels : int
        Monte-Carlo voxels drawn from the prior (``ranges`` or the parameters' priors).
    ranges : dict, optional
        Prior ranges (SI) by parameter name.
    method : str
        Fitting engine of the Monte-Carlo fits.
    learn : bool
        Also train an ``estimator`` on ``n_train`` simulated voxels and score it.

    Returns
    -------
    dict
        ``rows``: one dict per parameter (and per learned map) with ``name``, ``unit``,
        ``prior_std``, ``crb_median``, ``unidentifiable`` (share of voxels with an infinite
        bound), ``fit_rmse``, ``fit_bias``, ``learn_rmse``, ``learn_bias``,
        ``verdict``, ``resolvable_from`` (lengths); plus the settings and seconds.
    """
    from ..fitting import fit
    from ..simulate import add_noise, as_rng, sample_parameters, simulate

    if not snr > 0 or not np.isfinite(snr):
        raise ValueError(f"snr must be a positive number, not {snr}.")
    if int(n_voxels) < 20:
        raise ValueError(f"n_voxels must be at least 20 for a Monte-Carlo estimate, not "
                         f"{n_voxels}.")
    from ..models.spec import resolve_model

    mdl = resolve_model(model, int(n_fibres))
    k = mdl.n_fibres
    rng = as_rng(random_state)
    t0 = time.perf_counter()
    from ..learning.datasets import _ranges_for

    params = sample_parameters(mdl, int(n_voxels), random_state=rng,
                               ranges=_ranges_for(mdl, ranges))
    truth = _normalised_fractions(mdl.maps(params), k)
    bounds = crb_std(mdl, acq, params, 1.0 / snr)
    determined = determinacy(mdl, bounds)
    t_crb = time.perf_counter() - t0
    noisy = add_noise(simulate(mdl, acq, params), snr, random_state=rng) * S0
    res = fit(mdl, acq, noisy, method=method, sigma=S0 / snr, workers=1)
    fitted = _match_fibres(truth, _normalised_fractions(res.maps(), k), k)
    t_fit = time.perf_counter() - t0 - t_crb
    learned, est = {}, None
    if learn:
        from ..learning import train

        est = train(mdl, acq, estimator=estimator, n_samples=int(n_train), snr=snr,
                    n_fibres=k, ranges=ranges, random_state=int(rng.integers(2**31)))
        learned = est.predict_maps(noisy, acq=acq)
    t_learn = time.perf_counter() - t0 - t_crb - t_fit
    space = mdl.parameters
    names = [p.name for p in space if p.kind != "orientation"]
    names += [t for t in (est.target_names if est is not None else ()) if t not in names]
    rows = []
    for name in names:
        param = space[name] if name in space else None
        values = np.asarray(truth[name], dtype=float)
        row = {"name": name, "unit": param.unit if param is not None else "",
               "display_unit": param.display_unit if param is not None else "",
               "display_scale": param.display_scale if param is not None else 1.0,
               "prior_std": float(np.std(values))}
        std = bounds.get(name)
        if std is not None:
            finite = np.isfinite(std)
            row["crb_median"] = float(np.median(std))
            row["unidentifiable"] = float(1.0 - finite.mean())
        else:
            row["crb_median"], row["unidentifiable"] = None, None
        if name in determined:
            row["crb_ratio"] = determined[name]["ratio"]
            row["determined"] = determined[name]["determined"]
        row["fit_rmse"], row["fit_bias"] = (_errors(np.asarray(fitted[name], float), values)
                                            if name in fitted else (None, None))
        row["learn_rmse"], row["learn_bias"] = (_errors(learned[name], values)
                                                if name in learned else (None, None))
        row["verdict"], row["reason"] = _verdict(row)
        row["resolvable_from"] = (_resolvable_from(values, std)
                                  if param is not None and param.kind == "length"
                                  and std is not None else None)
        if param is not None and param.kind == "length" and std is not None:
            lo = row["resolvable_from"]
            row["reason"] += (f"; resolvable from {lo * 1e6:.1f} µm" if lo is not None
                              else "; not resolvable anywhere in the prior")
        rows.append(row)
    return {"model": mdl.name, "family": mdl.family, "n_fibres": k, "snr": float(snr),
            "n_voxels": int(n_voxels), "method": method,
            "estimator": estimator if learn else None, "n_train": int(n_train) if learn else 0,
            "n_measurements": int(acq.n_measurements),
            "shells_s_per_mm2": sorted({round(float(b) / 1e6) for b in acq.shell_bvals}),
            "seconds": {"crb": t_crb, "fit": t_fit, "learn": t_learn}, "rows": rows}


def determinacy(model, bounds) -> dict:
    """Which parameters the acquisition determines, by the very rule ``fit`` applies to its
    std maps (:func:`microlearn.fitting.quality.identifiability`: the median Cramér–Rao std
    against the spread of the prior), here on the bounds of voxels drawn from the prior.

    Parameters
    ----------
    model : MultiCompartmentModel
    bounds : dict of str to ndarray, shape (V,)
        Per-voxel Cramér–Rao std (:func:`crb_std`).

    Returns
    -------
    dict
        name -> ``{"std_median", "prior_std", "ratio", "determined"}``.
    """
    from ..fitting.quality import identifiability

    if not bounds:
        return {}
    n = len(next(iter(bounds.values())))
    return identifiability(model, {f"{k}_std": np.asarray(v, float) for k, v in bounds.items()},
                           np.ones(n, bool))


def _verdict(row) -> tuple[str, str]:
    from ..fitting.quality import NOT_DETERMINED

    spread = row["prior_std"]
    if row["unidentifiable"] is not None and row["unidentifiable"] > MAX_UNIDENTIFIABLE:
        return ("not supported", f"unidentifiable (infinite Cramér–Rao bound) in "
                f"{100 * row['unidentifiable']:.0f} % of voxels")
    if row.get("determined") is False:  # the rule fit's warning reads: both say the same
        return ("not supported", f"median Cramér–Rao std {row['crb_ratio']:.2g} x the "
                f"prior's spread (>= {NOT_DETERMINED:g}): the data do not determine it, "
                "estimates lean on the prior (fit warns the same on its std maps)")
    achieved = [e for e in (row["fit_rmse"], row["learn_rmse"]) if e is not None
                and np.isfinite(e)]
    crb = row["crb_median"]
    if not spread > 0 or not (achieved or crb is not None):
        return "unknown", "no estimate"
    # what fitting or learning achieve; the bound only where neither was run
    ratio = (min(achieved) if achieved else crb) / spread
    text = f"best error {ratio:.2f} x the prior spread"
    if crb is not None and crb > spread:
        text += "; Cramér–Rao bound above the prior spread (estimates lean on the prior)"
    if ratio < SUPPORTED:
        return "supported", text
    if ratio < WEAK:
        return "weak", text
    return "not supported", text
