"""Fibre counting by model selection, and :func:`fit_auto`.

For every voxel the 0-, 1-, 2- and 3-fibre versions of a model are fitted in batches
(one batch per fibre count and start: for built-in NODDI the compiled engines are called
directly and keep their own costs, :mod:`microlearn.fitting.compiled.noddi_select`;
otherwise one :func:`microlearn.fitting.fit` call) and compared with an information
criterion on the Rician-floor residual

    cost = Σ (sqrt(S² + σ²) − y)² / σ²,    IC = cost + penalty · k,

with σ the noise level (from the b0 repeats), k the number of free parameters (S0
included, fibre weights counted once less since only their ratios matter) and penalty
2 (AIC, default) or log N (BIC). Without σ (fewer than three b0s) the Gaussian
likelihood with unknown variance is used: IC = N log(SSE / N) + penalty · k.

Starts. The n-fibre fit starts from the (n−1)-fibre solution plus a greedy direction: the
hemisphere direction whose shell-demeaned stick atom best matches the (n−1)-fibre
residual (1 fibre: the tensor direction). On the compiled NODDI path the whole
(n−1)-fibre solution is the start (the new fibre takes 30 % of the tissue signal; the grid
search of the engine is skipped): fewer iterations and lower final costs than the grid,
recall of 3 fibres on the mixed case 0.43 -> 0.50. With ``csd_starts=True`` (or given
``peaks``) it also runs from the n largest CSD peaks found with a low relative threshold
(0.1, 25° separation) and keeps the better fit, at about three times the time; with the
warm starts it no longer pays (mixed case: accuracy 0.852 with CSD starts, 0.853 without).

Gating. n fibres are tried only where n−1 fibres beat n−2 on the criterion (every voxel
for n = 1), so single-fibre and free-water voxels never pay for a 3-fibre fit, and where
the (n−1)-fibre residual shows a missing fibre: the best stick atom's score (the drop of
the sum of squares were that atom added) exceeds :data:`SCORE_MIN` σ² (4 for the second
fibre, 0.8 for the third, whose residual a 2-fibre fit hides more in its dispersion). On
the mixed case (2000 voxels, SNR 30) this keeps 1096 of 1621 voxels for 2 fibres (those
dropped are mostly single fibres the criterion would have miscounted as 2) and 729 of
~980 for 3, losing at most one correctly counted 3-fibre voxel.

Free water. A 1-fibre fit whose tissue share is below :data:`MIN_TISSUE_FRACTION`
(FISO > 0.95) counts as 0 fibres whatever the criterion says: such a "fibre" cannot be
oriented at clinical SNR, and the criterion's penalty does not hold at that boundary
(orientation, ODI and ICVF are unidentifiable when FISO → 1), so a thorough optimiser finds
free-water voxels a spurious fibre (27 of 250 in the crossing bench, all at FISO 0.974–0.98;
fibre voxels there fit FISO ≤ 0.38).

Isotropic tissue. Grey-matter-like tissue without a preferred direction is not a fibre.
The 0-fibre candidate of a dispersion model (NODDI) is free water or isotropic tissue (the
1-fibre model at its largest ODI, orientation averaged out, ICVF on a grid, amplitudes by
NNLS: 3 parameters), whichever the criterion prefers; and a voxel whose best count is one
fibre with ODI >= :data:`ODI_ISOTROPIC` counts 0 fibres: a one-fibre fit of tissue with
ODI 0.9-0.98 finds ODI 0.64-0.85 at SNR 30 (its orientation fitted to the noise), against
<= 0.32 for white-matter fibres (ODI <= 0.3). Voxels counted 1 that are really 2-3 fibre
crossings (ODI 0.27-0.62) are tried with more fibres first, as before.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..crossings.dipy_tools import CANDIDATE_THRESHOLD, csd_peaks, fibre_cap, ssst_response
from ..data.noise import estimate_sigma
from ..data.voxels import Voxels
from ..models.spec import resolve_model as get_model
from ..parameters import angles_to_cartesian
from . import FitResult, fit
from .criteria import (  # noqa: F401 - part of this module's interface
    _STICK_ATOMS,
    CRITERIA,
    _floor_residual,
    _stick_atoms,
    complete_directions,
    floor_cost,
    information_criterion,
    n_free,
    penalty,
    residual_directions,
)
from .engines.search import nnls_two, outer_fraction_name, tensor_directions

log = logging.getLogger(__name__)

#: Smallest block handed to one worker process.
MIN_BLOCK = 64
#: Voxels selected at a time by :func:`fit_auto` (bounds the memory of whole brains).
CHUNK = 20000
#: Smallest tissue share (1 − FISO) of a 1-fibre fit that counts as a fibre population.
MIN_TISSUE_FRACTION = 0.05
#: A 1-fibre fit at least this dispersed (Watson κ <= 0.73) has no preferred direction.
ODI_ISOTROPIC = 0.6
#: An n-fibre fit is tried only where the best stick atom's drop of the (n−1)-fibre
#: residual's sum of squares exceeds ``SCORE_MIN[n]`` σ² (see "Gating" in the module
#: docstring).
SCORE_MIN = {2: 4.0, 3: 0.8}
#: ICVF grid of the isotropic-tissue (0-fibre) fit.
ISOTROPIC_ICVF = np.linspace(0.0, 1.0, 41)


def _orientations(model, params):
    """(V, n, 3) unit vectors of a model's orientation parameters."""
    vals = model.parameters.unpack(params)
    return np.stack([angles_to_cartesian(vals[n]) for n in model.orientation_names], 1)


