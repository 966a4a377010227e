"""ModelComposer: build a model, move its parameters, watch the signal and the glyph."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .common import ErrorBox, figure_png, guarded, image_widget, parameter_slider, slider_si

#: Compartments offered for composing a custom model.
COMPARTMENT_CHOICES = ("stick", "zeppelin", "ball", "dot", "cylinder", "watson stick",
                       "watson zeppelin")
BUILT_IN = ("noddi", "activeax", "zcd", "ivim")
DEFAULT_SCHEME = {"noddi": "hcp", "activeax": "activeax", "zcd": "activeax", "ivim": "ivim",
                  "custom": "hcp"}


def build_model(kind: str, n_fibres: int, compartments=()):
    """The model a composer selection stands for (built-in name or composed parts).

    Parameters
    ----------
    kind : str
        A built-in model name or ``"custom"``.
    n_fibres : int
        Fibre populations of a built-in model (0–3).
    compartments : sequence of str
        Compartment names of a custom model (``"stick"``, ``"zeppelin"``, ``"ball"``...).

    Returns
    -------
    MultiCompartmentModel
    """
    from ..compartments import (
        Ball,
        CylinderGPD,
        Dot,
        Stick,
        WatsonStick,
        WatsonZeppelin,
        Zeppelin,
    )
    from ..models import compose, get_model

    if kind != "custom":
        return get_model(kind, n_fibres)
    parts = {"stick": Stick, "zeppelin": Zeppelin, "ball": Ball, "dot": Dot,
             "cylinder": CylinderGPD, "watson stick": WatsonStick,
             "watson zeppelin": WatsonZeppelin}
    if not compartments:
        raise ValueError("choose at least one compartment to compose a model.")
    return compose([parts[c]() for c in compartments])


class ModelComposer(widgets.VBox):
    """Compose a model (built-in or from compartments), 0–3 fibres, sliders, live plots.

    Parameters
    ----------
    model : str
        Initial built-in model (or ``"custom"``).
    n_fibres : int
    glyphs : bool
        Draw the FURY superquadric glyph (needs an offscreen WebGPU/Vulkan device).
    """

    def __init__(self, model: str = "noddi", n_fibres: int = 1, *, glyphs: bool = True):
        self.errors = ErrorBox()
        self.kind = widgets.Dropdown(options=BUILT_IN + ("custom",), value=model,
                                     description="model")
        self.n_fibres = widgets.IntSlider(value=n_fibres, min=0, max=3, description="fibres",
                                          continuous_update=False)
        self.parts = widgets.SelectMultiple(options=COMPARTMENT_CHOICES,
                                            value=("stick", "zeppelin", "ball"),
                                            description="compartments", rows=4)
        self.scheme = widgets.Dropdown(options=("hcp", "activeax", "ivim"), value="hcp",
                                       description="scheme")
        self.sliders_box = widgets.VBox()
        self.signal_b = image_widget("48%")
        self.signal_angle = image_widget("48%")
        self.glyph = image_widget("300px")
        self.show_glyphs = glyphs
        self.model = None
        self.sliders: dict = {}
        header = widgets.HBox([self.kind, self.n_fibres, self.scheme])
        plots = widgets.HBox([self.signal_b, self.signal_angle])
        super().__init__([widgets.HTML("<h3>Model composer</h3>"), header, self.parts,
                          widgets.HBox([self.sliders_box, self.glyph]), plots, self.errors])
        self.add_class("ml-model-composer")
        self._rebuild = guarded(self.errors)(self._rebuild_impl)
        self.refresh = guarded(self.errors)(self._refresh_impl)
        for w in (self.kind, self.n_fibres, self.parts):
            w.observe(lambda change: self._rebuild(), names="value")
        self.scheme.observe(lambda change: self.refresh(), names="value")
        self._rebuild()

    # ------------------------------------------------------------------ state
    def _rebuild_impl(self):
        kind = self.kind.value
        self.parts.layout.display = "" if kind == "custom" else "none"
        self.n_fibres.disabled = kind in ("ivim", "custom")
        self.model = build_model(kind, self.n_fibres.value, self.parts.value)
        self._building = True
        try:
            self.scheme.value = DEFAULT_SCHEME[kind]
        finally:
            self._building = False
        self.sliders = {}
        rows = []
        for k, p in enumerate(self.model.parameters):
            if p.kind == "orientation":
                theta = widgets.FloatSlider(value=90.0 if k % 2 == 0 else 60.0, min=0, max=180,
                                            description=f"{p.name} θ (°)",
                                            continuous_update=False,
                                            style={"description_width": "120px"})
                phi = widgets.FloatSlider(value=(60.0 * k) % 180, min=-180, max=180,
                                          description=f"{p.name} φ (°)",
                                          continuous_update=False,
                                          style={"description_width": "120px"})
                self.sliders[p.name] = (theta, phi)
                rows += [theta, phi]
            else:
                s = parameter_slider(p)
                self.sliders[p.name] = s
                rows.append(s)
        for w in rows:
            w.observe(lambda change: self.refresh(), names="value")
        self.sliders_box.children = rows
        self._refresh_impl()

    def values(self) -> dict:
        """Current parameter values in SI (orientations as (θ, φ) in radians)."""
        out = {}
        for name, s in self.sliders.items():
            if isinstance(s, tuple):
                out[name] = np.deg2rad([s[0].value, s[1].value])
            else:
                out[name] = slider_si(s)
        return out

    def params(self) -> np.ndarray:
        """The packed parameter vector of the current sliders."""
        return self.model.parameters.pack(self.values())

    def acquisition(self):
        from ..acquisition import Acquisition

        return Acquisition.scheme(self.scheme.value)

    def _refresh_impl(self):
        from ..viz.signals import plot_signal_vs_angle, plot_signal_vs_b

        if getattr(self, "_building", False):
            return
        acq, params = self.acquisition(), self.params()
        self.signal_b.value = figure_png(plot_signal_vs_b(self.model, acq, params))
        self.signal_angle.value = figure_png(plot_signal_vs_angle(self.model, acq, params))
        if self.show_glyphs:
            from ..viz.glyphs import glyph_png

            self.glyph.value = glyph_png(self.model, params, size=300)
