"""The compiled path of fibre-count selection: predictions, warm starts, gating, agreement."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn.crossings import count_scores, crossing_dataset
from microlearn.fitting import selection
from microlearn.fitting.compiled import noddi_select
from microlearn.fitting.compiled.noddi_select import CompiledFibreFits, warm_start
from microlearn.fitting.selection import fit_auto
from microlearn.models import get_model
from microlearn.simulate import sample_parameters


@pytest.fixture(scope="module")
def crossing_set(hcp):
    """200 voxels, 50 each with 0-3 fibres (hcp, SNR 30)."""
    return crossing_dataset(hcp, 50, snr=30, random_state=3)


def _fibre_voxels(hcp, n, count, seed):
    model = get_model("noddi", n)
    ranges = {p.name: r for p in model.parameters
              for k, r in (("odi", (0.05, 0.25)), ("icvf", (0.4, 0.7)), ("fiso", (0.0, 0.2)))
              if p.name.split("_")[0] == k}
    params = sample_parameters(model, count, random_state=seed, ranges=ranges,
                               min_crossing_angle=60.0)
    return model, params, 1000.0 * model.signal(hcp, params)


def test_compiled_fits_predict_the_generic_model(hcp):
    """Costs and predictions of the compiled path are those of the model's own signal."""
    fits = CompiledFibreFits(hcp, 3, workers=1)
    rng = np.random.default_rng(0)
    sigma = 20.0
    for n in (1, 2, 3):
        model, truth, clean = _fibre_voxels(hcp, n, 12, n)
        y = np.hypot(clean + rng.normal(0, sigma, clean.shape),
                     rng.normal(0, sigma, clean.shape))
        b0 = y[:, hcp.b0_mask].mean(1)
        dirs = selection._orientations(model, truth)  # start at the true directions
        params, s0, ok, cost, rows = fits.fit(n, y, b0, sigma, dirs)
        assert ok.all()
        generic = s0[:, None] * model.signal(hcp, params)
        np.testing.assert_allclose(fits.predict(n, rows, b0), generic, rtol=1e-6,
                                   atol=1e-6 * 1000)
        np.testing.assert_allclose(cost, selection.floor_cost(generic, y, sigma), rtol=1e-6)
        # a fit reaches (about) the noise floor: N measurements, cost ~ N
        assert np.median(cost) < 1.3 * hcp.n_measurements


@pytest.mark.parametrize("m", [1, 2])
def test_warm_start_without_a_share_is_the_previous_fit(hcp, m, monkeypatch):
    """With no share for the new fibre and no ODI cap, the warm start's signal is the
    (m)-fibre fit's signal: the layouts are converted exactly."""
    monkeypatch.setattr(noddi_select, "NEW_SHARE", 0.0)
    monkeypatch.setattr(noddi_select, "START_ODI_MAX", 1.0)
    fits = CompiledFibreFits(hcp, 3, workers=1)
    _, _, y = _fibre_voxels(hcp, m, 6, 10 + m)
    b0 = y[:, hcp.b0_mask].mean(1)
    dirs = np.tile([0.0, 0.0, 1.0], (len(y), m, 1))
    *_, rows = fits.fit(m, y, b0, None, dirs)
    new = np.tile([1.0, 0.0, 0.0], (len(y), 1))
    x0 = warm_start(rows, new, m, fits.engine(m))
    assert x0.shape == (len(y), 5 * (m + 1) + 1)
    packed = fits.engine(m + 1).pack_kernel(x0)
    before = fits.predict(m, rows, b0)
    after = fits.predict(m + 1, packed, b0)
    np.testing.assert_allclose(after, before, rtol=1e-9, atol=1e-9)


def test_two_fibre_gate(hcp):
    """Single fibres mostly skip the 2-fibre fit; crossings all get it."""
    rng = np.random.default_rng(1)
    sigma = 1000.0 / 30
    tried = {}
    for n in (1, 2):
        _, _, clean = _fibre_voxels(hcp, n, 60, 20 + n)
        y = np.hypot(clean + rng.normal(0, sigma, clean.shape),
                     rng.normal(0, sigma, clean.shape))
        _, cands, _ = selection.select_fibres("noddi", hcp, y, sigma=sigma, max_fibres=2,
                                              fit_options={"workers": 1})
        tried[n] = len(cands[2].index) / len(y) if 2 in cands else 0.0
    assert tried[2] == 1.0
    assert tried[1] <= 0.6


def test_compiled_and_general_paths_agree(crossing_set, hcp):
    """The compiled selection path and the one through ``fit`` (per fibre count, grid
    starts) count fibres alike and both well."""
    cs = crossing_set
    fast = fit_auto("noddi", hcp, cs.signal, workers=1)
    general = fit_auto("noddi", hcp, cs.signal, workers=1, tol=1e-4)  # not a fast-path option
    assert not noddi_select.applies("noddi", hcp, 3, {"method": "mix", "tol": 1e-4})
    agree = np.mean(fast.n_fibres == general.n_fibres)
    assert agree >= 0.9
    for res in (fast, general):
        s = count_scores(cs.n_fibres, res.n_fibres)
        assert s["accuracy"] >= 0.78
        assert s["recall"][0] >= 0.95 and s["recall"][1] >= 0.85