@dataclass
class _Candidate:
    """Best fit of one fibre count over the voxels where it was tried (rows ``index``).

    ``layout`` is the fibre count of the model ``params`` belong to (the 0-fibre
    candidate of a dispersion model uses the 1-fibre layout: free water is FISO = 1,
    isotropic tissue is ODI at its upper bound).
    """

    params: np.ndarray
    s0: np.ndarray
    success: np.ndarray
    pred: np.ndarray | None
    cost: np.ndarray
    index: np.ndarray
    layout: int = -1
    #: Raw predictions of rows ``pos`` when ``pred`` is not kept (compiled path).
    predictor: object = None
    #: The engine's own rows (compiled path), a warm start for the next count.
    state: np.ndarray | None = None

    def prediction(self, pos):
        """Raw predicted signals (len(pos), N) of candidate rows ``pos``."""
        return self.pred[pos] if self.pred is not None else self.predictor(pos)


def _fit_fixed(model, acq, y, sigma):
    """Least-squares S0 of a model without free parameters (e.g. 0-fibre NODDI)."""
    a = model.signal(acq, np.zeros((1, 0)))[0]
    s0 = np.maximum(y @ a / (a @ a), 0.0)
    pred = s0[:, None] * a
    return _Candidate(np.zeros((len(y), 0)), s0, np.ones(len(y), bool), pred,
                      floor_cost(pred, y, sigma), np.arange(len(y)))


_ISO_ATOMS: dict = {}


def _isotropic_atoms(one, acq, icvf, odi, signal=None):
    """:func:`_isotropic_atoms_uncached`, kept per model, acquisition, grid and source."""
    key = (one.name, acq.fingerprint(), icvf.tobytes(), odi, signal is None)
    if key not in _ISO_ATOMS:
        if len(_ISO_ATOMS) >= 4:
            _ISO_ATOMS.clear()
        _ISO_ATOMS[key] = _isotropic_atoms_uncached(one, acq, icvf, odi, signal)
    return _ISO_ATOMS[key]


def _isotropic_atoms_uncached(one, acq, icvf, odi, signal=None):
    """Tissue (FISO = 0) and free-water (FISO = 1) signals (C, N) of the 1-fibre model at
    dispersion ``odi`` for every ``icvf``, averaged over the x, y and z orientations (which
    cancels the degree-2 orientation term: no preferred direction). ``signal(params)``
    computes the model's signals of packed rows (default ``one.signal``)."""
    signal = signal or (lambda params: one.signal(acq, params))
    C = icvf.size
    atoms = []
    for fiso in (0.0, 1.0):
        total = 0.0
        for theta, phi in ((np.pi / 2, 0.0), (np.pi / 2, np.pi / 2), (0.0, 0.0)):
            vals = {"mu": np.tile([theta, phi], (C, 1)), "odi": np.full(C, odi), "icvf": icvf,
                    "fiso": np.full(C, fiso)}
            total = total + signal(one.parameters.pack(vals))
        atoms.append(total / 3.0)
    return atoms


