"""Quality maps of :func:`microlearn.fitting.selection.fit_auto`: the selected model's.

For every voxel the maps of a fixed-count fit (``residual_rms``, ``at_bound``,
``<name>_std`` Cramér–Rao std and ``s0_std``, :mod:`microlearn.fitting.quality`) of the
model selected there, laid out like the parameters in the ``max_fibres`` model
(:func:`~microlearn.fitting.selection.embed`: fibres sorted by weight; the std of a fibre
the voxel does not have is NaN, as is the std of ``ffib_1`` of a 1-fibre voxel, whose
weight is 1 by construction, not fitted).

Computed once per fibre-count group, vectorised: the n-fibre groups by
:func:`~microlearn.fitting.quality.quality_maps` with the engine ``fit()`` chooses for the
n-fibre model (the compiled engines' ``quality_arrays`` where they have one, else the
Cramér–Rao bound of :mod:`microlearn.fitting.uncertainty`), so a voxel's maps equal those
of a fixed-count fit with the same parameters (multi-fibre models: the bound without the
common scale of the fibre weights, which the signal does not see).

The 0-fibre candidate: free water has S0 alone (``s0_std``); isotropic tissue (a dispersion
model's 1-fibre model at its largest ODI, orientation averaged, ICVF on a grid; see
:mod:`microlearn.fitting.selection`) has ICVF, FISO and S0, whose bound uses the derivative
of its tabulated signal in ICVF by central differences (``fiso_std`` and ``s0_std`` are
reported; ICVF is a fibre map, NaN at 0 fibres). The residual of both is that of the
candidate's own prediction.
"""

from __future__ import annotations

import numpy as np

#: ICVF step of the isotropic-tissue derivative.
ICVF_STEP = 1e-4

_ENGINES: dict = {}
_DERIVATIVES: dict = {}


def quality_names(model) -> list[str]:
    """The quality maps of ``model`` (the ``max_fibres`` model of an auto fit)."""
    from .quality import quality_map_names

    return quality_map_names(model)


def _engine(model, acq, method, options):
    """The engine ``fit(model, acq, method=method, **options)`` builds (kept per model)."""
    from .api import engine_class

    key = (repr(model.to_spec()), acq.fingerprint(), method, repr(sorted(options.items())))
    if key not in _ENGINES:
        if len(_ENGINES) >= 8:
            _ENGINES.clear()
        opts = {k: v for k, v in options.items() if k != "fast"}
        _ENGINES[key] = engine_class(method, model, acq, **options)(model, acq, **opts)
    return _ENGINES[key]


def _fibre_order(model_name, n, params, max_fibres):
    """Slot of each n-fibre fibre in the ``max_fibres`` layout (the order of ``embed``)."""
    from .selection import get_model

    if n <= 1 or max_fibres <= 1:
        return np.zeros((len(params), max(n, 1)), int) + np.arange(max(n, 1))
    vals = get_model(model_name, n).parameters.unpack(params)
    w = np.stack([vals[f"ffib_{i}"] for i in range(1, n + 1)]
                 + [np.zeros(len(params))] * (max_fibres - n), -1)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    order = np.argsort(-w, axis=1, kind="stable")  # slot k holds fibre order[:, k]
    return order


def _embed_std(model_name, n, params, std, max_fibres, names, V):
    """Std maps of n-fibre parameters as maps of the ``max_fibres`` model (NaN elsewhere)."""
    from .selection import fibre_bases

    out = {name: np.full(V, np.nan) for name in names}
    if "s0" in std:
        out["s0_std"] = std["s0"]
    bases = set(fibre_bases(model_name))
    order = _fibre_order(model_name, n, params, max_fibres)
    for key, value in std.items():
        base, _, idx = key.rpartition("_")
        if not (base in bases and idx.isdigit()):
            if key in bases and max_fibres > 1:  # a 1-fibre model's fibre map
                out[f"{key}_1_std"] = value
            elif key != "s0" and f"{key}_std" in out:
                out[f"{key}_std"] = value
            continue
        for slot in range(max_fibres):  # fibre int(idx) goes where embed sorted it
            here = order[:, slot] == int(idx) - 1
            out[f"{base}_{slot + 1}_std"][here] = value[here]
    return out


def _isotropic_derivative(one, acq, odi):
    """d(tissue atom)/d ICVF (C, N) at the grid nodes of the isotropic-tissue fit."""
    from .selection import ISOTROPIC_ICVF, _isotropic_atoms_uncached

    key = (repr(one.to_spec()), acq.fingerprint(), odi)
    if key not in _DERIVATIVES:
        if len(_DERIVATIVES) >= 4:
            _DERIVATIVES.clear()
        hi = np.minimum(ISOTROPIC_ICVF + ICVF_STEP, 1.0)
        lo = np.maximum(ISOTROPIC_ICVF - ICVF_STEP, 0.0)
        plus = _isotropic_atoms_uncached(one, acq, hi, odi)[0]
        minus = _isotropic_atoms_uncached(one, acq, lo, odi)[0]
        _DERIVATIVES[key] = (plus - minus) / (hi - lo)[:, None]
    return _DERIVATIVES[key]


