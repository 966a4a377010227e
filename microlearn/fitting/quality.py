"""Per-voxel fit quality: normalised residual RMS, parameters at a bound, Cramér–Rao std.

Computed once per fit on the voxels' normalised signals (each TE group divided by its own
b0 mean), so the maps mean the same for every engine.
"""

from __future__ import annotations

import numpy as np

#: A parameter within this fraction of its bound range counts as "at the bound".
BOUND_TOLERANCE = 1e-4


def residual_rms(model, acq, params, s0, y, sigma=None, *, signal=None) -> np.ndarray:
    """Root mean square of the residuals, in units of σ when σ is known.

    Parameters
    ----------
    params : ndarray, shape (V, size)
    s0 : ndarray, shape (V,)
        Fitted S0 relative to the b0 mean.
    y : ndarray, shape (V, N)
        Normalised signals.
    sigma : ndarray, shape (V, N) or (V, 1), optional
        Normalised noise σ. With it the residual is taken against the Rician-floor
        prediction sqrt(S² + σ²) (what the engines fit) and divided by σ, so a fit at the
        noise level gives ~1; without it the RMS is in units of the b0 signal.
    signal : ndarray, shape (V, N), optional
        ``model.signal(acq, params)`` when already computed.

    Returns
    -------
    ndarray, shape (V,)
    """
    S = model.signal(acq, params) if signal is None else signal
    pred = s0[:, None] * S
    if sigma is None:
        return np.sqrt(np.mean((y - pred) ** 2, axis=1))
    pred = np.sqrt(pred * pred + sigma * sigma)
    return np.sqrt(np.mean(((y - pred) / sigma) ** 2, axis=1))


def at_bound(params, lower, upper, orientation_mask) -> np.ndarray:
    """1 where any bounded parameter sits at (within :data:`BOUND_TOLERANCE` of) a bound.

    Parameters
    ----------
    params : ndarray, shape (V, size)
    lower, upper : ndarray, shape (size,)
        The bounds the engine fitted within.
    orientation_mask : ndarray of bool, shape (size,)
        Entries without bounds (orientation angles).
    """
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    width = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    tol = BOUND_TOLERANCE * width
    hit = (params <= lo + tol) | (params >= hi - tol)
    hit[:, np.asarray(orientation_mask, bool)] = False
    return np.any(hit, axis=1).astype(np.float32)


def quality_maps(engine, acq, params, s0, y, sigma) -> dict[str, np.ndarray]:
    """``residual_rms``, ``at_bound`` and ``<name>_std`` (Cramér–Rao; the posterior std for
    an engine with ``posterior_std``) for fitted voxels.

    Parameters
    ----------
    engine : Engine
        The engine that fitted (its model and bounds).
    params : ndarray, shape (V, size)
    s0 : ndarray, shape (V,)
        Relative S0.
    y : ndarray, shape (V, N)
        Normalised signals.
    sigma : ndarray, shape (V, N) or None
        Normalised σ per measurement. Without it the std maps use σ estimated from each
        voxel's residuals (RMS · sqrt(N / (N − P))).

    Returns
    -------
    dict of str to ndarray, shape (V,)
    """
    from .uncertainty import cramer_rao_std

    model = engine.model
    ok = np.all(np.isfinite(params), axis=1) & np.isfinite(s0)
    out = {"residual_rms": np.full(len(y), np.nan), "at_bound": np.zeros(len(y), np.float32)}
    if not ok.any():
        return out
    if ok.all():  # no copies of the (V, N) arrays
        p, z, yy, sg = params, s0, y, sigma
    else:
        p, z, yy = params[ok], s0[ok], y[ok]
        sg = None if sigma is None else sigma[ok]
    out["at_bound"][ok] = at_bound(p, engine.lower[:-1], engine.upper[:-1],
                                   engine.orientation_mask[:-1])
    fused = getattr(engine, "quality_arrays", None)  # one compiled pass (NODDI, 1 fibre)
    if fused is not None:
        out["residual_rms"][ok], std = fused(p, z, yy, sg)
    elif hasattr(engine, "posterior_std"):  # a posterior mean reports its posterior spread
        from .engines.posterior import powder_counts

        one = None if sg is None else sg[:, 0] * np.sqrt(powder_counts(acq)[0])
        out["residual_rms"][ok] = residual_rms(model, acq, p, z, yy, sg)
        std = engine.posterior_std(yy, one)
    elif sg is None:  # σ from each voxel's residuals
        out["residual_rms"][ok] = residual_rms(model, acq, p, z, yy)
        n, k = yy.shape[1], p.shape[1] + 1
        std = cramer_rao_std(model, acq, p, (out["residual_rms"][ok]
                                             * np.sqrt(n / max(n - k, 1)))[:, None], s0=z)
    else:
        std, S = cramer_rao_std(model, acq, p, sg, s0=z, return_signal=True)
        done = np.all(np.isfinite(S), axis=1)
        rms = np.full(len(p), np.nan)
        rms[done] = residual_rms(model, acq, p[done], z[done], yy[done], sg[done],
                                 signal=S[done])
        if not done.all():  # voxels the bound skipped (e.g. σ = 0 there)
            rms[~done] = residual_rms(model, acq, p[~done], z[~done], yy[~done])
        out["residual_rms"][ok] = rms
    for name, value in std.items():
        full = np.full(len(y), np.nan)
        full[ok] = value
        out[f"{name}_std"] = full
    return out


