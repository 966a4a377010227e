"""Training sets and features: mixtures, targets, rotation invariance."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn.learning import FeatureSpec, make_training_set
from microlearn.learning.features import max_sh_order, rotation_invariant_features
from microlearn.models import noddi
from microlearn.parameters import cartesian_to_angles
from microlearn.simulate import simulate


def test_training_set_mixture_and_targets(hcp):
    ts = make_training_set("noddi", hcp, 3000, n_fibres={1: 1, 2: 1, 3: 2}, snr=30,
                           random_state=0)
    assert ts.signal.shape == (3000, hcp.n_measurements)
    assert ts.target_names == ("odi", "icvf", "fiso")
    share = np.bincount(ts.n_fibres, minlength=4)[1:] / 3000
    np.testing.assert_allclose(share, [0.25, 0.25, 0.5], atol=1e-3)
    assert np.all(np.isfinite(ts.targets))
    assert ts.targets[:, 0].min() >= 0.02 - 1e-12 and ts.targets[:, 0].max() <= 0.98 + 1e-12
    # shuffled: fibre counts are not in blocks
    assert np.mean(ts.n_fibres[1:] != ts.n_fibres[:-1]) > 0.3


def test_training_set_noise_level(hcp):
    clean = make_training_set("noddi", hcp, 400, snr=np.inf, random_state=1)
    noisy = make_training_set("noddi", hcp, 400, snr=20, random_state=1)
    b0 = hcp.b0_mask
    np.testing.assert_allclose(clean.signal[:, b0], 1.0)
    assert abs(np.std(noisy.signal[:, b0]) - 1 / 20) < 0.005


def test_ranges_are_applied_to_every_fibre(hcp):
    ts = make_training_set("noddi", hcp, 500, n_fibres=2, ranges={"odi": (0.1, 0.2)},
                           random_state=0)
    assert ts.targets[:, 0].min() >= 0.1 and ts.targets[:, 0].max() <= 0.2


def test_bad_arguments(hcp):
    with pytest.raises(ValueError, match="n_fibres"):
        make_training_set("ivim", hcp, 10, n_fibres=2)
    with pytest.raises(ValueError, match="n_samples"):
        make_training_set("noddi", hcp, 0)
    with pytest.raises(ValueError, match="unknown kind"):
        FeatureSpec(kind="wavelets")


def test_rotation_invariant_features_do_not_depend_on_orientation(hcp, rng):
    model = noddi()
    dirs = rng.normal(size=(6, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    values = {"odi": np.full(6, 0.15), "icvf": np.full(6, 0.6), "fiso": np.full(6, 0.1),
              "mu": cartesian_to_angles(dirs)}
    signal = simulate(model, hcp, model.parameters.pack(values))
    feats, bad = FeatureSpec().compute(signal * 800.0, hcp)
    assert not bad.any()
    assert feats.shape == (6, 12)
    spread = np.ptp(feats, axis=0) / np.abs(feats).mean(axis=0)
    # orders 0-4 are exact to sampling precision; l = 6 picks up aliasing from l >= 8
    low = np.array([0, 1, 2, 4, 5, 6, 8, 9, 10])
    assert spread[low].max() < 1e-3 and spread.max() < 5e-3
    # the raw signal is not rotation invariant
    raw, _ = FeatureSpec(kind="signal").compute(signal, hcp)
    assert np.ptp(raw, axis=0).max() > 0.1


def test_l0_feature_is_spherical_mean_and_power_grows_with_anisotropy(hcp):
    model = noddi()
    mu = cartesian_to_angles(np.array([[0.0, 0.0, 1.0]] * 2))
    values = {"odi": np.array([0.05, 0.6]), "icvf": np.full(2, 0.7), "fiso": np.zeros(2),
              "mu": mu}
    signal = simulate(model, hcp, model.parameters.pack(values))
    feats = rotation_invariant_features(signal, hcp, lmax=6)
    shell = np.flatnonzero(np.isclose(hcp.bvals, 1e9))
    np.testing.assert_allclose(feats[:, 0] / np.sqrt(4 * np.pi), signal[:, shell].mean(1),
                               rtol=0.01)
    assert feats[0, 1] > 2 * feats[1, 1]  # less dispersion -> more l=2 power


def test_sh_order_limited_by_directions():
    assert max_sh_order(90, 8) == 8
    assert max_sh_order(30, 8) == 6
    assert max_sh_order(5, 8) == 0


def test_bad_voxels_give_nan_rows(hcp):
    ts = make_training_set("noddi", hcp, 4, random_state=0)
    sig = ts.signal.copy()
    sig[1, hcp.b0_mask] = 0.0
    sig[2, 5] = np.nan
    feats, bad = FeatureSpec().compute(sig, hcp)
    assert bad.tolist() == [False, True, True, False]
    assert np.isnan(feats[1]).all() and np.isfinite(feats[[0, 3]]).all()
