"""Panels: widget values drive the core; outputs change; errors are shown, not lost."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from microlearn.panels import ComparePanel, FitOrLearn, ModelComposer, SignalSimulator, workshop
from microlearn.panels.common import resolve_data_path


def test_model_composer_sliders_drive_the_signal():
    c = ModelComposer(glyphs=False)
    assert c.model.name == "noddi" and not c.errors.value
    assert c.sliders["odi"].description.startswith("odi") and c.sliders["odi"].tooltip
    before = c.signal_angle.value
    c.sliders["odi"].value = 0.9
    assert c.signal_angle.value != before
    assert np.isclose(c.values()["odi"], 0.9)
    c.n_fibres.value = 2
    assert c.model.name == "noddi2" and "ffib_2" in c.sliders
    c.kind.value = "activeax"
    assert c.scheme.value == "activeax"
    d = c.sliders["diameter_1"]
    assert "µm" in d.description and np.isclose(c.values()["diameter_1"], d.value * 1e-6)
    c.kind.value = "custom"
    c.parts.value = ("stick", "ball")
    assert c.model.parameters.names == ["stick_mu", "stick_d_par", "ball_d_iso", "f_stick",
                                        "f_ball"]
    c.kind.value = "ivim"
    assert c.scheme.value == "ivim" and not c.errors.value


def test_composer_errors_are_shown():
    c = ModelComposer(glyphs=False)
    c.kind.value = "custom"
    c.parts.value = ()
    assert "at least one compartment" in c.errors.value


def test_glyph_png_is_not_blank():
    c = ModelComposer(n_fibres=2, glyphs=True)
    assert not c.errors.value, c.errors.value
    img = np.asarray(Image.open(io.BytesIO(c.glyph.value)).convert("RGB")).astype(int)
    assert img.shape[0] >= 200
    non_white = np.any(img < 240, axis=-1).mean()
    assert 0.02 < non_white < 0.9  # something drawn, not everything
    colours = img[np.any(img < 240, axis=-1)]
    assert colours[:, 0].max() - colours[:, 0].min() > 50  # two coloured fibres


def test_signal_simulator_noise_follows_snr():
    s = SignalSimulator()
    b0 = s.noisy[:, :18] - s.clean[:, :18]
    s.noise.value = "gaussian"
    s.snr.value = 10
    b0_low = s.noisy[:, :18] - s.clean[:, :18]
    assert abs(b0_low.std() - 0.1) < 0.01 and b0.std() < b0_low.std()
    linked = SignalSimulator(ModelComposer(glyphs=False))
    assert np.allclose(linked.clean[0], linked.clean[1])  # the composer's one voxel


def test_fit_or_learn_on_the_phantom(tmp_path):
    p = FitOrLearn(data_root=tmp_path, phantom_shape=(8, 8, 2))
    p._prepared.join(120)  # the background preparation built the phantom before any click
    assert ("noddi", (8, 8, 2), "brain") in p.source._cache
    p.run(wait=True)
    assert not p.errors.value, p.errors.value
    assert p.status.value == "done" and "vox/s" in p.runtime.value
    assert "set-up" in p.runtime.value  # the fit shows set-up apart from the steady rate
    assert np.isfinite(p.maps["odi"][p.mask]).all() and len(p.maps_image.value) > 1000
    # the fit's Cramér–Rao std and its coverage on the phantom, in the std tab
    assert p.std_note.value.startswith("Cramér–Rao std of the fit")
    assert len(p.coverage_image.value) > 1000
    p.mode.value = "learn"
    p.estimator.value = "boosted-trees"
    p.n_samples.value = 2000
    p.run(wait=True)
    assert not p.errors.value and "training" in p.runtime.value
    p.data.value = "folder..."
    p.folder.value = "/etc"
    p.run(wait=True)
    assert "only folders inside the data folder" in p.errors.value


def test_compare_panel(tmp_path):
    p = ComparePanel(data_root=tmp_path, phantom_shape=(8, 8, 2))
    p.methods.value = ("mix", "polynomial")
    p.n_samples.value = 2000
    p.run(wait=True)
    assert not p.errors.value, p.errors.value
    assert "rmse_odi" in p.table.value and len(p.scatter.value) > 1000
    assert [r["method"] for r in p.result.rows] == ["mix", "polynomial"]


def test_workshop_tabs():
    tabs = workshop(glyphs=False)
    assert [tabs.get_title(i) for i in range(4)] == ["1 compose", "2 simulate",
                                                     "3 fit or learn", "4 compare"]


def test_data_path_restriction(tmp_path):
    (tmp_path / "sub").mkdir()
    assert resolve_data_path("sub", tmp_path) == (tmp_path / "sub").resolve()
    with pytest.raises(ValueError, match="only folders inside"):
        resolve_data_path("../", tmp_path)
    with pytest.raises(FileNotFoundError):
        resolve_data_path("missing", tmp_path)


def test_fit_or_learn_swaps_one_result_and_draws_the_run_model(tmp_path):
    import dataclasses

    from microlearn.panels.fit_or_learn import RunResult

    p = FitOrLearn(data_root=tmp_path, phantom_shape=(8, 8, 2))
    p.run(wait=True)
    first = p.result
    assert isinstance(first, RunResult) and first.model == "noddi"
    assert first.maps["odi"].shape == first.mask.shape and first.truth is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.model = "ivim"
    p.model.value = "ivim"  # changed after the run: the redraw still shows the run's maps
    p.maps_image.value = b""
    p._draw()
    assert not p.errors.value and len(p.maps_image.value) > 1000
    p.run(wait=True)  # the new run replaces the whole result at once
    assert p.result is not first and p.result.model == "ivim" and "d_star" in p.maps


def test_a_model_saved_in_the_composer_is_fitted_and_learned_in_the_workshop(tmp_path):
    """Compose stick + ball, save its spec, fit and learn it on the phantom it describes."""
    from microlearn.panels.workshop import workshop

    tabs = workshop(data_root=tmp_path, phantom_shape=(8, 8, 2), glyphs=False)
    composer, _, panel, _ = tabs.children
    composer.kind.value = "custom"
    composer.parts.value = ("stick", "ball")
    composer.spec_name.value = "stick_ball"
    path = composer.save()
    assert path == tmp_path / "models" / "stick_ball.json"
    assert "models/stick_ball.json" in panel.model.options
    panel.model.value = "models/stick_ball.json"
    panel.run(wait=True)
    assert not panel.errors.value, panel.errors.value
    truth, maps, mask = panel.result.truth, panel.maps, panel.mask
    assert np.nanmedian(np.abs(maps["f_stick"] - truth["f_stick"])[mask]) < 0.1
    panel.mode.value = "learn"
    panel.estimator.value = "polynomial"
    panel.n_samples.value = 3000
    panel.run(wait=True)
    assert not panel.errors.value, panel.errors.value
    assert np.isfinite(panel.maps["f_stick"][panel.mask]).mean() > 0.9
