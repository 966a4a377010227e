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
