import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.acquisition import b_value, gradient_strength
from microlearn.units import GAMMA, bvals_to_si, from_display, to_display


def test_unit_conversions():
    assert bvals_to_si([1000], "s/mm^2")[0] == pytest.approx(1e9)
    assert bvals_to_si([1.0], "ms/um^2")[0] == pytest.approx(1e9)
    assert to_display(1.7e-9, "µm²/ms") == pytest.approx(1.7)
    assert from_display(5.0, "µm") == pytest.approx(5e-6)
    with pytest.raises(ValueError, match="bvals_unit"):
        bvals_to_si([1], "furlongs")


def test_gradient_strength_roundtrip():
    g = gradient_strength(np.array([1e9, 3e9]), 10.6e-3, 43.1e-3)
    assert b_value(g, 10.6e-3, 43.1e-3) == pytest.approx([1e9, 3e9])
    # b = (γ G δ)² (Δ − δ/3) by hand
    assert (GAMMA * g[0] * 10.6e-3) ** 2 * (43.1e-3 - 10.6e-3 / 3) == pytest.approx(1e9)


def test_hcp_scheme(hcp):
    assert hcp.n_measurements == 288 and hcp.n_b0 == 18
    assert hcp.shells / 1e6 == pytest.approx([1000, 2000, 3000])
    for b in (1e9, 2e9, 3e9):
        assert np.sum(np.isclose(hcp.bvals, b)) == 90
    assert hcp.delta[0] == pytest.approx(10.6e-3) and hcp.Delta[0] == pytest.approx(43.1e-3)
    assert hcp.TE[0] == pytest.approx(89.5e-3)


def test_ivim_scheme(ivim_acq):
    b = np.unique(ivim_acq.bvals) / 1e6
    assert b[:14] == pytest.approx([0, 10, 20, 30, 40, 60, 80, 100, 120, 140, 160, 180, 200, 300])
    assert b[-1] == pytest.approx(1000)
    assert ivim_acq.n_b0 == 1


def test_activeax_scheme(activeax_acq):
    assert activeax_acq.G.max() == pytest.approx(0.3)
    assert np.unique(activeax_acq.Delta).size == 2


def test_from_bvals_bvecs_units_and_checks(hcp):
    b = hcp.bvals / 1e6
    acq = Acquisition.from_bvals_bvecs(b, hcp.bvecs.T, bvals_unit="s/mm^2")
    assert acq.matches(hcp)
    with pytest.raises(ValueError, match="s/mm"):
        Acquisition.from_bvals_bvecs(b, hcp.bvecs)  # SI expected, got s/mm²
    with pytest.raises(ValueError, match="s/m²"):
        Acquisition.from_bvals_bvecs(b * 1e6, hcp.bvecs, bvals_unit="s/mm^2")
    with pytest.raises(ValueError, match="ms/µm²"):
        Acquisition.from_bvals_bvecs(b / 1000, hcp.bvecs, bvals_unit="s/mm^2")
    bad = hcp.bvecs.copy()
    bad[1] *= 1.5
    with pytest.raises(ValueError, match="unit length"):
        Acquisition.from_bvals_bvecs(b, bad, bvals_unit="s/mm^2")
    with pytest.raises(ValueError, match="no b0"):
        Acquisition.from_bvals_bvecs(b[~hcp.b0_mask], hcp.bvecs[~hcp.b0_mask],
                                     bvals_unit="s/mm^2")
    with pytest.raises(ValueError, match="must match"):
        Acquisition.from_bvals_bvecs(b[:-1], hcp.bvecs, bvals_unit="s/mm^2")


def test_dipy_roundtrip(hcp):
    gtab = hcp.to_dipy()
    back = Acquisition.from_dipy(gtab)
    assert back.matches(hcp)
    assert gtab.bvals.max() == pytest.approx(3000)


def test_dict_roundtrip(hcp):
    assert Acquisition.from_dict(hcp.to_dict()).matches(hcp)
    assert Acquisition.from_dict(hcp.to_dict()).fingerprint() == hcp.fingerprint()


def test_unknown_scheme():
    with pytest.raises(ValueError, match="Unknown scheme"):
        Acquisition.scheme("siemens")
