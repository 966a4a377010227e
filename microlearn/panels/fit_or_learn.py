"""FitOrLearn: the same data through a fitting engine or a learned estimator."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from .common import (
    BackgroundTask,
    ErrorBox,
    figure_png,
    guarded,
    image_widget,
    model_choices,
    model_from_choice,
    resolve_data_path,
)

PHANTOM = "built-in phantom"
#: Voxels fitted for the data prior (empirical Bayes) of a learning run.
PRIOR_VOXELS = 1000
#: Grid of the dashboards' built-in brain phantom (HCP field of view, ~5.7 mm voxels).
PHANTOM_SHAPE = (32, 38, 4)


log = logging.getLogger(__name__)


def data_root_default() -> Path:
    """The folder dashboards may read data from (``MICROLEARN_DATA``, default ``./data``)."""
    return Path(os.environ.get("MICROLEARN_DATA", "data")).resolve()


class DataSource:
    """The built-in phantom (cached) or a dataset inside the data folder, in any input
    form (HCP/FSL, Camino scheme, MRtrix table, BIDS; see :mod:`microlearn.data.readers`).

    Parameters
    ----------
    data_root : path, optional
        Folder the dashboards may read (default ``MICROLEARN_DATA`` or ``./data``).
    phantom_shape : tuple of 3 int
        Grid of the built-in phantom.
    phantom_kind : {"brain", "rings"}
        The brain-shaped phantom (default) or the small ring fixture.
    """

    def __init__(self, data_root=None, phantom_shape=PHANTOM_SHAPE, phantom_kind="brain"):
        self.data_root = Path(data_root) if data_root is not None else data_root_default()
        self.phantom_shape = tuple(phantom_shape)
        self.phantom_kind = phantom_kind
        self._cache: dict = {}
        self._lock = threading.Lock()  # a background pre-build and a click share the cache

    def load(self, choice: str, folder_text: str = "", model: str = "noddi"):
        """Load the chosen data.

        Parameters
        ----------
        choice : str
            :data:`PHANTOM` or ``"folder..."``.
        folder_text : str
            Folder inside the data root (when not the phantom).
        model : str or dict
            Family name or model spec of the phantom to build.

        Returns
        -------
        dataset : Dataset
        truth : dict of str to ndarray, or None
            The phantom's true maps (None for a folder without ``truth/``).
        """
        from ..data.dataset import load_dataset, load_maps

        if choice == PHANTOM:
            ref = model if isinstance(model, str) else json.dumps(model, sort_keys=True)
            key = (ref, self.phantom_shape, self.phantom_kind)
            with self._lock:
                if key not in self._cache:
                    import tempfile

                    from ..data.phantom import make_phantom

                    tmp = Path(tempfile.mkdtemp(prefix="microlearn-phantom-"))
                    phantom = make_phantom(model=model, shape=self.phantom_shape, seed=0,
                                           kind=self.phantom_kind)
                    self._cache[key] = phantom.save(tmp)
                folder = self._cache[key]
        else:
            folder = resolve_data_path(folder_text, self.data_root)
        truth = load_maps(folder / "truth") if (folder / "truth").is_dir() else None
        # BIDS sidecars are inherited from no folder above the data root
        return load_dataset(folder, within=None if choice == PHANTOM else self.data_root), truth


def data_widgets(source: DataSource):
    """Dropdown (phantom or folder), folder text and model dropdown shared by the panels.

    Parameters
    ----------
    source : DataSource

    Returns
    -------
    data : ipywidgets.Dropdown
    folder : ipywidgets.Text
    model : ipywidgets.Dropdown
    """
    data = widgets.Dropdown(options=(PHANTOM, "folder..."), value=PHANTOM, description="data")
    folder = widgets.Text(placeholder=f"dataset (HCP, BIDS, scheme) in {source.data_root}",
                          description="folder")
    model = widgets.Dropdown(options=model_choices(source.data_root), value="noddi",
                             description="model")
    return data, folder, model


@dataclass(frozen=True)
class RunResult:
    """What one run produced, swapped into the panel as one object.

    Attributes
    ----------
    model : str
        Model family of the run (the maps' names come from it, not from the dropdown).
    maps : dict of str to ndarray
        Spatial maps.
    mask : ndarray of bool, shape (X, Y, Z)
    truth : dict or None
        True maps of a phantom.
    n_voxels : int
    seconds, train_seconds : float
        Fit or predict time, and training time (0 for fits), in s.
    std_source : str
        What the ``<map>_std`` maps are (a fit's Cramér–Rao std or a learned std).
    """

    model: str
    maps: dict
    mask: object
    truth: dict | None
    n_voxels: int
    seconds: float
    train_seconds: float = 0.0
    std_source: str = ""


def runtime_html(n_vox: int, seconds: float, setup: float | None, train_s: float = 0.0) -> str:
    """The runtime line: whole time, and set-up apart from the steady rate when timed."""
    text = f"<b>{n_vox}</b> voxels in <b>{seconds:.2f} s</b>"
    steady = seconds - setup if setup is not None else 0.0
    if setup is not None and steady > 0:
        text += (f": set-up {setup:.2f} s (imports, compiled kernels, tables; measured), "
                 f"then <b>{n_vox / steady:,.0f} vox/s</b>")
    else:
        text += f" ({n_vox / max(seconds, 1e-9):,.0f} vox/s, whole call)"
    return text + (f"; training {train_s:.1f} s" if train_s else "")


class FitOrLearn(widgets.VBox):
    """Switch between fitting (engine) and learning (estimator, optimizer, features, size).

    Parameters
    ----------
    data_root : path, optional
        Only folders inside it can be opened (default ``MICROLEARN_DATA`` or ``./data``).
    phantom_shape : tuple of int
        Size of the built-in phantom.
    prewarm : bool
        Prepare the first fit in a background thread while the page is read: build the
        phantom, load the compiled fitting kernels, import and warm up matplotlib.
    """

    def __init__(self, *, data_root=None, phantom_shape=PHANTOM_SHAPE, prewarm=True):
        from ..learning import ESTIMATOR_NAMES, OPTIMIZERS
        from ..run.methods import fitting_methods

        self.source = DataSource(data_root, phantom_shape)
        self.errors = ErrorBox()
        self.data, self.folder, self.model = data_widgets(self.source)
        self.mode = widgets.ToggleButtons(options=("fit", "learn"), value="fit",
                                          description="approach")
        self.engine = widgets.Dropdown(options=fitting_methods(), value="mix",
                                       description="engine")
        self.estimator = widgets.Dropdown(options=ESTIMATOR_NAMES, value="polynomial",
                                          description="estimator")
        self.optimizer = widgets.Dropdown(options=("default",) + OPTIMIZERS, value="default",
                                          description="optimizer")
        self.features = widgets.Dropdown(options=("rotation-invariant", "signal", "hybrid"),
                                         description="features")
        self.n_samples = widgets.IntSlider(value=20_000, min=1000, max=200_000, step=1000,
                                           description="training", continuous_update=False)
        self.prior = widgets.Dropdown(
            options=(("data (fits of a voxel sample)", "data"), ("model priors", "model")),
            value="data", description="prior",
            tooltip="data: train around MIX fits of a random sample of the data's voxels "
                    "(empirical Bayes); model: the model's default priors")
        self.uncertainty = widgets.Checkbox(
            value=True, description="learn a std",
            tooltip="per-voxel std maps and a coverage plot (dnn: a deep ensemble)")
        self.button = widgets.Button(description="run", button_style="primary")
        self.progress = widgets.IntProgress(value=0, min=0, max=3, description="progress")
        self.status = widgets.HTML()
        self.runtime = widgets.HTML()
        self.slice = widgets.IntSlider(value=0, min=0, max=0, description="slice z",
                                       continuous_update=False)
        self.maps_image = image_widget()
        self.std_image = image_widget()
        self.coverage_image = image_widget(width="360px")
        self.std_note = widgets.HTML()
        self.fit_box = widgets.HBox([self.engine])
        self.learn_box = widgets.VBox([
            widgets.HBox([self.estimator, self.optimizer, self.features]),
            widgets.HBox([self.n_samples, self.prior, self.uncertainty])])
        self.task = BackgroundTask(self.status, self.progress, self.errors)
        self.result: RunResult | None = None
        self.mode.observe(lambda c: self._show_mode(), names="value")
        self.model.observe(lambda c: self._default_engine(), names="value")
        self.slice.observe(lambda c: guarded(self.errors)(self._draw)(), names="value")
        self.button.on_click(lambda _: guarded(self.errors)(self.run)())
        self.plan = PlanTab(self.source, self.data, self.folder, self.model, self.errors)
        self.tabs = widgets.Tab(children=[
            widgets.VBox([self.slice, self.maps_image]),
            widgets.VBox([self.std_note, self.std_image, self.coverage_image]),
            self.plan])
        for i, title in enumerate(("maps", "std & coverage", "plan")):
            self.tabs.set_title(i, title)
        super().__init__([widgets.HTML("<h3>Fit or learn</h3>"),
                          widgets.HBox([self.data, self.folder, self.model]), self.mode,
                          self.fit_box, self.learn_box,
                          widgets.HBox([self.button, self.progress, self.status]),
                          self.runtime, self.tabs, self.errors])
        self.add_class("ml-fit-or-learn")
        self._show_mode()

        self._prepared = None
        if prewarm:
            self._prepared = threading.Thread(target=self._prepare, daemon=True,
                                              name="microlearn-prepare")
            self._prepared.start()

    def _default_engine(self):
        """A family with its own fitting method (SANDI: posterior) selects that engine."""
        from ..models.registry import default_method

        try:
            model = model_from_choice(self.model.value, self.source.data_root)
        except (ValueError, OSError):  # a broken spec file: the run reports it
            return
        method = default_method(model)
        if method in self.engine.options:
            self.engine.value = method

    def _prepare(self):
        """Pay the first fit's one-off costs ahead of the first click (best effort)."""
        try:
            from matplotlib.figure import Figure

            from ..run.methods import warm_up

            self.source.load(PHANTOM, "", self.model.value)
            model = model_from_choice(self.model.value, self.source.data_root)
            warm_up(model, model.n_fibres, self.engine.value)
            figure_png(Figure(figsize=(1, 1)))  # font cache and the Agg canvas
        except Exception as err:  # noqa: BLE001 - the real run reports errors
            log.debug("pre-warming the fit-or-learn panel failed: %s", err)

    def _show_mode(self):
        fitting = self.mode.value == "fit"
        self.fit_box.layout.display = "" if fitting else "none"
        self.learn_box.layout.display = "none" if fitting else ""

    def run(self, wait: bool = False):
        """Start the work in the background (``wait=True`` runs it here, for tests)."""
        settings = {"data": self.data.value, "folder": self.folder.value,
                    "model": self.model.value, "mode": self.mode.value,
                    "engine": self.engine.value, "estimator": self.estimator.value,
                    "optimizer": None if self.optimizer.value == "default"
                    else self.optimizer.value,
                    "features": self.features.value, "n_samples": int(self.n_samples.value),
                    "prior": self.prior.value, "uncertainty": bool(self.uncertainty.value)}
        self.task.start(lambda task: self._work(task, settings), 3, wait=wait)

    def _work(self, task, s):
        from ..learning import train
        from ..models.spec import model_reference
        from ..run.compare import run_method

        task.stage("loading data", 0)
        if self._prepared is not None:  # a click during the preparation waits for it
            self._prepared.join()
        model = model_from_choice(s["model"], self.source.data_root)
        ds, truth = self.source.load(s["data"], s["folder"], model_reference(model))
        data = ds.load_data()
        n_vox = int(ds.mask.sum())
        t0 = time.perf_counter()
        if s["mode"] == "fit":
            task.stage(f"fitting {n_vox} voxels with {s['engine']}", 1)
            fitted = run_method(s["engine"], model, ds.acq, data, ds.mask,
                                n_fibres=model.n_fibres)
            maps, seconds, train_s = fitted.maps, fitted.seconds, 0.0
            setup = fitted.setup_seconds
        else:
            from ..learning.empirical import data_prior_helps
            from ..learning.trained import with_uncertainty

            name, options = s["estimator"], {}
            if s["uncertainty"]:
                name, options = with_uncertainty(name)
            if s["prior"] == "data" and data_prior_helps(model):
                # empirical Bayes: train around fits of a sample of this data's voxels;
                # without it, the family mixture (free water for CSF included)
                options["prior_signals"] = data[ds.mask]
                options["prior_fit"] = {"n_fit": PRIOR_VOXELS}
                task.stage(f"fitting {min(PRIOR_VOXELS, n_vox)} voxels for the data prior, "
                           f"then training {name} on {s['n_samples']} simulated voxels", 1)
            else:
                task.stage(f"training {name} on {s['n_samples']} simulated voxels", 1)
            est = train(model, ds.acq, estimator=name, optimizer=s["optimizer"],
                        features=s["features"], n_samples=s["n_samples"], **options)
            train_s = time.perf_counter() - t0
            task.stage(f"predicting {n_vox} voxels", 2)
            t1 = time.perf_counter()
            maps = est.predict_maps(data, ds.mask, acq=ds.acq)
            seconds = time.perf_counter() - t1
            setup = None
        source = ("Cramér–Rao std of the fit" if s["mode"] == "fit" else
                  f"learned std ({est.estimator_name})")
        result = RunResult(model=model_reference(model), maps=maps, mask=ds.mask, truth=truth,
                           n_voxels=n_vox, seconds=seconds, train_seconds=train_s,
                           std_source=source)
        self.result = result  # one assignment: a redraw sees the old run or the new one
        self.runtime.value = runtime_html(n_vox, seconds, setup, train_s)
        z = int(result.mask.sum(axis=(0, 1)).argmax())
        with self.slice.hold_trait_notifications():
            self.slice.max = result.mask.shape[2] - 1
            changed = self.slice.value != z
            self.slice.value = z  # when it changes, its observer draws (once)
        if not changed:
            self._draw()
        task.stage("done", 3)

    @property
    def maps(self):
        """Maps of the last finished run (None before the first)."""
        return None if self.result is None else self.result.maps

    @property
    def mask(self):
        """Mask of the last finished run (None before the first)."""
        return None if self.result is None else self.result.mask

    def _draw(self):
        from ..models.registry import compared_maps
        from ..models.spec import resolve_model
        from ..viz.maps import plot_maps_slice

        result = self.result  # read once: a run finishing meanwhile swaps in a new object
        if result is None:
            return
        names = compared_maps(resolve_model(result.model))
        z = int(self.slice.value)
        fig = plot_maps_slice(result.maps, names, result.mask, z, truth=result.truth)
        self.maps_image.value = figure_png(fig)
        self._draw_std(result, names, z)

    def _draw_std(self, result, names, z):
        """The std maps of the slice and, with a truth, the coverage of their intervals."""
        from ..learning.uncertainty import coverage_curve
        from ..viz.maps import plot_maps_slice
        from ..viz.uncertainty import plot_coverage

        with_std = [n for n in names if f"{n}_std" in result.maps]
        if not with_std:
            self.std_note.value = ("no std maps in this run: learn with <i>learn a std</i> "
                                   "ticked")
            self.std_image.value = self.coverage_image.value = b""
            return
        self.std_image.value = figure_png(plot_maps_slice(
            result.maps, [f"{n}_std" for n in with_std], result.mask, z))
        if result.truth is None:
            self.std_note.value = (f"{result.std_source} (no truth here: coverage needs "
                                   "a phantom)")
            self.coverage_image.value = b""
            return
        curves, at90 = {}, []
        for n in with_std:
            if n not in result.truth:
                continue
            m = result.mask
            curves[n] = coverage_curve(result.maps[n][m], result.maps[f"{n}_std"][m],
                                       result.truth[n][m])
            levels, cover = curves[n]
            at90.append(f"{n} {cover[np.argmin(np.abs(levels - 0.9))]:.2f}")
        self.std_note.value = (f"{result.std_source}: maps of the slice; 90 % intervals "
                               "hold the truth in: " + ", ".join(at90)
                               + " (0.85-0.95 is calibrated)")
        self.coverage_image.value = figure_png(plot_coverage(curves))


class PlanTab(widgets.VBox):
    """Can this acquisition support the model? :func:`microlearn.run.plan.plan` as a table.

    Parameters
    ----------
    source : DataSource
    data, folder, model : ipywidgets widgets
        The panel's data choice and model (the acquisition comes from the chosen data).
    errors : ErrorBox
    """

    def __init__(self, source, data, folder, model, errors):
        self.source, self.data, self.folder, self.model = source, data, folder, model
        self.snr = widgets.FloatSlider(value=30.0, min=5.0, max=100.0, step=5.0,
                                       description="SNR", continuous_update=False)
        self.n_fibres = widgets.Dropdown(options=(1, 2, 3), value=1, description="fibres")
        self.n_voxels = widgets.IntSlider(value=200, min=50, max=2000, step=50,
                                          description="voxels", continuous_update=False)
        self.button = widgets.Button(description="plan", button_style="info")
        self.progress = widgets.IntProgress(value=0, min=0, max=2, description="progress")
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.report: dict | None = None
        self.task = BackgroundTask(self.status, self.progress, errors)
        self.button.on_click(lambda _: guarded(errors)(self.run)())
        super().__init__([
            widgets.HTML("Cramér–Rao bound and Monte-Carlo fitting and learning errors per "
                         "parameter on the chosen data's acquisition"),
            widgets.HBox([self.snr, self.n_fibres, self.n_voxels]),
            widgets.HBox([self.button, self.progress, self.status]), self.table])

    def run(self, wait: bool = False):
        """Plan in the background (``wait=True``: here, for tests)."""
        settings = {"data": self.data.value, "folder": self.folder.value,
                    "model": self.model.value, "snr": float(self.snr.value),
                    "n_fibres": int(self.n_fibres.value), "n_voxels": int(self.n_voxels.value)}
        self.task.start(lambda task: self._work(task, settings), 2, wait=wait)

    def _work(self, task, s):
        from ..models.registry import has_fibres
        from ..models.spec import model_reference
        from ..run.plan import plan

        task.stage("reading the acquisition", 0)
        model = model_from_choice(s["model"], self.source.data_root)
        ds, _ = self.source.load(s["data"], s["folder"], model_reference(model))
        n_fibres = s["n_fibres"] if has_fibres(model) else model.n_fibres
        task.stage(f"bounds, {s['n_voxels']} Monte-Carlo fits and a learned estimator", 1)
        report = plan(model, ds.acq, snr=s["snr"], n_fibres=n_fibres,
                      n_voxels=s["n_voxels"], n_train=5000)
        self.report = report
        self.table.value = plan_html(report)
        task.stage("done", 2)


def plan_html(report: dict) -> str:
    """The plan report as an HTML table (display units)."""
    import html

    def cell(v, scale):
        return "" if v is None or not np.isfinite(v) else f"{v / scale:.3g}"

    head = ("parameter", "unit", "prior spread", "CRB (median)", "fit RMSE", "learn RMSE",
            "verdict")
    rows = []
    for r in report["rows"]:
        sc = r.get("display_scale", 1.0) or 1.0
        cells = (r["name"], r.get("display_unit") or r.get("unit") or "",
                 cell(r["prior_std"], sc), cell(r["crb_median"], sc),
                 cell(r["fit_rmse"], sc), cell(r["learn_rmse"], sc),
                 f"<b>{r['verdict']}</b>: {html.escape(r['reason'])}")
        rows.append("<tr>" + "".join(f"<td>{c if i == 6 else html.escape(str(c))}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    title = (f"{html.escape(report['model'])}, SNR {report['snr']:g}, "
             f"{report['n_measurements']} measurements, b = "
             f"{', '.join(str(b) for b in report['shells_s_per_mm2'])} s/mm²")
    return (f"<p>{title}</p><table class='ml-plan'><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")