def _fit_zero(model_name, acq, y, sigma, criterion, sigma_known, signal=None):
    """The 0-fibre candidate and its criterion: free water, or for dispersion models
    (NODDI) also tissue without a preferred direction, whichever the criterion prefers.

    Isotropic tissue (grey-matter-like) is the 1-fibre model at its largest ODI (κ → 0,
    orientation averaged out) with ICVF on a grid and the tissue and free-water amplitudes
    by NNLS: 3 free parameters (ICVF, FISO, S0) against the 1-fibre fit's 6, so a fibre is
    only counted where a preferred direction pays for its orientation and dispersion.
    ``signal``: see :func:`_isotropic_atoms_uncached`.
    """
    N = acq.n_measurements
    water = _fit_fixed(get_model(model_name, 0), acq, y, sigma)
    ic_water = information_criterion(water.cost, 1, N, criterion, sigma_known=sigma_known)
    one = get_model(model_name, 1)
    if not {"odi", "icvf", "fiso"} <= set(one.parameter_names):
        water.layout = 0
        return water, ic_water
    odi = float(one.parameters["odi"].bounds[1])
    icvf = ISOTROPIC_ICVF
    tissue_atoms, water_atoms = _isotropic_atoms(one, acq, icvf, odi, signal)
    a, b, sse = nnls_two(tissue_atoms[None], water_atoms[None], y)
    best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    rows = np.arange(len(y))
    a, b = a[rows, best], b[rows, best]
    pred = a[:, None] * tissue_atoms[best] + b[:, None] * water_atoms[best]
    cost = floor_cost(pred, y, sigma)
    ic_tissue = information_criterion(cost, 3, N, criterion, sigma_known=sigma_known)
    tissue = ic_tissue < ic_water
    s0 = np.where(tissue, a + b, water.s0)
    fiso = np.where(tissue, b / np.maximum(a + b, 1e-30), 1.0)
    V = len(y)
    params = one.parameters.pack({"mu": np.zeros((V, 2)), "odi": np.full(V, odi),
                                  "icvf": np.where(tissue, icvf[best], 0.5), "fiso": fiso})
    cand = _Candidate(params, s0, np.ones(V, bool), np.where(tissue[:, None], pred, water.pred),
                      np.where(tissue, cost, water.cost), rows, layout=1)
    return cand, np.minimum(ic_tissue, ic_water)


