"""Very high b (preclinical / Connectom, b·d∥ > 25): the Watson series stays exact and the
refinement moves ODI off the stage-1 grid."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.compartments.dispersion import odi_to_kappa, watson_stick_signal
from microlearn.fitting import fit
from microlearn.fitting.compiled.noddi_fast import ODI_GRID, NoddiMixEngine
from microlearn.fitting.engines.mix import MixEngine
from microlearn.models import get_model
from microlearn.schemes import hemisphere_directions
from microlearn.simulate import simulate_dataset


@pytest.fixture(scope="module")
def high_b():
    b, v = [0.0] * 4, [[0.0, 0.0, 0.0]] * 4
    for k, bb in enumerate((1000, 4000, 10000, 20000, 46000)):
        b += [bb] * 20
        v += hemisphere_directions(20, rotation=0.4 * k).tolist()
    return Acquisition.from_bvals_bvecs(np.array(b), np.array(v), bvals_unit="s/mm^2",
                                        delta=0.008, Delta=0.02, TE=0.06)


@pytest.mark.parametrize("odi", [0.02, 0.1, 0.3, 0.7])
def test_watson_stick_matches_sphere_quadrature_at_b_46000(odi):
    b = np.repeat([5e9, 2e10, 4.6e10], 7)
    ang = np.tile(np.linspace(0, np.pi / 2, 7), 3)
    acq = Acquisition(b, np.stack([np.sin(ang), 0 * ang, np.cos(ang)], 1), 0.008, 0.02)
    th = np.linspace(0, np.pi, 1201)
    ph = np.linspace(0, 2 * np.pi, 600, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    n = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    k = odi_to_kappa(odi)
    w = np.exp(k * (n[:, 2] ** 2 - 1)) * np.sin(T).ravel()
    w /= w.sum()
    ref = (np.exp(-acq.bvals * 1.7e-9 * (n @ acq.bvecs.T) ** 2) * w[:, None]).sum(0)
    got = watson_stick_signal(acq, np.array([0.0, 0.0, 1.0]), 1.7e-9, k)
    np.testing.assert_allclose(got, ref, atol=5e-5)


def test_odi_of_a_high_b_phantom_is_not_quantised_and_is_accurate(high_b):
    model = get_model("noddi")
    assert not NoddiMixEngine.applies(model, high_b)  # the generic engines' case
    p, _, y = simulate_dataset(model, high_b, 60, snr=50, random_state=2,
                               ranges={"odi": (0.05, 0.7), "icvf": (0.3, 0.8),
                                       "fiso": (0.0, 0.3)})
    truth = model.parameters.unpack(p)
    res = fit(model, high_b, 1000 * y, method="mix", workers=1)
    odi = res["odi"]
    grid = np.unique(np.r_[MixEngine(model, high_b).table.values["odi"], ODI_GRID])
    on_grid = np.min(np.abs(odi[:, None] - grid[None]), axis=1) < 1e-3
    assert on_grid.mean() < 0.1 and np.unique(np.round(odi, 4)).size > 50
    assert np.sqrt(np.mean((odi - truth["odi"]) ** 2)) < 0.05
    assert np.sqrt(np.mean((res["icvf"] - truth["icvf"]) ** 2)) < 0.04
