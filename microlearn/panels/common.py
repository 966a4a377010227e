"""Pieces every panel uses: sliders from Parameters, figure images, errors, background work.

Panels are thin views: they read widget values, call ``run/`` for fits and comparisons
(the core, learning and viz for the rest) and show what comes back. Voila drops exceptions
raised in widget callbacks silently, so every callback is wrapped by :func:`guarded` and
errors are shown in the panel (an HTML widget with the CSS class ``ml-error``).
"""

from __future__ import annotations

import functools
import html
import io
import threading
import traceback
from pathlib import Path

import ipywidgets as widgets

from ..units import DISPLAY_SCALE


def parameter_slider(p, value=None, **kwargs) -> widgets.FloatSlider:
    """A slider for a scalar :class:`~microlearn.parameters.Parameter`, in display units.

    The slider's range is the parameter's bounds; its tooltip is the description. Read the
    SI value with :func:`slider_si`.

    Parameters
    ----------
    p : Parameter
        A scalar parameter (its ``display_unit`` sets the slider's unit).
    value : float, optional
        Start value in SI units (default: the middle of the prior range).
    kwargs
        Passed to :class:`ipywidgets.FloatSlider`.

    Returns
    -------
    ipywidgets.FloatSlider
    """
    scale = DISPLAY_SCALE.get(p.display_unit, 1.0)
    lo, hi = (b / scale for b in p.bounds)
    if value is None:
        value = sum(p.prior_bounds) / 2
    unit = f" ({p.display_unit})" if p.display_unit else ""
    slider = widgets.FloatSlider(value=value / scale, min=lo, max=hi, step=(hi - lo) / 200,
                                 description=f"{p.name}{unit}", tooltip=p.description,
                                 continuous_update=False, readout_format=".3g",
                                 style={"description_width": "120px"},
                                 layout=widgets.Layout(width="380px"), **kwargs)
    slider.si_scale = scale
    return slider


def slider_si(slider) -> float:
    """The SI value of a slider made by :func:`parameter_slider`.

    Parameters
    ----------
    slider : ipywidgets.FloatSlider

    Returns
    -------
    float
        The slider's value converted from its display unit to SI.
    """
    return float(slider.value) * getattr(slider, "si_scale", 1.0)


def figure_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (the report's figure code, shown as an image).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int
        Resolution in dots per inch.

    Returns
    -------
    bytes
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def image_widget(width="100%") -> widgets.Image:
    """An empty PNG image widget (at most 720 px wide) for figures.

    Parameters
    ----------
    width : str
        CSS width.

    Returns
    -------
    ipywidgets.Image
    """
    return widgets.Image(format="png", layout=widgets.Layout(width=width, max_width="720px"))


class ErrorBox(widgets.HTML):
    """Shows the last error of a panel (empty when all is well)."""

    def __init__(self, **kwargs):
        super().__init__(value="", **kwargs)
        self.add_class("ml-error")

    def show(self, err: BaseException) -> None:
        text = f"{type(err).__name__}: {err}"
        self.value = f"<pre style='color:#b00020;white-space:pre-wrap'>{html.escape(text)}</pre>"

    def clear(self) -> None:
        self.value = ""


def guarded(error_box: ErrorBox):
    """Decorator: run a callback, show any exception in ``error_box`` instead of losing it."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                error_box.clear()
                return fn(*args, **kwargs)
            except Exception as err:  # shown to the user, and logged for the server
                traceback.print_exc()
                error_box.show(err)
        return inner

    return wrap


class BackgroundTask:
    """Runs long work in a thread so the page stays responsive; reports progress.

    Parameters
    ----------
    status : ipywidgets.HTML
        Shows the current stage.
    progress : ipywidgets.IntProgress
    error_box : ErrorBox
    """

    def __init__(self, status, progress, error_box):
        self.status, self.progress, self.error_box = status, progress, error_box
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stage(self, text: str, step: int | None = None) -> None:
        self.status.value = html.escape(text)
        if step is not None:
            self.progress.value = step

    def start(self, fn, n_steps: int, *, wait: bool = False) -> None:
        """Run ``fn(task)`` in a thread (``wait=True``: in the caller, for tests)."""
        if self.running:
            self.stage("still running: wait for the current task to finish")
            return
        self.progress.max, self.progress.value = n_steps, 0
        self.error_box.clear()

        def body():
            try:
                fn(self)
                self.progress.value = self.progress.max
            except Exception as err:
                traceback.print_exc()
                self.error_box.show(err)
                self.stage("failed")

        if wait:
            body()
        else:
            self.thread = threading.Thread(target=body, daemon=True)
            self.thread.start()


def _under_root(text: str, data_root) -> tuple[Path, Path, bool]:
    """``(root, path, inside)``: the data root, ``text`` resolved against it (absolute
    paths as they are) and whether the path lies inside the root."""
    root = Path(data_root).resolve()
    path = (root / text).resolve()
    return root, path, root in path.parents


def resolve_data_path(text: str, data_root) -> Path:
    """A user-typed folder, allowed only inside ``data_root`` (dashboards serve files)."""
    root, path, inside = _under_root(text, data_root)
    if root != path and not inside:
        raise ValueError(f"{text}: only folders inside the data folder {root} can be opened "
                         "here; copy the data there or start the dashboard with another "
                         "MICROLEARN_DATA folder.")
    if not path.is_dir():
        raise FileNotFoundError(f"{text}: no such folder inside {root}.")
    return path


#: Folder inside the data root where the ModelComposer saves model specs (``NAME.json``).
MODELS_DIR = "models"


def model_choices(data_root) -> tuple[str, ...]:
    """Model dropdown options: the registered families, then the saved specs
    (``models/NAME.json`` inside ``data_root``, as ``"models/NAME.json"``)."""
    from ..models.registry import family_names

    folder = Path(data_root) / MODELS_DIR if data_root is not None else None
    specs = sorted(f"{MODELS_DIR}/{p.name}" for p in folder.glob("*.json")) \
        if folder is not None and folder.is_dir() else []
    return tuple(family_names()) + tuple(specs)


def model_from_choice(choice: str, data_root, n_fibres=None):
    """The model a dropdown choice stands for: a family or a saved spec in the data root."""
    from ..models.spec import resolve_model

    if choice.endswith(".json"):
        return resolve_model(resolve_spec_path(choice, data_root), n_fibres)
    return resolve_model(choice, n_fibres)


def resolve_spec_path(text: str, data_root) -> Path:
    """A spec file inside ``data_root`` (dashboards serve files only from there)."""
    root, path, inside = _under_root(text, data_root)
    if not inside:
        raise ValueError(f"{text}: model specs are read only from {root}/{MODELS_DIR}.")
    if not path.is_file():
        raise FileNotFoundError(f"{text}: no such model spec in {root}.")
    return path


def refresh_models(dropdown, data_root) -> None:
    """Re-read the model choices (families and saved specs) into a dropdown, keeping its
    value when still offered."""
    value = dropdown.value
    options = model_choices(data_root)
    dropdown.options = options
    dropdown.value = value if value in options else options[0]
