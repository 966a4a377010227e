"""Which model does a scan support? Held-out-measurement comparison, no truth needed.

The measurements are split in K folds within each shell and echo time (b, δ, Δ, TE): every
fold keeps every shell represented, and a shell or echo time with a single measurement is
never held out. Each candidate (a model fitted by a method) is fitted on K−1 folds and
predicts the held-out fold, for every fold. The prediction is compared with the data as
the expectation of a Rician magnitude, E[M] ≈ sqrt(S² + σ²) (the engines' noise model),
with S0 per echo-time group (or one S0 at TE = 0 for models with compartment T2).

Per voxel the *normalised prediction error* is ``npe = sqrt(mean((y − E[M])²)) / σ`` over
the held-out measurements: about 1 for a model that predicts down to the noise, larger
when the model misses structure in the data. Candidates are ranked by the mean npe over
the voxels every candidate answered; a paired bootstrap over voxels gives the 95 %
interval of each candidate's difference to the leader of its group, and differences
whose interval holds zero, or smaller than ``margin`` (1 %) of the leader's error, are
ties (same rank). This is how the ISBI 2015 white-matter modelling challenge ranked its
models (Ferizi et al. 2017, NMR Biomed 30:e3734).

AIC and BIC come from a fit to all measurements, with the Gaussian approximation of the
Rician likelihood on E[M] (constant terms dropped; k counts the free parameters and the
fitted S0 of each echo time).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Bootstrap resamples of the ranking and the width of its interval.
N_BOOT, LEVEL = 1000, 0.95
#: Differences below this share of the leader's mean npe are ties (practical equivalence).
MARGIN = 0.01


def holdout_folds(acq, k: int, *, random_state=0) -> np.ndarray:
    """Fold of every measurement, split within each shell and echo time.

    Parameters
    ----------
    acq : Acquisition
    k : int
        Number of folds (at least 2).
    random_state : int or numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (n_measurements,)
        0..k−1, or −1 for a measurement never held out (its shell/TE group has one
        measurement). A group of n ≥ 2 measurements puts at most ceil(n/k) in each fold,
        so every training set keeps at least one measurement of it (b0s of every TE too).
    """
    k = int(k)
    if k < 2:
        raise ValueError(f"--holdout K: K must be at least 2 folds, not {k}.")
    rng = np.random.default_rng(random_state)
    folds = np.full(acq.n_measurements, -1, int)
    group = acq.shell_index * max(acq.n_te, 1) + acq.te_index
    start = 0
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        if idx.size < 2:
            continue
        idx = rng.permutation(idx)
        folds[idx] = (np.arange(idx.size) + start) % k  # rotate so small groups spread
        start += idx.size
    if np.all(folds < 0):
        raise ValueError("--holdout: every shell has a single measurement; nothing can be "
                         "held out.")
    return folds


@dataclass
class Candidate:
    """A model fitted by one method, with the label it is reported under."""

    label: str
    model: object
    method: str = "mix"


def candidate_label(model) -> str:
    """``noddi``, or ``noddi[+t2_stick,t2_ball=1500ms]`` for a model with steps."""
    parts = []
    for step in model.steps:
        if step[0] == "free":
            parts.append(f"+{step[1]}")
        elif step[0] in ("set", "fix"):
            try:
                rec = model.parameter_record(step[1])
                parts.append(f"{step[1]}={step[2] / rec.display_scale:g}{rec.display_unit}")
            except ValueError:
                parts.append(f"{step[1]}={step[2]:g}")
        else:
            parts.append(f"{step[0]}:{step[1]}")
    return model.name + (f"[{','.join(parts)}]" if parts else "")


def predict_signal(res, acq):
    """Signals (V, N) of a fit's parameters on another acquisition ``acq`` (held-out or
    full): S0 of the fit's echo-time group nearest each measurement's TE (one S0 when the
    model has compartment T2 or the fit had one TE). A spherical-mean model predicts every
    measurement by the mean signal of its shell."""
    S = res.model.signal(acq, res.params)
    if res.s0_te is None or acq.TE is None:
        return res.s0[:, None] * S
    idx = np.argmin(np.abs(acq.TE[:, None] - res.acq.te_values[None, :]), axis=1)
    return res.s0_te[:, idx] * S


def _fit_sigma(sigma):
    """One σ when every voxel has the same (fit() then takes a scalar), else the (V,) map."""
    return float(sigma[0]) if np.all(sigma == sigma[0]) else sigma


def _expected(S, sigma):
    """Rician expectation of the magnitude as the engines model it: sqrt(S² + σ²)."""
    return np.sqrt(S * S + sigma * sigma)


def predict_heldout(cand: Candidate, acq, vox, folds, sigma, *, fit_options=None,
                    progress=False):
    """Held-out predictions E[M] (V, N) of one candidate: each fold from the others' fit.

    Measurements never held out (fold −1) are NaN.
    """
    from ..fitting import fit

    V, N = vox.shape
    pred = np.full((V, N), np.nan)
    sig = sigma[:, None]
    sigma = _fit_sigma(sigma)
    for f in range(int(folds.max()) + 1):
        test = folds == f
        if not test.any():
            continue
        train = ~test
        res = fit(cand.model, acq.subset(np.flatnonzero(train)), vox[:, train],
                  method=cand.method, sigma=sigma, quality=False, progress=progress,
                  **(fit_options or {}))
        pred[:, test] = _expected(predict_signal(res, acq.subset(np.flatnonzero(test))), sig)
    return pred


def full_fit_scores(cand: Candidate, acq, vox, sigma, *, fit_options=None, progress=False):
    """AIC, BIC (per voxel) and the fraction of voxels at a bound, from a fit to all data."""
    from ..fitting import fit

    res = fit(cand.model, acq, vox, method=cand.method, sigma=_fit_sigma(sigma),
              progress=progress,
              **(fit_options or {}))
    E = _expected(predict_signal(res, acq), sigma[:, None])
    chi2 = np.sum(((vox - E) / sigma[:, None]) ** 2, axis=1)
    n_s0 = 1 if (res.s0_te is None) else acq.n_te
    k = cand.model.parameters.size + n_s0
    at_bound = res.extra.get("at_bound")
    frac = float(np.nanmean(at_bound)) if at_bound is not None else np.nan
    return chi2 + 2 * k, chi2 + k * np.log(acq.n_measurements), frac, k


def paired_bootstrap(errors, *, n_boot=N_BOOT, level=LEVEL, margin=MARGIN, random_state=0):
    """Ranks with ties from per-voxel errors of several candidates (paired over voxels).

    Parameters
    ----------
    errors : ndarray, shape (n_candidates, V)
        Per-voxel errors (lower is better), the same voxels for every candidate.

    Returns
    -------
    rank : ndarray of int, shape (n_candidates,)
        1 = best; tied candidates share a rank.
    diff, low, high : ndarray, shape (n_candidates,)
        Mean difference to the leader of the candidate's tie group (or to the best for
        the leaders) and its bootstrap interval.
    """
    errors = np.asarray(errors, float)
    C, V = errors.shape
    mean = errors.mean(1)
    order = np.argsort(mean, kind="stable")
    rng = np.random.default_rng(random_state)
    boots = np.empty((n_boot, C))
    for s in range(0, n_boot, 50):  # chunks keep the (B, V) weights small
        b = min(50, n_boot - s)
        w = rng.multinomial(V, np.full(V, 1.0 / V), size=b) / V
        boots[s:s + b] = w @ errors.T
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    rank = np.empty(C, int)
    diff, low, high = np.zeros(C), np.zeros(C), np.zeros(C)
    leader = order[0]
    rank[leader] = 1
    for pos, c in enumerate(order[1:], start=2):
        d = boots[:, c] - boots[:, leader]
        diff[c] = mean[c] - mean[leader]
        low[c], high[c] = np.percentile(d, q)
        if low[c] <= 0 or diff[c] < margin * mean[leader]:
            rank[c] = rank[leader]
        else:
            rank[c], leader = pos, c
    return rank, diff, low, high


def image_sigma(data, acq) -> float | None:
    """σ from local image patches (DIPY ``estimate_sigma``, Gaussian: N = 0), the median over
    the diffusion-weighted volumes; for scans with too few b0s to estimate it from their
    repeats. None when the data are not a 3-D image series."""
    data = np.asarray(data, float)
    if data.ndim != 4 or min(data.shape[:3]) < 3:
        return None
    from dipy.denoise.noise_estimate import estimate_sigma

    dw = np.flatnonzero(~acq.b0_mask)
    per_volume = estimate_sigma(np.nan_to_num(data[..., dw]), N=0)
    value = float(np.median(per_volume))
    return value if value > 0 else None


def _sigma_vox(sigma, vox, acq, mask, data=None):
    """σ of every masked voxel (V,): a map, one value, or estimated from the b0s (else from
    local image patches)."""
    from ..data.voxels import estimate_sigma_by_te

    if sigma is not None and np.ndim(sigma) > 0:
        arr = np.asarray(sigma, float)
        if arr.shape != mask.shape:
            raise ValueError(f"sigma map shape {arr.shape} does not match the data's "
                             f"{mask.shape}.")
        return arr[mask]
    if sigma is None:
        finite = np.all(np.isfinite(vox), axis=1)
        sigma = estimate_sigma_by_te(vox[finite], acq) if finite.any() else None
        if (sigma is None or not sigma > 0) and data is not None:
            sigma = image_sigma(data, acq)
            if sigma is not None:
                log.warning("holdout: fewer than 3 b0s per echo time; σ = %.4g from local "
                            "image patches (DIPY estimate_sigma). Give sigma for a better "
                            "one.", sigma)
        if sigma is None or not sigma > 0:
            raise ValueError("--holdout needs the noise σ: the data have fewer than 3 b0s "
                             "per echo time to estimate it; give --sigma.")
    if not float(sigma) > 0:
        raise ValueError(f"--sigma must be positive for --holdout, not {sigma!r}.")
    return np.full(vox.shape[0], float(sigma))


def holdout_compare(data, models, methods=("mix",), *, k=5, acq=None, mask=None,
                    labels=None, sigma=None, margin=MARGIN, n_boot=N_BOOT, random_state=0,
                    fit_options=None, progress=False) -> HoldoutComparison:
    """Rank models and methods by how well they predict measurements they did not see.

    Parameters
    ----------
    data : Dataset or ndarray, shape (*spatial, N)
        Raw signals (a dataset from :func:`~microlearn.data.dataset.load_dataset`).
    models : sequence of (str, dict or MultiCompartmentModel), or Candidate
        Family names, specs or models; each is fitted by every method in ``methods``.
    methods : sequence of str
        Fitting methods (``mix``, ``interior-point``, ``dictionary``, ``posterior``).
    k : int
        Folds.
    acq : Acquisition, optional
        Needed when ``data`` is an array.
    mask : ndarray of bool, shape (*spatial), optional
    labels : ndarray of int, shape (*spatial), optional
        Tissue or region labels: the table is also given per label (0 = unlabelled).
    sigma : float or ndarray of shape (*spatial), optional
        Noise σ in signal units (estimated from the b0s of each TE when absent).
    margin : float
        Differences below this share of the leader's mean npe are ties.
    n_boot : int
        Bootstrap resamples.
    random_state : int
        Seed of the folds and the bootstrap.
    fit_options : dict, optional
        Passed to :func:`~microlearn.fitting.fit` (e.g. ``max_iter``).

    Returns
    -------
    HoldoutComparison
    """
    from ..data.dataset import Dataset
    from ..fitting import FITTERS
    from ..models.spec import resolve_model

    affine = None
    if isinstance(data, Dataset):
        acq, affine = data.acq, data.affine
        mask = data.mask if mask is None else mask
        data = data.load_data()
    if acq is None:
        raise ValueError("acq: give the acquisition of the data (or pass a Dataset).")
    data = np.asarray(data)
    mask = np.ones(data.shape[:-1], bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != data.shape[:-1]:
        raise ValueError(f"mask shape {mask.shape} does not match the data's "
                         f"{data.shape[:-1]}.")
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    for m in methods:
        if m not in FITTERS.names():
            raise ValueError(f"--methods {m}: --holdout compares fitting methods "
                             f"({', '.join(FITTERS.names())}); learned estimators are not "
                             "supported yet.")
    cands = []
    for item in models:
        if isinstance(item, Candidate):
            cands.append(item)
            continue
        model = resolve_model(item)
        for meth in methods:
            cands.append(Candidate(candidate_label(model), model, meth))
    if len(methods) > 1:
        cands = [Candidate(f"{c.label}/{c.method}", c.model, c.method) for c in cands]
    seen = {}
    for c in cands:  # unique labels
        seen[c.label] = seen.get(c.label, 0) + 1
        if seen[c.label] > 1:
            c.label = f"{c.label}#{seen[c.label]}"
    if not cands:
        raise ValueError("--model: give at least one model.")
    vox = np.asarray(data[mask], float)
    sig = _sigma_vox(sigma, vox, acq, mask, data)
    folds = holdout_folds(acq, k, random_state=random_state)
    held = folds >= 0
    npe, rows = [], []
    for c in cands:
        log.info("holdout: %s (%s), %d folds", c.label, c.method, k)
        pred = predict_heldout(c, acq, vox, folds, sig, fit_options=fit_options,
                               progress=progress)
        err = np.sqrt(np.mean(((vox[:, held] - pred[:, held]) / sig[:, None]) ** 2, axis=1))
        aic, bic, frac, n_par = full_fit_scores(c, acq, vox, sig, fit_options=fit_options,
                                                progress=progress)
        npe.append(err)
        rows.append({"candidate": c.label, "model": c.model.name, "method": c.method,
                     "parameters": n_par, "aic": float(np.nanmean(aic)),
                     "bic": float(np.nanmean(bic)), "at_bound": frac})
    npe = np.array(npe)  # (C, V)
    scored = np.all(np.isfinite(npe), axis=0)
    if not scored.any():
        raise ValueError("--holdout: no voxel was answered by every candidate.")
    rank, diff, low, high = paired_bootstrap(npe[:, scored], n_boot=n_boot, margin=margin,
                                             random_state=random_state)
    for i, row in enumerate(rows):
        row.update({"rank": int(rank[i]), "npe": float(npe[i, scored].mean()),
                    "npe_median": float(np.median(npe[i, scored])),
                    "diff_to_leader": float(diff[i]), "diff_low": float(low[i]),
                    "diff_high": float(high[i]),
                    "tie": bool(np.sum(rank == rank[i]) > 1),
                    "no_answer": int((~np.isfinite(npe[i])).sum()),
                    "scored_voxels": int(scored.sum()), "voxels": int(mask.sum()),
                    "folds": int(k), "held_out": int(held.sum())})
    label_rows = _label_rows(labels, mask, scored, npe, cands, margin, n_boot, random_state)
    order = np.argsort([r["npe"] for r in rows], kind="stable")
    maps = {}
    for i, c in enumerate(cands):
        vol = np.full(mask.shape, np.nan)
        vol[mask] = npe[i]
        maps[c.label] = vol
    return HoldoutComparison(rows=[rows[i] for i in order], label_rows=label_rows, maps=maps,
                             mask=mask, affine=affine, sigma=float(np.median(sig)),
                             folds=folds)


def _label_rows(labels, mask, scored, npe, cands, margin, n_boot, random_state):
    if labels is None:
        return []
    labels = np.asarray(labels)
    if labels.shape != mask.shape:
        raise ValueError(f"--labels: label image shape {labels.shape} does not match the "
                         f"data's {mask.shape}; give a label image on the same grid.")
    lab = np.rint(np.asarray(labels, float)[mask]).astype(int)
    out = []
    for value in np.unique(lab[scored]):
        if value == 0:
            continue
        sel = scored & (lab == value)
        row = {"label": int(value), "voxels": int(sel.sum())}
        if sel.sum() >= 2:
            rank, *_ = paired_bootstrap(npe[:, sel], n_boot=n_boot, margin=margin,
                                        random_state=random_state)
        else:
            rank = np.argsort(np.argsort(npe[:, sel].mean(1))) + 1
        for i, c in enumerate(cands):
            row[f"npe_{c.label}"] = float(npe[i, sel].mean())
        best = [c.label for i, c in enumerate(cands) if rank[i] == 1]
        row["best"] = " = ".join(best)
        out.append(row)
    return out


@dataclass
class HoldoutComparison:
    """The ranking by held-out prediction, per-voxel error maps and the report.

    Attributes
    ----------
    rows : list of dict
        One row per candidate, best first: ``candidate``, ``model``, ``method``, ``rank``
        (ties share one), ``npe`` (mean normalised prediction error over the scored voxels),
        ``npe_median``, ``diff_to_leader`` with its 95 % bootstrap interval ``diff_low``,
        ``diff_high``, ``aic``, ``bic`` (means over voxels, full fit), ``at_bound`` (share
        of voxels with a parameter at a bound), ``parameters`` (k of AIC/BIC), counts.
    label_rows : list of dict
        Per label (when a label image was given): voxels, mean npe per candidate, best.
    maps : dict of str to ndarray, shape (*spatial)
        Per candidate, the npe of every voxel (NaN outside the mask).
    """

    rows: list
    label_rows: list
    maps: dict
    mask: np.ndarray
    affine: np.ndarray | None = None
    sigma: float = float("nan")
    folds: np.ndarray | None = None
    figures: dict = field(default_factory=dict)

    @property
    def ranking(self) -> list[str]:
        """Candidate labels, best first."""
        return [r["candidate"] for r in self.rows]

    @property
    def best(self) -> list[str]:
        """Every candidate of rank 1 (several when tied)."""
        return [r["candidate"] for r in self.rows if r["rank"] == 1]

    def make_figures(self) -> dict:
        """Bar chart of the mean npe with intervals, and the npe maps."""
        from ..viz.compare import plot_holdout_errors, plot_map_slices

        figs = {"prediction_error": plot_holdout_errors(self.rows)}
        if self.mask.ndim == 3:
            figs["npe_maps"] = plot_map_slices(None, {k: {"npe": v} for k, v in
                                                      self.maps.items()}, ["npe"], self.mask)
        self.figures = figs
        return figs

    def save_html(self, folder, *, write_maps=True) -> Path:
        """Write ``table.csv``, ``labels.csv``, figures, ``npe_<candidate>.nii.gz`` maps (with
        an affine) and ``index.html`` into ``folder``."""
        from ..data.writers import check_writable, write_maps
        from .compare import html_page, write_csv

        folder = check_writable(folder)
        write_csv(self.rows, folder / "table.csv")
        if self.label_rows:
            write_csv(self.label_rows, folder / "labels.csv")
        if write_maps and self.affine is not None and self.mask.ndim == 3:
            write_maps(folder, {f"npe_{_safe(k)}": v for k, v in self.maps.items()},
                       self.affine)
        figs = dict(self.figures or self.make_figures())
        best = " = ".join(html.escape(b) for b in self.best)
        intro = (f"<p>{int(self.mask.sum())} voxels; {self.rows[0]['held_out']} measurements "
                 f"held out in {self.rows[0]['folds']} folds (within each shell and echo "
                 f"time); σ = {self.sigma:.4g}. npe: RMS error of the held-out prediction "
                 "(Rician expectation) in units of σ, ~1 at the noise. Best: "
                 f"<b>{best}</b>; ties share a rank (95 % paired-bootstrap interval of the "
                 "difference holds 0, or the difference is under 1 % of the leader's). "
                 "<a href='table.csv'>table.csv</a></p>")
        tables = [self._table_html()]
        if self.label_rows:
            tables += ["<h2>per label</h2>", _table(self.label_rows)]
        return html_page(folder, "microlearn compare --holdout",
                         "Which model does this scan support? Held-out prediction",
                         intro, "\n".join(tables), figs)

    def _table_html(self) -> str:
        return _table(self.rows)

    def _repr_html_(self) -> str:
        return self._table_html()


def _table(rows) -> str:
    from .compare import table_html

    return table_html(rows)


def _safe(label: str) -> str:
    """A file-name-safe form of a candidate label (:mod:`microlearn.names`: ``[A-Za-z0-9_]``,
    at most 60 characters with the ``npe_`` prefix; long labels keep a hash suffix)."""
    import hashlib
    import re

    text = re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_") or "model"
    if len(text) > 56:
        text = text[:47] + "_" + hashlib.sha1(label.encode()).hexdigest()[:8]
    return text


__all__ = ["Candidate", "HoldoutComparison", "candidate_label", "holdout_compare",
           "holdout_folds", "paired_bootstrap", "predict_heldout"]