def quality_map_names(model) -> list[str]:
    """Names of the quality maps a fit of ``model`` writes (``residual_rms``, ``at_bound``,
    ``<param>_std`` for every free parameter and ``s0_std``)."""
    return (["residual_rms", "at_bound"] + [f"{p.name}_std" for p in model.parameters]
            + ["s0_std"])


def summarise(maps, mask) -> dict:
    """Median residual RMS, fraction of voxels at a bound, median std per parameter, and the
    count of mask voxels left unfitted (unusable b0 or NaN samples).

    Parameters
    ----------
    maps : dict of str to ndarray, shape (*spatial[, k])
        Maps of a fit (``FitResult.maps()`` or the files of ``microlearn fit``).
    mask : ndarray of bool, shape (*spatial)
    """
    mask = np.asarray(mask, bool)
    out = {}
    if "residual_rms" in maps:
        r = np.asarray(maps["residual_rms"])[mask]
        out["unfitted_voxels"] = int(np.sum(~np.isfinite(r)))
        r = r[np.isfinite(r)]
        if r.size:
            out["residual_rms_median"] = float(np.median(r))
            out["residual_rms_p95"] = float(np.percentile(r, 95))
    if "at_bound" in maps:
        b = np.asarray(maps["at_bound"])[mask]
        out["at_bound_fraction"] = float(np.nanmean(b)) if b.size else 0.0
    std = {}
    for name, value in maps.items():
        if name.endswith("_std"):
            v = np.asarray(value)[mask]
            v = v[np.isfinite(v)]
            std[name[:-4]] = float(np.median(v)) if v.size else None
    if std:
        out["std_median"] = std
    return out


#: Median Cramér–Rao std / prior spread at or above which a map is reported as not
#: determined by the acquisition (the ``weak`` limit of :mod:`microlearn.run.plan`).
NOT_DETERMINED = 0.8


def identifiability(model, maps, mask) -> dict:
    """Which maps the acquisition determines, from the fit's own Cramér–Rao std maps.

    A map whose median std over the fitted voxels reaches :data:`NOT_DETERMINED` times the
    spread of its prior (the standard deviation of a uniform over the prior bounds) is
    ``not determined``: its values lean on the start and the bounds, not on the data (e.g.
    ICVF and FISO of NODDI on one shell). Maps without a finite std (multi-fibre models:
    redundant fibre fractions) are left out.

    Parameters
    ----------
    model : MultiCompartmentModel
    maps : dict of str to ndarray, shape (*spatial[, k])
        Maps of a fit, with ``<name>_std``.
    mask : ndarray of bool, shape (*spatial)

    Returns
    -------
    dict
        name -> ``{"std_median", "prior_std", "ratio", "determined"}``.
    """
    mask = np.asarray(mask, bool)
    out = {}
    for p in model.parameters:
        std = maps.get(f"{p.name}_std")
        if p.kind == "orientation" or std is None:
            continue
        v = np.asarray(std, float)[mask]
        v = v[~np.isnan(v)]
        if v.size == 0:
            continue
        lo, hi = p.prior_bounds
        prior = (hi - lo) / np.sqrt(12.0)
        median = float(np.median(v))
        ratio = median / prior if prior > 0 else float("inf")
        out[p.name] = {"std_median": median, "prior_std": float(prior), "ratio": ratio,
                       "determined": bool(ratio < NOT_DETERMINED)}
    return out
