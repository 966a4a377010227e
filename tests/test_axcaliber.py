"""The axcaliber family: registry record, ex vivo preset, and what plan says it resolves."""

import numpy as np

from microlearn import Acquisition
from microlearn.models.registry import family
from microlearn.models.spec import load_model
from microlearn.run.plan import _resolvable_from, crb_std
from microlearn.simulate import sample_parameters


def test_record_builds_exvivo_preset_and_round_trips(tmp_path):
    model = family("axcaliber").build(tissue="exvivo")
    assert model.recipe["settings"] == {"d_par": 0.6e-9, "d_iso": 2.0e-9}
    assert {"diameter_mean", "diameter_shape", "diameter_volume", "icvf", "fiso"} <= set(
        model.map_names)
    path = tmp_path / "m.json"
    path.write_text(model.to_json())
    again = load_model(str(path))
    assert again.parameter_names == model.parameter_names
    p = sample_parameters(model, 5, random_state=0)
    acq = Acquisition.scheme("activeax")
    assert np.allclose(again.signal(acq, p), model.signal(acq, p))
    maps = model.maps(p)
    k = maps["diameter_shape"]
    assert np.allclose(maps["diameter_volume"], maps["diameter_mean"] * (k + 2) / k)
    two = family("axcaliber").build(2)
    assert "diameter_mean_2" in two.parameter_names and "diameter_mean" in two.map_names


def test_plan_bounds_say_which_diameters_the_protocol_resolves():
    """Ex vivo on the 300 mT/m ActiveAx protocol at SNR 50: the mean diameter's Cramér–Rao
    bound is below half the value only for the larger diameters, and the shape of the
    distribution is not identified (its bound exceeds its prior spread)."""
    model = family("axcaliber").build(tissue="exvivo")
    acq = Acquisition.scheme("activeax")
    p = sample_parameters(model, 150, random_state=1)
    maps = model.maps(p)
    std = crb_std(model, acq, p, 1 / 50)
    start = _resolvable_from(maps["diameter_mean"], std["diameter_mean"])
    assert start is not None and 1.5e-6 < start < 7e-6
    rel = std["diameter_mean"] / maps["diameter_mean"]
    small = maps["diameter_mean"] < 1.5e-6
    assert np.median(rel[small]) > 0.5 > np.median(rel[maps["diameter_mean"] > 6e-6])
    assert np.median(std["diameter_shape"]) > np.std(maps["diameter_shape"])