def _crb(S, J, amp, sig):
    """Cramér–Rao variances (V, P + 1) of the free parameters and S0 (Rician noise), NaN
    where the Fisher matrix is singular (the test of :func:`.uncertainty.cramer_rao_std`)."""
    from .uncertainty import MAX_CONDITION, _fisher_numpy

    fisher = _fisher_numpy(S, J, amp, sig, True)
    col = np.sqrt(np.abs(np.einsum("vkk->vk", fisher))) + 1e-300
    fisher /= col[:, :, None] * col[:, None, :]
    finite = np.all(np.isfinite(fisher), axis=(1, 2))
    fisher[~finite] = np.eye(fisher.shape[1])
    lam, vec = np.linalg.eigh(fisher)
    ok = finite & (lam[:, 0] > lam[:, -1] / MAX_CONDITION)
    with np.errstate(divide="ignore"):
        var = np.einsum("vkj,vj->vk", vec * vec, 1.0 / lam) / col ** 2
    var[~ok] = np.nan
    return var


def _zero_quality(model_name, acq, cand, pos, y, b0, sig, names):
    """Quality of the 0-fibre candidate's voxels ``pos`` (free water or isotropic tissue)."""
    from .quality import residual_rms
    from .selection import ISOTROPIC_ICVF, _isotropic_atoms, get_model

    V, N = len(pos), acq.n_measurements
    out = {name: np.full(V, np.nan) for name in names}
    out["at_bound"] = np.zeros(V, np.float32)
    s0 = cand.s0[pos] / b0
    pred = cand.prediction(pos) / b0[:, None]
    out["residual_rms"] = residual_rms(None, acq, None, np.ones(V), y, sig, signal=pred)
    tissue = np.zeros(V, bool)
    if cand.layout == 1:  # a dispersion model: water has FISO = 1, tissue below
        one = get_model(model_name, 1)
        vals = one.parameters.unpack(cand.params[pos])
        tissue = vals["fiso"] < 1.0
    k = np.where(tissue, 3, 1)
    sg = sig
    if sg is None:  # σ from each voxel's residuals, as quality_maps
        sg = (out["residual_rms"] * np.sqrt(N / np.maximum(N - k, 1)))[:, None]
    good = np.isfinite(s0) & np.all(np.isfinite(sg) & (sg > 0), axis=1)
    water = good & ~tissue
    if water.any():  # S0 alone: A = s0 · W
        var = _crb(pred[water] / s0[water, None], np.zeros((water.sum(), 0, N)), s0[water],
                   sg[water])
        out["s0_std"][water] = np.sqrt(var[:, 0])
    tissue &= good
    if tissue.any():  # A = s0 ((1 − fiso) T(icvf) + fiso W)
        odi = float(one.parameters["odi"].bounds[1])
        atoms, water_atom = _isotropic_atoms(one, acq, ISOTROPIC_ICVF, odi)
        grid = np.abs(vals["icvf"][tissue, None] - ISOTROPIC_ICVF[None]).argmin(1)
        fiso = vals["fiso"][tissue, None]
        T, W = atoms[grid], water_atom[grid]
        dT = _isotropic_derivative(one, acq, odi)[grid]
        J = np.stack([(1 - fiso) * dT, W - T], 1)
        var = _crb((1 - fiso) * T + fiso * W, J, s0[tissue], sg[tissue])
        out["fiso_std"][tissue] = np.sqrt(var[:, 1])
        out["s0_std"][tissue] = np.sqrt(var[:, 2])
        lo = (vals["icvf"][tissue] <= 0) | (vals["icvf"][tissue] >= 1) | (fiso[:, 0] <= 0)
        out["at_bound"][tissue] = lo.astype(np.float32)
    return out


def group_quality(model_name, acq, count, cand, pos, y, b0, sigma, max_fibres, method, options):
    """Quality maps of the candidate rows ``pos`` (voxels that selected ``cand``'s count).

    Parameters
    ----------
    model_name : str or dict
        The fibre model (a name or spec, as :func:`~microlearn.fitting.selection.fit_auto`).
    acq : Acquisition
    count : int
        The fibre count ``cand`` stands for (0: free water or isotropic tissue).
    cand : selection._Candidate
    pos : ndarray of int
        Rows of ``cand`` to describe.
    y : ndarray, shape (len(pos), N)
        Raw signals of those voxels.
    b0 : ndarray, shape (len(pos),)
        Their b0 means.
    sigma : float or None
        Noise σ in signal units (None: σ from each voxel's residuals).
    max_fibres : int
    method : str
    options : dict
        Engine options (as given to ``fit_auto``).

    Returns
    -------
    dict of str to ndarray, shape (len(pos),)
        ``residual_rms``, ``at_bound``, ``<name>_std`` of every parameter of the
        ``max_fibres`` model and ``s0_std`` (signal units).
    """
    from .quality import quality_maps
    from .selection import get_model

    big = get_model(model_name, max_fibres)
    names = quality_names(big)
    V = len(pos)
    yn = y / b0[:, None]
    sig = None if sigma is None else np.repeat((sigma / b0)[:, None], acq.n_measurements, 1)
    if count == 0:
        out = _zero_quality(model_name, acq, cand, pos, yn, b0, sig, names)
    else:
        n = cand.layout
        params = cand.params[pos]
        engine = _engine(get_model(model_name, n), acq, method, options)
        q = quality_maps(engine, acq, params, cand.s0[pos] / b0, yn, sig)
        std = {k[:-4]: v for k, v in q.items() if k.endswith("_std")}
        out = _embed_std(model_name, n, params, std, max_fibres, names, V)
        out["residual_rms"], out["at_bound"] = q["residual_rms"], q["at_bound"]
    out["s0_std"] = out["s0_std"] * b0
    return out

