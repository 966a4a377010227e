"""``out_of_prior`` flags voxels whose features leave the training distribution."""

from __future__ import annotations

import numpy as np

from microlearn.learning import make_training_set, train


def test_out_of_prior_fires_off_the_training_distribution(hcp):
    est = train("noddi", hcp, estimator="polynomial", n_samples=4000, snr=30.0, n_fibres=1)
    assert est.info["feature_distance"] is not None
    inside = make_training_set("noddi", hcp, 1000, n_fibres=1, snr=30, random_state=9).signal
    assert np.mean(est.predict_block(inside * 800.0)["out_of_prior"]) < 0.02
    # slow isotropic diffusion (D = 0.3 µm²/ms, e.g. a lesion or a wrong b-value unit):
    # no NODDI voxel looks like it, though each feature may lie within its own range
    rng = np.random.default_rng(0)
    iso = np.exp(-hcp.bvals * 0.3e-9)[None, :] * np.ones((500, 1))
    iso = np.hypot(iso + rng.normal(0, 1 / 30, iso.shape), rng.normal(0, 1 / 30, iso.shape))
    assert np.mean(est.predict_block(iso * 800.0)["out_of_prior"]) > 0.9
    # much noisier than trained for (SNR 5 against 30)
    noisy = make_training_set("noddi", hcp, 500, n_fibres=1, snr=5, random_state=2).signal
    assert np.mean(est.predict_block(noisy * 800.0)["out_of_prior"]) > 0.5


def test_combinations_never_trained_on_are_flagged_though_each_feature_is_in_range(hcp):
    """The b = 3000 shell of high-FISO voxels on low-FISO ones: every feature lies within
    its training range (the box test passes them all), the combination does not."""
    est = train("noddi", hcp, estimator="polynomial", n_samples=4000, snr=30.0, n_fibres=1)
    ts = make_training_set("noddi", hcp, 2000, n_fibres=1, snr=30, random_state=9)
    order = np.argsort(ts.targets[:, ts.target_names.index("fiso")])
    mixed = ts.signal[order[:500]].copy()
    top = hcp.shell_index == hcp.shell_index.max()
    mixed[:, top] = ts.signal[order[-500:]][:, top]
    assert np.mean(est.predict_block(mixed)["out_of_prior"]) > 0.5
    est.info.pop("feature_distance")  # the per-feature range alone
    assert np.mean(est.predict_block(mixed)["out_of_prior"]) < 0.05
