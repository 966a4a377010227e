"""SignalSimulator: simulate noisy signals for a scheme, SNR and number of voxels."""

from __future__ import annotations

import ipywidgets as widgets

from .common import ErrorBox, figure_png, guarded, image_widget, resolve_data_path


class SignalSimulator(widgets.VBox):
    """Noisy vs noiseless signals and the noise distribution for a model and a scheme.

    Parameters
    ----------
    composer : ModelComposer, optional
        Take the model and its slider values from a composer (else NODDI, prior draws).
    data_root : path, optional
        Folder inside which a loaded acquisition (HCP layout) may be chosen.
    """

    def __init__(self, composer=None, *, data_root=None):
        self.composer = composer
        self.data_root = data_root
        self.errors = ErrorBox()
        from ..schemes import SCHEMES
        from .common import model_choices

        self.scheme = widgets.Dropdown(options=tuple(SCHEMES) + ("folder...",),
                                       value="hcp", description="scheme")
        self.folder = widgets.Text(placeholder="HCP folder inside the data folder",
                                   description="folder")
        self.model = widgets.Dropdown(options=model_choices(data_root), value="noddi",
                                      description="model")
        self.snr = widgets.FloatSlider(value=30, min=5, max=100, step=1, description="SNR",
                                       continuous_update=False)
        self.n_voxels = widgets.IntSlider(value=500, min=10, max=5000, step=10,
                                          description="voxels", continuous_update=False)
        self.noise = widgets.ToggleButtons(options=("rician", "gaussian"), value="rician",
                                           description="noise")
        self.button = widgets.Button(description="simulate", button_style="primary")
        self.summary = widgets.HTML()
        self.signal_plot = image_widget("48%")
        self.noise_plot = image_widget("48%")
        self.simulate = guarded(self.errors)(self._simulate)
        self.button.on_click(lambda _: self.simulate())
        for w in (self.scheme, self.model, self.snr, self.n_voxels, self.noise):
            w.observe(lambda change: self.simulate(), names="value")
        controls = [self.model] if composer is None else []
        super().__init__([widgets.HTML("<h3>Signal simulator</h3>"),
                          widgets.HBox(controls + [self.scheme, self.folder]),
                          widgets.HBox([self.snr, self.n_voxels]),
                          widgets.HBox([self.noise, self.button]), self.summary,
                          widgets.HBox([self.signal_plot, self.noise_plot]), self.errors])
        self.add_class("ml-signal-simulator")
        self.simulate()

    def acquisition(self):
        from ..acquisition import Acquisition
        from ..data.readers import acquisition_from_folder

        if self.scheme.value != "folder...":
            return Acquisition.scheme(self.scheme.value)
        if self.data_root is None:
            raise ValueError("loading an acquisition needs a data folder (data_root).")
        folder = resolve_data_path(self.folder.value, self.data_root)
        return acquisition_from_folder(folder)

    def _simulate(self):
        from ..simulate import add_noise, sample_parameters, simulate
        from ..viz.simulation import plot_noise_histogram, plot_noisy_vs_clean

        acq = self.acquisition()
        n = int(self.n_voxels.value)
        if self.composer is not None:
            model = self.composer.model
            params = self.composer.params()[None].repeat(n, 0)
        else:
            from .common import model_from_choice

            model = model_from_choice(self.model.value, self.data_root)
            params = sample_parameters(model, n, random_state=0)
        clean = simulate(model, acq, params)
        noisy = add_noise(clean, float(self.snr.value), kind=self.noise.value, random_state=1)
        self.clean, self.noisy = clean, noisy
        self.signal_plot.value = figure_png(plot_noisy_vs_clean(acq, clean, noisy))
        self.noise_plot.value = figure_png(plot_noise_histogram(acq, clean, noisy))
        self.summary.value = (f"{n} voxels of <b>{model.name}</b> on <b>{acq.name}</b> "
                              f"({acq.n_measurements} measurements), SNR {self.snr.value:g} "
                              f"({self.noise.value} noise)")
