"""ModelComposer: build a model, move its parameters, watch the signal and the glyph."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import numpy as np

from .common import ErrorBox, figure_png, guarded, image_widget, parameter_slider, slider_si


def compartment_classes() -> dict:
    """Every compartment the package exports, by display name (``"watson stick"``): a new
    compartment module appears here with no change to the panel."""
    from .. import compartments

    out = {}
    for name in compartments.__all__:
        cls = getattr(compartments, name)
        if isinstance(cls, type) and issubclass(cls, compartments.Compartment) \
                and cls is not compartments.Compartment:
            out[cls.name.replace("_", " ")] = cls
    return out


#: Compartments offered for composing a custom model (display names).
COMPARTMENT_CHOICES = tuple(compartment_classes())


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
    from ..models import compose
    from ..models.registry import family

    if kind != "custom":
        return family(kind).build(n_fibres)
    parts = compartment_classes()
    if not compartments:
        raise ValueError("choose at least one compartment to compose a model.")
    return compose([parts[c]() for c in compartments])


#: Legend of the glyph image (what its shapes, sizes and colours mean).
GLYPH_KEY = (
    '<div class="ml-glyph-key" style="font-size:85%;line-height:1.35;max-width:300px">'
    "Glyph: one shape per fibre population, long axis along the fibre, wider with "
    "dispersion (ODI) or axon diameter, "
    "larger with its signal fraction; colour = direction (red x, green y, blue z). "
    "Grey sphere: the isotropic compartment (free water).</div>")


class ModelComposer(widgets.VBox):
    """Compose a model (built-in or from compartments), 0–3 fibres, sliders, live plots.

    Parameters
    ----------
    model : str
        Initial built-in model (or ``"custom"``).
    n_fibres : int
    glyphs : bool
        Draw the FURY superquadric glyph (needs an offscreen WebGPU/Vulkan device).
    data_root : str or Path, optional
        Where "save" writes the model spec (``models/NAME.json``), for the fit-or-learn and
        compare panels and ``microlearn fit --model``; default ``$MICROLEARN_DATA``.
    """

    def __init__(self, model: str = "noddi", n_fibres: int = 1, *, glyphs: bool = True,
                 data_root=None):
        from ..models.registry import family_names
        from .fit_or_learn import data_root_default

        self.errors = ErrorBox()
        self.data_root = Path(data_root) if data_root is not None else data_root_default()
        self.kind = widgets.Dropdown(options=tuple(family_names()) + ("custom",), value=model,
                                     description="model")
        self.n_fibres = widgets.IntSlider(value=n_fibres, min=0, max=3, description="fibres",
                                          continuous_update=False)
        self.parts = widgets.SelectMultiple(options=COMPARTMENT_CHOICES,
                                            value=("stick", "zeppelin", "ball"),
                                            description="compartments", rows=4)
        from ..schemes import SCHEMES

        self.scheme = widgets.Dropdown(options=tuple(SCHEMES), value="hcp",
                                       description="scheme")
        self.spec_name = widgets.Text(value="my_model", description="save as",
                                      layout=widgets.Layout(width="260px"))
        self.save_button = widgets.Button(description="save spec")
        self.replace = widgets.Checkbox(value=False, description="replace", indent=False,
                                        layout=widgets.Layout(width="90px"))
        self.saved = widgets.HTML()
        self.on_save: list = []  # callbacks(path) after a spec is saved
        self.save_button.on_click(lambda _: guarded(self.errors)(self.save)())
        self.sliders_box = widgets.VBox()
        self.signal_b = image_widget("48%")
        self.signal_angle = image_widget("48%")
        self.glyph = image_widget("300px")
        self.show_glyphs = glyphs
        self.model = None
        self.sliders: dict = {}
        header = widgets.HBox([self.kind, self.n_fibres, self.scheme])
        plots = widgets.HBox([self.signal_b, self.signal_angle])
        saving = widgets.HBox([self.spec_name, self.replace, self.save_button, self.saved])
        glyph = widgets.VBox([self.glyph, widgets.HTML(GLYPH_KEY)] if glyphs else [])
        super().__init__([widgets.HTML("<h3>Model composer</h3>"), header, self.parts,
                          widgets.HBox([self.sliders_box, glyph]), plots, saving,
                          self.errors])
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
        from ..models.registry import default_scheme, has_fibres

        self.n_fibres.disabled = not has_fibres(kind)
        self.model = build_model(kind, self.n_fibres.value, self.parts.value)
        self._building = True
        try:
            self.scheme.value = default_scheme(self.model)
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

    def save(self) -> Path:
        """Write the current model's spec to ``<data_root>/models/<name>.json``; its path.

        An existing spec of that name is replaced only when "replace" is ticked (then
        unticked again); the file is written only inside the data root.
        """
        import os

        from ..data.writers import inside
        from ..names import check_name
        from .common import MODELS_DIR

        name = check_name(self.spec_name.value.strip(), field="save as", dash=True)
        path = self.data_root / MODELS_DIR / f"{name}.json"
        if os.path.lexists(path) and not self.replace.value:
            raise ValueError(f"{MODELS_DIR}/{name}.json already exists: choose another name, "
                             "or tick 'replace' to overwrite it.")
        path.parent.mkdir(parents=True, exist_ok=True)
        inside(path, self.data_root)
        model = self.model
        if "compose" in model.recipe:  # a composed model is named after its file
            from dataclasses import replace

            model = replace(model, name=name, recipe={**model.recipe, "name": name})
        from ..data.writers import write_json

        write_json(path, model.to_spec())
        self.replace.value = False
        self.saved.value = (f"saved <code>{MODELS_DIR}/{name}.json</code>: choose it in the "
                            "fit-or-learn panel, or <code>microlearn fit --model "
                            f"{path}</code>")
        for callback in self.on_save:
            callback(path)
        return path

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