def _fit_from(model, acq, y, sigma, dirs, fit_options):
    """One selection fit through :func:`microlearn.fitting.fit`: (params, s0, success,
    predictor, cost, None), cost inf where not successful."""
    opts = dict(fit_options)
    setup = opts.pop("setup_acc", None)  # a list collecting each fit's set-up seconds
    opts.setdefault("quality", False)  # candidate fits: their std/residual maps are unused
    if "block_size" not in opts:  # one block per worker, so both cores share small groups
        from .api import BLOCK_SIZE, default_workers

        workers = opts.get("workers") or default_workers()
        opts["block_size"] = int(min(BLOCK_SIZE, max(MIN_BLOCK, -(-len(y) // workers))))
    r = fit(model, acq, y, sigma=0 if sigma is None else sigma, directions=dirs, **opts)
    if setup is not None:
        setup.append(r.setup_seconds)
    pred = r.predict()
    cost = floor_cost(pred, y, sigma)
    return (r.params, r.s0, r.success, lambda pos: pred[pos],
            np.where(r.success, cost, np.inf), None)


def _fitter(model_name, acq, max_fibres, fit_options):
    """``run(n, y, b0, sigma, dirs, previous)`` -> (params, s0, success, predictor, cost,
    state) for every fibre count: the compiled engines called directly when they cover the
    model (:mod:`microlearn.fitting.compiled.noddi_select`; ``previous``, the (n−1)-fibre
    ``state`` of the same voxels, is then the warm start), else :func:`fit` per group.
    Also returns ``signal(params)`` of the 1-fibre model, compiled (or None: generic)."""
    from .compiled import noddi_select

    if noddi_select.applies(model_name, acq, max_fibres, fit_options):
        fits = noddi_select.CompiledFibreFits(acq, max_fibres,
                                              workers=fit_options.get("workers"),
                                              setup_acc=fit_options.get("setup_acc"))

        def run(n, y, b0, sigma, dirs, previous=None):
            params, s0, ok, cost, rows = fits.fit(n, y, b0, sigma, dirs, previous)
            return params, s0, ok, lambda pos: fits.predict(n, rows[pos], b0[pos]), cost, rows

        def signal(params):
            return fits.predict(1, np.concatenate([params, np.ones((len(params), 1))], 1),
                                np.ones(len(params)))

        return run, signal
    models = {n: get_model(model_name, n) for n in range(1, max_fibres + 1)}
    return (lambda n, y, b0, sigma, dirs, previous=None: _fit_from(models[n], acq, y, sigma,
                                                                   dirs, fit_options)), None


def select_fibres(model_name, acq, y, *, sigma=None, max_fibres=3, criterion="aic",
                  peaks=None, response=None, csd_starts=False, fit_options=None):
    """Fit 0..``max_fibres`` fibre models to voxel signals and pick one per voxel.

    Parameters
    ----------
    model_name : str
        Built-in fibre model (``noddi``, ``activeax``, ``zcd``).
    acq : Acquisition
    y : ndarray, shape (V, N)
        Raw signals of valid voxels (positive b0).
    sigma : float or None
        Noise standard deviation in signal units.
    peaks : ndarray, shape (V, >= max_fibres, 3), optional
        Candidate start directions (NaN where absent); with ``csd_starts``, CSD peaks at a
        0.1 threshold by default.
    response : tuple, optional
        DIPY single-fibre response for those peaks (estimated from ``y`` when absent).
    csd_starts : bool
        Also start every count from CSD peaks (see the module docstring).
    fit_options : dict, optional
        Passed to :func:`microlearn.fitting.fit` (``method``, ``workers``, ``progress``).

    Returns
    -------
    n_fibres : ndarray of int, shape (V,)
    candidates : dict of int to _Candidate
    ic : ndarray, shape (V, max_fibres + 1)
        Criterion of every fitted count (inf where not tried).
    """
    fit_options = dict(fit_options or {})
    V, N = y.shape
    models = {n: get_model(model_name, n) for n in range(max_fibres + 1)}
    b0 = y[:, acq.b0_mask].mean(1)
    if peaks is None and max_fibres and csd_starts:
        peaks, _ = csd_peaks(acq, y / b0[:, None], relative_peak_threshold=CANDIDATE_THRESHOLD,
                             npeaks=max_fibres, response=response)
    run, signal = _fitter(model_name, acq, max_fibres, fit_options)
    seconds = _build_tables(model_name, acq, max_fibres, signal)
    if seconds and fit_options.get("setup_acc") is not None:
        fit_options["setup_acc"].append(seconds)
    ic = np.full((V, max_fibres + 1), np.inf)
    known = sigma is not None
    cands = {}
    cands[0], ic[:, 0] = _fit_zero(model_name, acq, y, sigma, criterion, known, signal)
    for n in range(1, max_fibres + 1):
        t0 = time.perf_counter()
        rows = (np.arange(V) if n == 1 else
                np.flatnonzero(ic[:, n - 1] < ic[:, n - 2]))
        if n > 1 and rows.size:
            prev = cands[n - 1]
            pos = np.searchsorted(prev.index, rows)
            prev_dirs = _orientations(models[n - 1], prev.params[pos])
            resid = _floor_residual(y[rows], prev.prediction(pos), sigma)
            extra, score = residual_directions(acq, resid, prev_dirs, return_score=True)
            if n in SCORE_MIN:  # see "Gating" above
                scale = sigma if known else np.sqrt(prev.cost[pos] / N)
                keep = np.maximum(score, 0.0) ** 2 > SCORE_MIN[n] * scale**2
                rows, prev_dirs, extra = rows[keep], prev_dirs[keep], extra[keep]
        if rows.size == 0:
            break
        model = models[n]
        fallback = tensor_directions(acq, y[rows] / b0[rows, None]) if n == 1 else None
        starts = [] if peaks is None else [complete_directions(peaks[rows, :n], fallback)]
        if n == 1 and not starts:
            starts = [fallback[:, None]]
        warm = None
        if n > 1:  # the greedy start: the (n−1)-fibre fit plus the residual's direction
            starts.append(np.concatenate([prev_dirs, extra[:, None]], axis=1))
            if prev.state is not None:
                warm = prev.state[np.searchsorted(prev.index, rows)]
        best = None
        for i, dirs in enumerate(starts):
            out = run(n, y[rows], b0[rows], sigma, dirs, warm if i == len(starts) - 1 else None)
            if best is None:
                best = list(out)
                continue
            better = out[4] < best[4]
            for k in (0, 1, 2, 4, 5):
                if best[k] is not None:
                    best[k][better] = out[k][better]
            best[3] = _merged(best[3], out[3], better)
        cands[n] = _Candidate(best[0], best[1], best[2], None, best[4], index=rows, layout=n,
                              predictor=best[3], state=best[5])
        ic[rows, n] = information_criterion(best[4], n_free(model), N, criterion,
                                            sigma_known=known)
        if n == 1 and "fiso" in model.parameter_names:  # see "Free water" above
            fiso = model.parameters.unpack(best[0])["fiso"]
            ic[rows[fiso > 1 - MIN_TISSUE_FRACTION], 1] = np.inf
        log.info("%d-fibre fits: %d voxels, %d start(s), %.2f s", n, rows.size, len(starts),
                 time.perf_counter() - t0)
    n_sel = np.argmin(ic, axis=1)
    if 1 in cands and "odi" in models[1].parameter_names:  # see "Isotropic tissue" above
        odi = models[1].parameters.unpack(cands[1].params)["odi"]
        n_sel[cands[1].index[(odi >= ODI_ISOTROPIC) & (n_sel[cands[1].index] == 1)]] = 0
    return n_sel, cands, ic


def _build_tables(model_name, acq, max_fibres, signal):
    """Build the per-acquisition tables of the selection (stick atoms of the greedy
    directions, isotropic-tissue atoms) unless kept; returns the seconds spent (set-up)."""
    t0 = time.perf_counter()
    built = False
    if max_fibres > 1 and acq.fingerprint() not in _STICK_ATOMS:
        _stick_atoms(acq)
        built = True
    one = get_model(model_name, 1)
    if {"odi", "icvf", "fiso"} <= set(one.parameter_names):
        odi = float(one.parameters["odi"].bounds[1])
        key = (one.name, acq.fingerprint(), ISOTROPIC_ICVF.tobytes(), odi, signal is None)
        if key not in _ISO_ATOMS:
            _isotropic_atoms(one, acq, ISOTROPIC_ICVF, odi, signal)
            built = True
    return time.perf_counter() - t0 if built else 0.0


def _merged(first, second, use_second):
    """Predictor of rows taken from ``second`` where ``use_second``, else from ``first``."""
    use_second = np.array(use_second)

    def predict(pos):
        pos = np.asarray(pos)
        out = first(pos)
        sel = use_second[pos]
        if sel.any():
            out[sel] = second(pos[sel])
        return out

    return predict


# ---------------------------------------------------------------------- assembled result
def fibre_bases(model_name: str) -> list[str]:
    """Per-fibre map names of a model (``mu``, ``odi``, ``icvf``, ``ffib`` for NODDI)."""
    names = get_model(model_name, 2).parameter_names
    return sorted({n[:-2] for n in names if n.endswith("_1")})


def embed(model_name, n, params, max_fibres):
    """Packed ``n``-fibre parameters as parameters of the ``max_fibres`` model.

    Missing fibres get weight 0 (so the signal is unchanged), fibres are sorted by
    weight (fibre 1 dominant) and weights normalised to sum to one; a 0-fibre voxel
    gets isotropic fraction 1.
    """
    src = get_model(model_name, n)
    dst = get_model(model_name, max_fibres)
    V = params.shape[0]
    vals = src.parameters.unpack(params)
    if n == 1 and max_fibres > 1:
        vals = {(f"{k}_1" if k in fibre_bases(model_name) else k): v for k, v in vals.items()}
    out = {}
    for p in dst.parameters:
        if p.name in vals:
            out[p.name] = vals[p.name]
        elif p.name.startswith("ffib_"):
            out[p.name] = np.full(V, 1.0 if n == 1 and p.name == "ffib_1" else 0.0)
        elif p.kind == "orientation":
            out[p.name] = np.zeros((V, 2))
        elif p.name == outer_fraction_name(dst):
            out[p.name] = np.ones(V)
        else:
            out[p.name] = np.full(V, 0.5 * sum(p.prior_bounds))
    if max_fibres > 1:
        _sort_fibres(out, fibre_bases(model_name), max_fibres)
    return dst.parameters.pack(out)


def _sort_fibres(vals, bases, n):
    w = np.stack([vals[f"ffib_{i}"] for i in range(1, n + 1)], -1)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    for i in range(1, n + 1):
        vals[f"ffib_{i}"] = w[:, i - 1]
    order = np.argsort(-w, axis=1, kind="stable")
    for b in bases:
        stack = np.stack([np.asarray(vals[f"{b}_{i}"]) for i in range(1, n + 1)], 1)
        idx = order.reshape(order.shape + (1,) * (stack.ndim - 2))
        stack = np.take_along_axis(stack, idx, axis=1)
        for i in range(1, n + 1):
            vals[f"{b}_{i}"] = stack[:, i - 1]


@dataclass
class AutoFitResult(FitResult):
    """A fit with 0–``max_fibres`` fibres per voxel, as one :class:`FitResult`.

    Every voxel's parameters live in the ``max_fibres`` model (absent fibres have weight
    0, so :meth:`predict` is exact). :meth:`maps` adds ``n_fibres`` (uint8), per-fibre
    maps ``<name>_i`` (NaN where fibre i does not exist), the overall maps of the model
    (``odi``, ``icvf`` = fibre-weighted means, ``fiso``) and ``mu`` = dominant fibre.
    """

    n_fibres: np.ndarray = None
    model_name: str = ""
    criterion: np.ndarray = None
    fibre_names: tuple = field(default_factory=tuple)

    def maps(self) -> dict[str, np.ndarray]:
        out = super().maps()
        nf = self.n_fibres
        for name in list(out):
            base, _, idx = name.rpartition("_")
            if base in self.fibre_names and idx.isdigit():
                absent = nf < int(idx)
                out[name] = np.where(absent[..., None] if out[name].ndim > nf.ndim else absent,
                                     np.nan, out[name])
        if "mu_1" in out:
            out["mu"] = out["mu_1"]
        for name in set(self.fibre_names) | {"kappa"}:
            if name in out and name != "ffib":
                v = out[name]
                out[name] = np.where((nf == 0)[..., None] if v.ndim > nf.ndim else nf == 0,
                                     np.nan, v)
        out["n_fibres"] = nf.astype(np.uint8)
        return out


def _one_blas_thread():
    """A context with one BLAS thread (threadpoolctl), or a no-op without threadpoolctl.

    The selection's matrix products are small, and BLAS threads spinning after each of them
    take the cores from the compiled kernels' threads that follow (see
    :func:`microlearn._numba_cache.passive_openmp`).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def check_fibre_model(model_name) -> None:
    """Raise a ValueError unless ``model_name`` is a registered fibre model (name, spec or
    model) that can be rebuilt with 0–3 fibres."""
    from ..models.registry import FAMILIES, family_of

    model = get_model(model_name)  # unknown names raise here
    record = family_of(model)
    if record is None or not record.has_fibres:
        fibre = [n for n, r in FAMILIES.items() if r.has_fibres]
        raise ValueError(f"--n-fibres auto needs a fibre model family ({', '.join(fibre)}, "
                         f"with any settings), got {model.name!r}.")


def fit_auto(model_name, acq, data, *, mask=None, method="mix", sigma=None, progress=False,
             criterion="aic", max_fibres=3, workers=None, peaks=None, response=None,
             csd_starts=False, quality=True, **options):
    """Fit ``model_name`` with the number of fibres (0–``max_fibres``) chosen per voxel.

    Voxels are grouped by fibre count and each group is fitted as one batch (see the
    module docstring for the criterion, starts and gating), :data:`CHUNK` voxels at a
    time with one CSD response for the whole volume.

    Parameters
    ----------
    model_name : {"noddi", "activeax", "zcd"}
    acq : Acquisition
    data : ndarray, shape (*spatial, N)
        Raw signals.
    mask : ndarray of bool, shape (*spatial), optional
    method : str
        Fitting engine for every group (``microlearn.fitting.FITTERS``).
    sigma : float, optional
        Noise σ in signal units; estimated from the b0 repeats when absent.
    criterion : {"aic", "bic"}
    max_fibres : int
        1, 2 or 3.
    peaks : ndarray, shape (*spatial, >= max_fibres, 3), optional
        Candidate start directions (NaN where absent); with ``csd_starts``, CSD peaks by
        default.
    response : tuple, optional
        DIPY single-fibre response ``(evals, S0)`` for the CSD peaks (``csd_starts``);
        estimated from ``data`` when absent (give it when ``data`` is one part of a volume).
    csd_starts : bool
        Also start every fibre count from CSD peaks (slower; see the module docstring).
    quality : bool
        Also compute the quality maps of the model selected in each voxel (as ``fit``:
        ``residual_rms``, ``at_bound``, ``<name>_std``; :mod:`.selection_quality`).
    options
        Passed to the engine.

    Returns
    -------
    AutoFitResult
    """
    from .api import FITTERS
    from .selection_quality import group_quality, quality_names

    check_fibre_model(model_name)
    if max_fibres not in (1, 2, 3):
        raise ValueError(f"max_fibres must be 1, 2 or 3, got {max_fibres!r}.")
    penalty(criterion, 1)
    FITTERS[method]  # noqa: B018 - raises a clear error on unknown names
    countable, why = fibre_cap(acq, max_fibres)  # maps keep the max_fibres layout
    if why:
        warnings.warn(why, stacklevel=2)
    t0 = time.perf_counter()
    vx = Voxels.extract(acq, data, mask)
    y = vx.signal
    if sigma is None:
        sigma = estimate_sigma(y, acq)
    sigma = None if sigma in (None, 0) else float(sigma)
    cand_peaks = None
    if peaks is not None:
        cand_peaks = np.asarray(peaks, float).reshape(-1, *np.shape(peaks)[-2:])[vx.flat]
    if cand_peaks is None and response is None and csd_starts:  # one for the whole volume
        response, _ = ssst_response(acq, y / vx.b0[:, None])
    setup: list = []  # set-up seconds of the fits (kernel loading; see FitResult)
    opts = {"method": method, "progress": progress, "workers": workers, "setup_acc": setup,
            **options}
    big = get_model(model_name, max_fibres)
    V = y.shape[0]
    params = np.full((V, big.parameters.size), np.nan)
    s0 = np.full(V, np.nan)
    ok = np.zeros(V, bool)
    n_sel = np.zeros(V, int)
    ic = np.full((V, max_fibres + 1), np.inf)
    qual = {k: np.full(V, np.nan) for k in quality_names(big)} if quality else {}
    for start in range(0, V, CHUNK):
        part = slice(start, start + CHUNK)
        with _one_blas_thread():
            n_sel[part], cands, ic[part, :countable + 1] = select_fibres(
                model_name, acq, y[part], sigma=sigma, max_fibres=countable, criterion=criterion,
                peaks=None if cand_peaks is None else cand_peaks[part], response=response,
                csd_starts=csd_starts,
                fit_options=opts)
        for n, c in cands.items():
            pos = np.flatnonzero(n_sel[part][c.index] == n)
            rows = start + c.index[pos]
            params[rows] = embed(model_name, c.layout, c.params[pos], max_fibres)
            s0[rows], ok[rows] = c.s0[pos], c.success[pos]
            if quality and pos.size:  # one pass per selected count
                for k, v in group_quality(model_name, acq, n, c, pos, y[rows], vx.b0[rows],
                                          sigma, max_fibres, method, options).items():
                    qual[k][rows] = v
    seconds = time.perf_counter() - t0
    counts = np.bincount(n_sel, minlength=max_fibres + 1)
    log.info("fit_auto %s: %d voxels in %.1f s; fibre counts %s", model_name, V, seconds,
             counts.tolist())
    return AutoFitResult(
        model=big, acq=acq, params=vx.to_volume(params), s0=vx.to_volume(s0),
        success=vx.to_volume(ok, False, bool), mask=vx.mask, method=method, sigma=sigma,
        seconds=seconds, n_fibres=vx.to_volume(n_sel, 0, np.uint8), model_name=model_name,
        criterion=vx.to_volume(ic), fibre_names=tuple(fibre_bases(model_name)),
        setup_seconds=float(sum(setup)), extra={k: vx.to_volume(v) for k, v in qual.items()})
