"""Empirical-Bayes training priors: fits of the data, smoothed and rotated."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn.learning.empirical import fit_sample, sample_empirical
from microlearn.models import noddi
from microlearn.simulate import sample_parameters, simulate_dataset


def test_samples_keep_crossing_angles_and_bounds_and_turn_orientations():
    model = noddi(2)
    fitted = sample_parameters(model, 50, random_state=0)
    # every fitted voxel crosses at 60°: the samples must too, in random orientations
    m = model.maps(fitted)
    a = m["mu_1"]
    perp = np.cross(a, [0.3, 0.5, 0.8])
    perp /= np.linalg.norm(perp, axis=1, keepdims=True)
    m["mu_2"] = 0.5 * a + np.sqrt(0.75) * perp
    fitted = model.parameters.pack(m)
    out = sample_empirical(model, fitted, 4000, rng=1)
    maps = model.maps(out)
    cos = np.abs(np.sum(maps["mu_1"] * maps["mu_2"], axis=1))
    np.testing.assert_allclose(cos, 0.5, atol=1e-6)
    assert abs(np.mean(maps["mu_1"], axis=0)).max() < 0.05  # uniform on the sphere
    lo, hi = model.parameters.bounds()
    assert np.all((out >= lo - 1e-12) & (out <= hi + 1e-12))
    for name in ("odi_1", "icvf_2", "fiso"):  # the distribution of the fits, smoothed
        assert abs(np.mean(maps[name]) - np.mean(m[name])) < 0.03
        assert 1.0 < np.std(maps[name]) / np.std(m[name]) < 1.2


def test_fit_sample_follows_the_data(hcp):
    model = noddi()
    ranges = {"odi": (0.1, 0.2), "icvf": (0.5, 0.6), "fiso": (0.0, 0.1)}
    _, _, noisy = simulate_dataset(model, hcp, 300, snr=50, random_state=0, ranges=ranges)
    fits = fit_sample("noddi", hcp, noisy * 500, n_fit=200, crossings=False, random_state=0)
    assert list(fits) == [1] and fits[1].shape == (200, model.parameters.size)
    odi = model.maps(fits[1])["odi"]
    assert 0.1 < np.median(odi) < 0.2
    with pytest.raises(ValueError, match="usable voxels"):
        fit_sample("noddi", hcp, np.zeros((50, hcp.n_measurements)))


def test_learn_cli_prior_choice(tmp_path, capsys):
    import json

    from microlearn.cli import main
    from microlearn.data.phantom import make_phantom

    code = main(["learn", "--scheme", "hcp", "--prior", "data", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and "--prior data needs --acquisition" in err
    folder = make_phantom(shape=(8, 8, 2), seed=1).save(tmp_path / "ph")
    assert main(["learn", "--acquisition", str(folder), "--estimator", "polynomial",
                 "--n-samples", "3000", "--prior-voxels", "100",
                 "--out", str(tmp_path / "eb")]) == 0
    info = json.loads((tmp_path / "eb" / "estimator.json").read_text())["info"]
    assert info["prior"]["kind"] == "empirical"
    assert 0 < sum(info["prior"]["fitted_voxels"].values()) <= 100
    assert "empirical prior" in capsys.readouterr().out


def test_empirical_training_set_keeps_a_share_of_the_model_prior(hcp):
    """A defensive mixture: single-fibre fits only, yet 10 % of the training voxels come
    from the model's default mixture (free water and crossings included)."""
    from microlearn.learning.trained import _training_set

    model = noddi()
    fits = sample_parameters(model, 200, random_state=0,
                             ranges={"odi": (0.1, 0.3), "icvf": (0.5, 0.7), "fiso": (0, 0.1)})
    ts = _training_set("noddi", hcp, 4000, {1: 1.0}, 30.0, None, None, 0, False, {1: fits},
                       0.1)
    assert len(ts) == 4000
    counts = np.bincount(ts.n_fibres, minlength=4) / 4000
    assert counts[1] == pytest.approx(0.9 + 0.1 * 0.3, abs=0.01)
    assert counts[0] == pytest.approx(0.01, abs=0.005) and counts[2] > 0.02
    odi = ts.targets[ts.n_fibres == 1, 0]
    assert np.mean(odi > 0.4) > 0.01  # the wide prior reaches beyond the fits
    only = _training_set("noddi", hcp, 1000, {1: 1.0}, 30.0, None, None, 0, False,
                         {1: fits}, 0.0)
    assert set(np.unique(only.n_fibres)) == {1}
    with pytest.raises(ValueError, match="model_share"):
        from microlearn.learning import train

        train("noddi", hcp, estimator="polynomial", n_samples=100, model_share=1.0)
