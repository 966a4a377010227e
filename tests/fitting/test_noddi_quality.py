"""The fused compiled quality pass of single-fibre NODDI equals the generic numpy path."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn.fitting.compiled.noddi_fast import NoddiMixEngine
from microlearn.fitting.quality import quality_maps
from microlearn.models import get_model
from microlearn.simulate import simulate_dataset


@pytest.fixture(scope="module")
def fitted(hcp):
    """60 noisy NODDI voxels (one without tissue, whose orientation is unidentifiable)
    fitted by the compiled engine; normalised signals and σ."""
    model = get_model("noddi", 1)
    _, _, y = simulate_dataset(model, hcp, 60, snr=25, random_state=4)
    y = np.asarray(y, dtype=float)
    y[0] = np.exp(-hcp.bvals * 3e-9)  # free water only: NaN orientation std
    engine = NoddiMixEngine(model, hcp)
    params, s0, _ = engine.fit_block(y, np.full(len(y), 1 / 25))
    return engine, params, s0, y


def _both(engine, hcp, params, s0, y, sigma, monkeypatch):
    fused = quality_maps(engine, hcp, params, s0, y, sigma)
    with monkeypatch.context() as m:
        m.setattr(NoddiMixEngine, "quality_arrays", None)
        generic = quality_maps(engine, hcp, params, s0, y, sigma)
    return fused, generic


@pytest.mark.parametrize("kind", ["sigma", "sigma map with a zero", "no sigma"])
def test_fused_quality_equals_generic(fitted, hcp, kind, monkeypatch):
    engine, params, s0, y = fitted
    params = params.copy()
    params[5] = np.nan  # a voxel without an answer
    sigma = np.full((len(y), hcp.n_measurements), 1 / 25)
    if kind == "sigma map with a zero":
        sigma[7] = 0.0  # σ unknown there: plain residual RMS, no std
    if kind == "no sigma":
        sigma = None
    fused, generic = _both(engine, hcp, params, s0, y, sigma, monkeypatch)
    assert sorted(fused) == sorted(generic)
    # without σ the numpy path takes the residual of the generic series (model.signal),
    # equal to the tabulated kernel's to ~1e-8; with σ both use the kernel's signal
    rtol = 1e-5 if sigma is None else 1e-7
    for name in generic:
        a, b = fused[name], generic[name]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=name)
    assert np.isnan(fused["mu_std"][0])  # no tissue: orientation undetermined
    assert np.isnan(fused["residual_rms"][5])
    if sigma is not None:  # a fit at the noise level has an RMS of about one σ
        assert 0.8 < np.nanmedian(fused["residual_rms"]) < 1.2
