"""Compare fitting engines and learned estimators on the same data.

:func:`compare` runs every method on the same voxels, times it, and — when the truth is
known (the phantom's ``truth/``) — reports RMSE, bias and correlation per map; without
truth it reports each method's agreement with the first one. The :class:`Comparison` it
returns writes a report folder (``table.csv``, PNG figures, ``index.html``) and shows
itself as HTML in notebooks and dashboards.

Method names: fitting engines (``mix``, ``interior-point``, ``dictionary``), learned
estimators (``dnn``, ``polynomial``, ``boosted-trees``, ``bayesian``, ``wide-deep``,
``bayesian-dnn``, ``deep-ensemble``, ``linear-sdca``, optionally
``<estimator>/<optimizer>``, e.g. ``dnn/ftrl``) trained on the data's acquisition, or a
folder with a saved estimator. Estimators with a std (``bayesian``, ``bayesian-dnn``,
``deep-ensemble``, or saved with ``learn --uncertainty``) get coverage and Spearman columns
next to the fits' Cramér–Rao ones.
"""

from __future__ import annotations

import csv
import html
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Maps compared per model family.


@dataclass
class MethodRun:
    """One method's maps over the compared voxels and its timings."""

    name: str
    kind: str  # "fit" or "learn"
    maps: dict
    seconds: float
    train_seconds: float = 0.0
    setup_seconds: float | None = None  # None: the set-up was not timed apart


@dataclass
class Comparison:
    """Rows of the comparison plus what is needed to draw it.

    Attributes
    ----------
    rows : list of dict
        One row per method: ``method``, ``kind``, ``voxels``, ``no_answer`` (voxels where
        the method gave NaN), ``scored_voxels`` (voxels every method answered: the metrics
        are computed over these), ``seconds`` (the whole call, set-up included), ``setup_s``
        (imports, compiled-kernel loading, tables: the part that does not scale with the
        voxels; blank when not timed apart), ``vox_per_s`` (steady throughput,
        ``voxels / (seconds - setup_s)``), ``timing`` (which of these was measured),
        ``train_seconds`` and per map ``rmse_<m>``, ``bias_<m>``,
        ``corr_<m>`` (with truth) or ``rmsd_<m>``, ``corr_<m>`` against the reference
        method (without); with truth and a ``<m>_std`` map also ``cover90_<m>`` and
        ``spearman_<m>`` (calibration and ranking of the std).
    runs : dict of str -> MethodRun
    truth : dict or None
        True maps over the compared voxels.
    names : tuple of str
        Compared maps.
    mask : ndarray of bool
        Voxels compared (spatial).
    """

    rows: list
    runs: dict
    truth: dict | None
    names: tuple
    mask: np.ndarray
    model: str = "noddi"
    reference: str | None = None
    figures: dict = field(default_factory=dict)

    def to_csv(self, path) -> Path:
        """Write the table (atomically)."""
        return write_csv(self.rows, path)

    def make_figures(self) -> dict:
        """Matplotlib figures: scatter, runtime bars, map slices, error maps."""
        from ..viz.compare import plot_error_maps, plot_map_slices, plot_runtime, plot_scatter

        estimates = {n: {k: r.maps[k][self.mask] for k in self.names}
                     for n, r in self.runs.items()}
        figs = {"runtime": plot_runtime(self.rows)}
        if self.truth is not None:
            truth = {k: self.truth[k][self.mask] for k in self.names}
            figs["scatter"] = plot_scatter(truth, estimates, self.names)
            figs["errors"] = plot_error_maps(self.truth, {n: r.maps for n, r in self.runs.items()},
                                             self.names, self.mask)
        else:
            ref = estimates[self.reference]
            figs["scatter"] = plot_scatter(ref, {n: e for n, e in estimates.items()
                                                 if n != self.reference}, self.names,
                                           xlabel=f"{self.reference}")
        figs["slices"] = plot_map_slices(self.truth, {n: r.maps for n, r in self.runs.items()},
                                         self.names, self.mask)
        self.figures = figs
        return figs

    def save_html(self, folder, *, extra_figures=None) -> Path:
        """Write ``table.csv``, ``<figure>.png`` and ``index.html`` into ``folder``.

        ``extra_figures`` (name -> Figure) are added to the page after the comparison's.
        """
        from ..data.writers import check_writable

        folder = check_writable(folder)
        self.to_csv(folder / "table.csv")
        figs = dict(self.figures or self.make_figures())
        figs.update(extra_figures or {})
        intro = (f"<p>{int(self.mask.sum())} voxels; "
                 + ("errors against the known truth" if self.truth is not None else
                    f"agreement with {html.escape(str(self.reference))} (no truth given)")
                 + f"; metrics over the {self._scored()} voxels every method answered "
                 "(no_answer: voxels a method left NaN)"
                 + ". <a href='table.csv'>table.csv</a></p>")
        return html_page(folder, f"microlearn compare: {self.model}",
                         f"Fitting and learning compared: {self.model}", intro,
                         self._table_html(), figs)

    def _scored(self) -> int:
        return int(self.rows[0]["scored_voxels"]) if self.rows else 0

    def _table_html(self) -> str:
        return table_html(self.rows)

    def _repr_html_(self) -> str:
        return self._table_html()


