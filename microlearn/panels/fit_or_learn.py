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
        return load_dataset(folder), truth


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
    """

    model: str
    maps: dict
    mask: object
    truth: dict | None
    n_voxels: int
    seconds: float
    train_seconds: float = 0.0


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
        from ..fitting import FITTERS
        from ..learning import ESTIMATOR_NAMES, OPTIMIZERS

        self.source = DataSource(data_root, phantom_shape)
        self.errors = ErrorBox()
        self.data, self.folder, self.model = data_widgets(self.source)
        self.mode = widgets.ToggleButtons(options=("fit", "learn"), value="fit",
                                          description="approach")
        self.engine = widgets.Dropdown(options=FITTERS.names(), value="mix",
                                       description="engine")
        self.estimator = widgets.Dropdown(options=ESTIMATOR_NAMES, value="polynomial",
                                          description="estimator")
        self.optimizer = widgets.Dropdown(options=("default",) + OPTIMIZERS, value="default",
                                          description="optimizer")
        self.features = widgets.Dropdown(options=("rotation-invariant", "signal", "hybrid"),
                                         description="features")
        self.n_samples = widgets.IntSlider(value=20_000, min=1000, max=200_000, step=1000,
                                           description="training", continuous_update=False)
        self.button = widgets.Button(description="run", button_style="primary")
        self.progress = widgets.IntProgress(value=0, min=0, max=3, description="progress")
        self.status = widgets.HTML()
        self.runtime = widgets.HTML()
        self.slice = widgets.IntSlider(value=0, min=0, max=0, description="slice z",
                                       continuous_update=False)
        self.maps_image = image_widget()
        self.fit_box = widgets.HBox([self.engine])
        self.learn_box = widgets.HBox([self.estimator, self.optimizer, self.features,
                                       self.n_samples])
        self.task = BackgroundTask(self.status, self.progress, self.errors)
        self.result: RunResult | None = None
        self.mode.observe(lambda c: self._show_mode(), names="value")
        self.model.observe(lambda c: self._default_engine(), names="value")
        self.slice.observe(lambda c: guarded(self.errors)(self._draw)(), names="value")
        self.button.on_click(lambda _: guarded(self.errors)(self.run)())
        super().__init__([widgets.HTML("<h3>Fit or learn</h3>"),
                          widgets.HBox([self.data, self.folder, self.model]), self.mode,
                          self.fit_box, self.learn_box,
                          widgets.HBox([self.button, self.progress, self.status]),
                          self.runtime, self.slice, self.maps_image, self.errors])
        self.add_class("ml-fit-or-learn")
        self._show_mode()

        self._prepared = None
        if prewarm:
            self._prepared = threading.Thread(target=self._prepare, daemon=True,
                                              name="microlearn-prepare")
            self._prepared.start()

    def _default_engine(self):
        """A family with its own fitting method (SANDI: posterior) selects that engine."""
        from ..models.registry import family_of

        record = family_of(self.model.value)
        if record is not None and record.method in self.engine.options:
            self.engine.value = record.method

    def _prepare(self):
        """Pay the first fit's one-off costs ahead of the first click (best effort)."""
        try:
            from matplotlib.figure import Figure

            from ..fitting.compiled.warm import warm_up

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
                    "features": self.features.value, "n_samples": int(self.n_samples.value)}
        self.task.start(lambda task: self._work(task, settings), 3, wait=wait)

    def _work(self, task, s):
        from ..fitting import fit
        from ..learning import train
        from ..models.spec import model_reference

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
            res = fit(model, ds.acq, data, method=s["engine"], mask=ds.mask)
            maps = res.maps()
            seconds, train_s = time.perf_counter() - t0, 0.0
            setup = res.setup_seconds + max(seconds - res.seconds, 0.0)
        else:
            task.stage(f"training {s['estimator']} on {s['n_samples']} simulated voxels", 1)
            est = train(model, ds.acq, estimator=s["estimator"],
                        optimizer=s["optimizer"], features=s["features"],
                        n_samples=s["n_samples"],
                        n_fibres=None)  # the family mixture: free water (CSF) included
            train_s = time.perf_counter() - t0
            task.stage(f"predicting {n_vox} voxels", 2)
            t1 = time.perf_counter()
            maps = est.predict_maps(data, ds.mask, acq=ds.acq)
            seconds = time.perf_counter() - t1
            setup = None
        result = RunResult(model=model_reference(model), maps=maps, mask=ds.mask, truth=truth,
                           n_voxels=n_vox, seconds=seconds, train_seconds=train_s)
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
        fig = plot_maps_slice(result.maps, compared_maps(resolve_model(result.model)), result.mask,
                              int(self.slice.value), truth=result.truth)
        self.maps_image.value = figure_png(fig)
