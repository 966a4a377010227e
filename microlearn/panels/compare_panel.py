"""Compare: fitting engines and learned estimators on the same data, as table and plots."""

from __future__ import annotations

import ipywidgets as widgets

from .common import BackgroundTask, ErrorBox, figure_png, guarded, image_widget
from .fit_or_learn import PHANTOM_SHAPE, DataSource, data_widgets


class ComparePanel(widgets.VBox):
    """Run :func:`microlearn.run.compare.compare` for chosen methods; show table and figures.

    Parameters
    ----------
    data_root : path, optional
        Folder the panel may read HCP-layout datasets from.
    phantom_shape : tuple of 3 int
        Grid of the built-in brain phantom.
    """

    def __init__(self, *, data_root=None, phantom_shape=PHANTOM_SHAPE):
        from ..learning import ESTIMATOR_NAMES
        from ..run.methods import fitting_methods

        self.source = DataSource(data_root, phantom_shape)
        self.errors = ErrorBox()
        self.data, self.folder, self.model = data_widgets(self.source)
        self.methods = widgets.SelectMultiple(
            options=tuple(fitting_methods()) + ESTIMATOR_NAMES,
            value=("mix", "dictionary", "polynomial"), description="methods", rows=8)
        self.n_samples = widgets.IntSlider(value=20_000, min=1000, max=200_000, step=1000,
                                           description="training", continuous_update=False)
        self.holdout = widgets.IntSlider(
            value=0, min=0, max=10, description="hold-out K", continuous_update=False,
            tooltip="0: compare with the truth (or the first method); K >= 2: fit on K-1 folds "
                    "of the measurements and rank the fitting methods by held-out prediction")
        self.button = widgets.Button(description="compare", button_style="primary")
        self.progress = widgets.IntProgress(value=0, min=0, max=2, description="progress")
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.scatter = image_widget()
        self.runtime = image_widget("60%")
        self.task = BackgroundTask(self.status, self.progress, self.errors)
        self.result = None
        self.button.on_click(lambda _: guarded(self.errors)(self.run)())
        super().__init__([widgets.HTML("<h3>Compare fitting and learning</h3>"),
                          widgets.HBox([self.data, self.folder, self.model]),
                          widgets.HBox([self.methods, widgets.VBox([self.n_samples,
                                                                    self.holdout])]),
                          widgets.HBox([self.button, self.progress, self.status]),
                          self.table, self.runtime, self.scatter, self.errors])
        self.add_class("ml-compare")

    def run(self, wait: bool = False):
        """Start the comparison in the background (``wait=True``: here, for tests)."""
        s = {"data": self.data.value, "folder": self.folder.value, "model": self.model.value,
             "methods": list(self.methods.value), "n_samples": int(self.n_samples.value),
             "holdout": int(self.holdout.value)}
        if not s["methods"]:
            raise ValueError("choose at least one method.")
        self.task.start(lambda task: self._work(task, s), 2, wait=wait)

    def _work(self, task, s):
        from ..models.spec import model_reference
        from ..run.compare import compare
        from .common import model_from_choice

        task.stage("loading data", 0)
        model = model_from_choice(s["model"], self.source.data_root)
        ds, truth = self.source.load(s["data"], s["folder"], model_reference(model))
        task.stage(f"running {', '.join(s['methods'])}", 1)
        if s["holdout"]:
            return self._holdout(task, ds, model, s)
        n_fibres = model.n_fibres
        result = compare(ds, model, s["methods"], truth=truth,
                         learn_options={"n_samples": s["n_samples"], "n_fibres": n_fibres})
        figs = result.make_figures()
        self.result = result
        self.table.value = result._repr_html_()
        self.runtime.value = figure_png(figs["runtime"])
        self.scatter.value = figure_png(figs["scatter"])
        task.stage("done", 2)

    def _holdout(self, task, ds, model, s):
        """Rank the chosen fitting methods by held-out prediction (no truth needed)."""
        from ..run.holdout import holdout_compare
        from ..run.methods import fitting_methods

        methods = [m for m in s["methods"] if m in fitting_methods()]
        if not methods:
            raise ValueError("hold-out K: choose at least one fitting method (mix, ...).")
        if s["holdout"] < 2:
            raise ValueError("hold-out K: 0 (off) or at least 2 folds.")
        result = holdout_compare(ds, [model], methods, k=s["holdout"])
        figs = result.make_figures()
        self.result = result
        self.table.value = result._repr_html_()
        self.runtime.value = figure_png(figs["prediction_error"])
        self.scatter.value = figure_png(figs["npe_maps"]) if "npe_maps" in figs else ""
        task.stage("done", 2)