def write_csv(rows, path) -> Path:
    """Write rows (list of dict) as CSV, atomically; columns in first-seen order."""
    from ..data.writers import _atomic_replace

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    _atomic_replace(tmp, path)
    return path


def table_html(rows) -> str:
    """Rows (list of dict) as an HTML table (floats to 4 significant digits)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(folder, title: str, heading: str, intro: str, table: str, figs: dict) -> Path:
    """Write the figures (PNG) and ``index.html`` of a comparison report into ``folder``.

    ``intro`` and ``table`` are HTML; ``figs`` maps names to matplotlib figures. One look
    for every comparison report (truth, agreement, held-out prediction).
    """
    from ..data.writers import _atomic_replace

    folder = Path(folder)
    for name, fig in figs.items():
        tmp = folder / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=90)
        _atomic_replace(tmp, folder / f"{name}.png")
    page = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
            "img{max-width:100%}</style></head><body>",
            f"<h1>{html.escape(heading)}</h1>", intro, table]
    for name in figs:
        page.append(f"<h2>{name}</h2><img src='{name}.png' alt='{name}'>")
    page.append("</body></html>")
    tmp = folder / ".index.html.tmp"
    tmp.write_text("\n".join(page))
    _atomic_replace(tmp, folder / "index.html")
    return folder / "index.html"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _answered(maps, names, evaluate) -> np.ndarray:
    """Voxels (spatial, bool) where every compared map of ``maps`` is finite."""
    ok = np.asarray(evaluate, bool).copy()
    for k in names:
        v = np.asarray(maps[k], float)
        ok &= np.all(np.isfinite(v.reshape(ok.shape + (-1,))), axis=-1)
    return ok

def _timing_row(run: MethodRun, n_vox: int) -> dict:
    """``seconds``, ``setup_s``, steady ``vox_per_s`` and what was measured, for one run."""
    from ..fitting.api import throughput

    if run.setup_seconds is None:
        return {"seconds": round(run.seconds, 4), "setup_s": "",
                "vox_per_s": round(n_vox / max(run.seconds, 1e-9), 1),
                "timing": "whole call (set-up not split)"}
    steady = throughput(n_vox, run.seconds, run.setup_seconds)
    return {"seconds": round(run.seconds, 4), "setup_s": round(run.setup_seconds, 3),
            "vox_per_s": round(steady if np.isfinite(steady) else n_vox / run.seconds, 1),
            "timing": "set-up timed apart (first voxels alone)"}


def _metrics(estimate, truth) -> dict:
    """RMSE, bias and correlation; ``estimate`` holds the voxels every method answered,
    and voxels whose truth is undefined (NaN) are left out."""
    ok = np.isfinite(truth)
    if ok.sum() < 2:
        return {"rmse": np.nan, "bias": np.nan, "corr": np.nan}
    e, t = estimate[ok].astype(float), truth[ok].astype(float)
    corr = float(np.corrcoef(e, t)[0, 1]) if np.std(e) > 0 and np.std(t) > 0 else np.nan
    return {"rmse": float(np.sqrt(np.mean((e - t) ** 2))), "bias": float(np.mean(e - t)),
            "corr": corr}


def _std_metrics(name, estimate, std, truth) -> dict:
    """``cover90_<m>``: share of truths inside ``estimate ± 1.645 std`` (0.90 when
    calibrated); ``spearman_<m>``: rank correlation of std with |error| (> 0 when the std
    says which voxels are wrong)."""
    from scipy.stats import spearmanr

    ok = np.isfinite(estimate) & np.isfinite(truth) & np.isfinite(std)
    if ok.sum() < 3:
        return {f"cover90_{name}": np.nan, f"spearman_{name}": np.nan}
    err = np.abs(estimate[ok] - truth[ok])
    rho = spearmanr(std[ok], err)[0] if np.ptp(std[ok]) > 0 else np.nan
    return {f"cover90_{name}": float(np.mean(err <= 1.6448536 * std[ok])),
            f"spearman_{name}": float(rho)}


def _parse_method(spec: str):
    from ..fitting import FITTERS
    from ..learning import ESTIMATOR_NAMES

    if spec in FITTERS.names():
        return "fit", spec, None
    if Path(spec).is_dir():
        return "saved", spec, None
    name, _, optimizer = spec.partition("/")
    if name in ESTIMATOR_NAMES:
        return "learn", name, optimizer or None
    raise ValueError(f"methods: unknown method {spec!r}; choose fitting engines "
                     f"{FITTERS.names()}, learned estimators {list(ESTIMATOR_NAMES)} "
                     "(optionally estimator/optimizer) or a saved estimator folder.")


def run_method(spec, model_name, acq, data, mask, *, n_fibres=1, learn_options=None,
               progress=False) -> MethodRun:
    """Run one method on ``data[mask]``; maps are spatial arrays. ``model_name`` is a family
    name, a spec or a model."""
    from ..fitting import fit
    from ..learning import load_estimator, train
    from ..models.spec import resolve_model

    if isinstance(spec, tuple):  # (label, TrainedEstimator)
        label, est = spec
        est.check_acquisition(acq)
        t0 = time.perf_counter()
        maps = est.predict_maps(data, mask, acq=acq)
        return MethodRun(name=label, kind="learn", maps=maps, seconds=time.perf_counter() - t0,
                         train_seconds=float(est.info.get("seconds", 0.0)))
    kind, name, optimizer = _parse_method(spec)
    train_seconds = 0.0
    if kind == "fit":
        model = resolve_model(model_name, n_fibres)
        t0 = time.perf_counter()
        res = fit(model, acq, data, method=name, mask=mask, progress=progress)
        seconds = time.perf_counter() - t0
        maps = res.maps()
        return MethodRun(name=spec, kind="fit", maps=maps, seconds=seconds,
                         setup_seconds=res.setup_seconds + max(seconds - res.seconds, 0.0))
    else:
        if kind == "saved":
            est = load_estimator(name)
            est.check_acquisition(acq)
        else:
            opts = {"n_samples": 50_000, **(learn_options or {})}
            t0 = time.perf_counter()
            est = train(model_name, acq, estimator=name, optimizer=optimizer,
                        progress=progress, **opts)
            train_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        maps = est.predict_maps(data, mask, acq=acq)
        seconds = time.perf_counter() - t0
    return MethodRun(name=spec, kind="fit" if kind == "fit" else "learn", maps=maps,
                     seconds=seconds, train_seconds=train_seconds)


def compare(data, model, methods, *, acq=None, mask=None, truth=None, names=None,
            evaluate=None, n_fibres=1, learn_options=None, prior="model",
            progress=False) -> Comparison:
    """Run ``methods`` on the same data and tabulate accuracy and speed.

    Parameters
    ----------
    data : Dataset or ndarray, shape (*spatial, N)
        A dataset from :func:`microlearn.data.dataset.load_dataset` or raw signals.
    model : str, dict or MultiCompartmentModel
        A family name (``noddi``...), a model spec or a model: fitted by the engines and
        learned by the estimators alike.
    methods : sequence of str or comma-separated str
        Method names (see the module docstring), or ``(label, TrainedEstimator)`` pairs
        for estimators already trained (their training time is taken from ``info``).
    acq : Acquisition, optional
        Needed when ``data`` is an array.
    mask : ndarray of bool, optional
        Voxels to process (default: the dataset's mask, or all).
    truth : dict or path, optional
        True maps (e.g. the phantom's ``truth/`` folder).
    names : sequence of str, optional
        Maps to compare (default: the family's, :func:`~microlearn.models.registry.compared_maps`).
    evaluate : ndarray of bool, optional
        Voxels the metrics are computed on (default: the mask; with a truth that has
        ``n_fibres``, the voxels whose fibre count matches ``n_fibres``).
    n_fibres : int
        Fibre populations of the fitted model.
    learn_options : dict, optional
        Passed to :func:`microlearn.learning.train` (e.g. ``n_samples``, ``epochs``).
    prior : {"model", "data"}
        Training prior of the learned methods: the model's priors, or ``data``: fits of a
        random sample of ``mask`` voxels (empirical Bayes, fitted once and shared by every
        learned method; as ``learn --prior data``). A learned std is calibrated for its
        training prior: on the phantom (16x16x4) a deep ensemble's 90 % intervals hold
        100/97/96 % of the ODI/ICVF/FISO truths on the model's priors, 85/88/90 % on the
        data prior (RMSE 0.046/0.017/0.029, MIX 0.042/0.021/0.036).
    """
    from ..data.dataset import Dataset, load_maps

    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("methods: give at least one method to compare.")
    for m in methods:
        if not isinstance(m, tuple):
            _parse_method(m)
    from ..models.registry import compared_maps, has_fibres
    from ..models.spec import model_reference, resolve_model

    base = resolve_model(model, n_fibres)
    model = model_reference(base)
    if isinstance(data, Dataset):
        acq = data.acq
        mask = data.mask if mask is None else mask
        data = data.load_data()
    if acq is None:
        raise ValueError("acq: give the acquisition of the data (or pass a Dataset).")
    data = np.asarray(data)
    spatial = data.shape[:-1]
    mask = np.ones(spatial, bool) if mask is None else np.asarray(mask, bool)
    if isinstance(truth, (str, Path)):
        truth = load_maps(truth)
    names = tuple(names or compared_maps(base))
    if evaluate is None:
        evaluate = mask.copy()
        if truth is not None and "n_fibres" in truth and has_fibres(base):
            evaluate &= np.asarray(truth["n_fibres"]) == n_fibres
    evaluate = np.asarray(evaluate, bool) & mask
    if prior not in ("model", "data"):
        raise ValueError(f"prior: 'model' or 'data', not {prior!r}.")
    learn_options = dict(learn_options or {})
    if prior == "data" and not {"empirical", "prior_signals"} & set(learn_options) and any(
            not isinstance(m, tuple) and _parse_method(m)[0] == "learn" for m in methods):
        from ..learning.empirical import fit_sample
        from ..learning.trained import model_family

        learn_options["empirical"] = fit_sample(model_family(model), acq, data[mask],
                                                random_state=0)
    runs = {}
    for spec in methods:
        label = spec[0] if isinstance(spec, tuple) else spec
        log.info("compare: running %s", label)
        runs[label] = run_method(spec, model, acq, data, mask, n_fibres=n_fibres,
                                 learn_options=learn_options, progress=progress)
    reference = next(iter(runs))
    answered = {label: _answered(run.maps, names, evaluate) for label, run in runs.items()}
    scored = evaluate & np.logical_and.reduce(list(answered.values()))
    rows = []
    n_vox = int(mask.sum())
    for spec, run in runs.items():
        row = {"method": spec, "kind": run.kind, "voxels": n_vox,
               "no_answer": int((evaluate & ~answered[spec]).sum()),
               "scored_voxels": int(scored.sum()), **_timing_row(run, n_vox),
               "train_seconds": round(run.train_seconds, 3)}
        for k in names:
            est = np.asarray(run.maps[k], float)[scored]
            if truth is not None:
                met = _metrics(est, np.asarray(truth[k], float)[scored])
                row.update({f"rmse_{k}": met["rmse"], f"bias_{k}": met["bias"],
                            f"corr_{k}": met["corr"]})
                if f"{k}_std" in run.maps:  # fits' Cramér–Rao std or a learned std
                    row.update(_std_metrics(k, est, np.asarray(run.maps[f"{k}_std"],
                                                               float)[scored],
                                            np.asarray(truth[k], float)[scored]))
            else:
                ref = np.asarray(runs[reference].maps[k], float)[scored]
                met = _metrics(est, ref)
                row.update({f"rmsd_{k}": met["rmse"], f"corr_{k}": met["corr"]})
        rows.append(row)
    return Comparison(rows=rows, runs=runs, truth=truth, names=names, mask=evaluate,
                      model=base.name, reference=None if truth is not None else reference)
