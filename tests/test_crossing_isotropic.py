"""Isotropic tissue (grey-matter-like, no preferred direction) is not a fibre."""

import numpy as np

from microlearn.crossings import crossing_dataset, evaluate_fibres
from microlearn.crossings.evaluation import ISOTROPIC_TISSUE_RANGES
from microlearn.fitting.selection import _fit_zero, fit_auto


def test_zero_fibre_candidate_tells_tissue_from_free_water(hcp):
    cs = crossing_dataset(hcp, 40, snr=30, random_state=5, isotropic_tissue=0.5)
    zero = np.flatnonzero(cs.n_fibres == 0)
    water, tissue = zero[:20], zero[20:]
    sigma = 1000.0 / 30
    cand, ic = _fit_zero("noddi", hcp, cs.signal[zero], sigma, "aic", True)
    fiso = cand.params[:, -1]
    assert np.mean(fiso[:20] == 1.0) >= 0.9  # free water stays free water
    assert np.all(fiso[20:] < 0.5)  # tissue found (true FISO <= 0.3)
    assert np.all(np.isfinite(ic))
    np.testing.assert_allclose(np.median(np.abs(fiso[20:] - cs.truth["fiso"][tissue])), 0,
                               atol=0.1)
    assert water.size == tissue.size == 20


def test_isotropic_tissue_counts_zero_fibres_and_fibres_stay(hcp):
    cs = crossing_dataset(hcp, 40, snr=30, random_state=6, isotropic_tissue=0.5)
    res = fit_auto("noddi", hcp, cs.signal, sigma=1000.0 / 30)
    maps = res.maps()
    n = maps["n_fibres"]
    tissue = np.flatnonzero(cs.n_fibres == 0)[20:]
    assert np.mean(n[tissue] == 0) >= 0.9
    assert np.mean(n[cs.n_fibres == 1] == 1) >= 0.85
    dirs = np.stack([maps[f"mu_{i}"] for i in (1, 2, 3)], 1)
    assert evaluate_fibres(cs, n, dirs)["accuracy"] >= 0.8
    # their maps: no fibre maps, tissue FISO kept, and the model reproduces the signal
    assert np.all(np.isnan(maps["odi"][tissue])) and np.all(maps["fiso"][tissue] < 0.6)
    rms = np.sqrt(np.mean(res.residuals(cs.signal)[tissue] ** 2, axis=1))
    assert np.median(rms) < 1.3 * res.sigma
    assert ISOTROPIC_TISSUE_RANGES["odi"][0] >= 0.9
