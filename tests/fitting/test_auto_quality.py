"""Quality maps of ``fit --n-fibres auto``: those of the model selected in each voxel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microlearn.crossings import crossing_dataset
from microlearn.fitting import fit
from microlearn.fitting.quality import quality_map_names
from microlearn.fitting.selection import _fit_zero, embed, fit_auto
from microlearn.fitting.selection_quality import _embed_std
from microlearn.models import get_model


@pytest.fixture(scope="module")
def case(hcp):
    """60 voxels, 15 each with 0-3 fibres (half the 0-fibre ones isotropic tissue)."""
    return crossing_dataset(hcp, 15, snr=30, random_state=0, isotropic_tissue=0.5)


@pytest.fixture(scope="module", params=["rician", "gaussian"])
def fitted(request, case, hcp):
    """The auto fit and fixed 1- and 2-fibre fits with the same σ (0: Gaussian)."""
    sigma = None if request.param == "rician" else 0.0
    auto = fit_auto("noddi", hcp, case.signal, sigma=sigma)
    s = 0.0 if auto.sigma is None else auto.sigma
    fixed = {n: fit(get_model("noddi", n), hcp, case.signal, sigma=s).maps() for n in (1, 2)}
    return auto, auto.maps(), fixed


def test_auto_writes_the_fixed_fit_quality_maps(case, fitted):
    auto, maps, _ = fitted
    names = quality_map_names(get_model("noddi", 3))
    assert set(names) <= set(maps)
    ok = auto.success
    assert ok.mean() > 0.9
    assert np.all(np.isfinite(maps["residual_rms"][ok]))
    nf = maps["n_fibres"]
    assert np.all(np.isfinite(maps["s0_std"][ok & (nf <= 1)]))  # 2-3: singular (see below)
    # maps of fibres a voxel does not have are NaN, as for the parameters
    for i in (1, 2, 3):
        for base in ("odi", "icvf", "mu"):
            assert np.all(np.isnan(maps[f"{base}_{i}_std"][nf < i]))
    # without the quality maps, the same parameters
    plain = fit_auto("noddi", auto.acq, case.signal, sigma=auto.sigma or 0.0, quality=False)
    assert not set(names) & set(plain.maps())
    np.testing.assert_array_equal(plain.n_fibres, auto.n_fibres)


def test_one_fibre_voxels_match_a_fixed_one_fibre_fit(fitted):
    """Where one fibre is selected and both fits reach the same parameters, the maps are
    the fixed ``noddi(1)`` fit's (its ``odi_std`` is the auto fit's ``odi_1_std``)."""
    _, maps, fixed = fitted
    one = fixed[1]
    same = (maps["n_fibres"] == 1) & (np.abs(maps["odi_1"] - one["odi"]) < 1e-3) & (
        np.abs(maps["fiso"] - one["fiso"]) < 1e-3)
    assert same.sum() >= 8
    np.testing.assert_allclose(maps["residual_rms"][same], one["residual_rms"][same],
                               rtol=1e-3)
    for auto_name, name in (("odi_1_std", "odi_std"), ("icvf_1_std", "icvf_std"),
                            ("mu_1_std", "mu_std"), ("fiso_std", "fiso_std"),
                            ("s0_std", "s0_std")):
        a, b = maps[auto_name][same], one[name][same]
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
        np.testing.assert_allclose(a, b, rtol=0.03, err_msg=auto_name)
    # a 1-fibre voxel's weight is not fitted: no std
    assert np.all(np.isnan(maps["ffib_1_std"][same]))


def test_two_fibre_voxels_match_a_fixed_two_fibre_fit(fitted):
    _, maps, fixed = fitted
    two = fixed[2]
    sel = maps["n_fibres"] == 2
    assert sel.sum() >= 8
    ratio = maps["residual_rms"][sel] / two["residual_rms"][sel]
    assert np.all(np.isfinite(ratio))
    # the auto fit is warm-started: as good as the fixed fit, sometimes better
    assert 0.9 < np.median(ratio) < 1.02 and np.mean(ratio < 1.01) >= 0.8
    # the fibre weights' common scale is taken out of the bound: finite std maps, close to
    # the fixed fit's (the solutions differ a little: warm starts)
    for name in ("odi_1_std", "icvf_2_std", "fiso_std", "ffib_2_std"):
        a, b = maps[name][sel], two[name][sel]
        assert np.mean(np.isfinite(a)) >= 0.5, name
        both = np.isfinite(a) & np.isfinite(b)
        assert both.sum() >= 4, name
        assert 0.7 < np.median(a[both] / b[both]) < 1.4, name


def test_std_follows_the_fibre_order_of_embed():
    """Fibres are sorted by weight when embedded; their std maps move with them."""
    model = get_model("noddi", 2)
    vals = {"mu_1": np.array([[0.3, 0.2], [0.3, 0.2]]),
            "mu_2": np.array([[1.3, 1.2], [1.3, 1.2]]), "odi_1": np.array([0.1, 0.1]),
            "odi_2": np.array([0.4, 0.4]), "icvf_1": np.array([0.5, 0.5]),
            "icvf_2": np.array([0.6, 0.6]), "ffib_1": np.array([0.3, 0.8]),
            "ffib_2": np.array([0.7, 0.2]), "fiso": np.array([0.1, 0.1])}
    params = model.parameters.pack(vals)
    std = {"odi_1": np.array([1.0, 1.0]), "odi_2": np.array([2.0, 2.0]),
           "fiso": np.array([5.0, 5.0]), "s0": np.array([7.0, 7.0])}
    names = quality_map_names(get_model("noddi", 3))
    out = _embed_std("noddi", 2, params, std, 3, names, 2)
    emb = get_model("noddi", 3).parameters.unpack(embed("noddi", 2, params, 3))
    assert emb["odi_1"][0] == 0.4 and emb["odi_1"][1] == 0.1  # the sorting being followed
    np.testing.assert_array_equal(out["odi_1_std"], [2.0, 1.0])
    np.testing.assert_array_equal(out["odi_2_std"], [1.0, 2.0])
    assert np.all(np.isnan(out["odi_3_std"])) and np.all(np.isnan(out["icvf_1_std"]))
    np.testing.assert_array_equal(out["fiso_std"], [5.0, 5.0])
    np.testing.assert_array_equal(out["s0_std"], [7.0, 7.0])
    one = _embed_std("noddi", 1, params[:, :0], {"odi": np.array([3.0, 3.0])}, 3, names, 2)
    np.testing.assert_array_equal(one["odi_1_std"], [3.0, 3.0])


def test_zero_fibre_bounds(case, hcp, fitted):
    """Free water: S0 alone (FISO is not fitted); isotropic tissue: FISO's bound agrees with
    the spread of repeated 0-fibre fits (Monte Carlo) within 20 %."""
    auto, maps, _ = fitted
    zero = maps["n_fibres"] == 0
    water = zero & (maps["fiso"] == 1.0)
    tissue = zero & (maps["fiso"] < 1.0)
    assert tissue.sum() >= 3 and (water.sum() >= 3 or auto.sigma is None)
    assert np.all(np.isnan(maps["fiso_std"][water]))
    assert np.all(np.isfinite(maps["s0_std"][zero]))
    assert np.all(np.isfinite(maps["fiso_std"][tissue]))
    if auto.sigma is None:
        return
    i = np.flatnonzero(tissue)[0]
    clean, _ = _fit_zero("noddi", hcp, case.signal[i:i + 1], auto.sigma, "aic", True)
    rng = np.random.default_rng(0)
    size = (400, hcp.n_measurements)
    noisy = np.hypot(clean.pred[0] + rng.normal(0, auto.sigma, size),
                     rng.normal(0, auto.sigma, size))
    again, _ = _fit_zero("noddi", hcp, noisy, auto.sigma, "aic", True)
    fiso = get_model("noddi", 1).parameters.unpack(again.params)["fiso"]
    assert np.mean(fiso < 1) > 0.95
    assert np.std(fiso[fiso < 1]) == pytest.approx(maps["fiso_std"][i], rel=0.2)
    assert np.std(again.s0) == pytest.approx(maps["s0_std"][i], rel=0.2)


def test_fit_auto_cli_writes_quality_maps(tmp_path):
    from microlearn.cli import main
    from microlearn.data.dataset import load_dataset, load_maps
    from microlearn.data.phantom import make_phantom

    ph = make_phantom(shape=(8, 8, 2), seed=2)
    ph.save(tmp_path / "ph")
    out = tmp_path / "maps"
    assert main(["fit", str(tmp_path / "ph"), "--n-fibres", "auto", "--out", str(out)]) == 0
    for name in ("residual_rms", "at_bound", "s0_std", "odi_1_std", "mu_2_std", "fiso_std"):
        assert (out / f"{name}.nii.gz").exists(), name
    maps = load_maps(out)
    ok = (maps["success"] > 0) & ph.mask
    assert np.all(np.isfinite(maps["residual_rms"][ok]))
    one = ok & (maps["n_fibres"] == 1)
    assert one.any() and np.all(np.isfinite(maps["odi_1_std"][one]))
    info = json.loads((out / "fit.json").read_text())
    assert 0.5 < info["quality"]["residual_rms_median"] < 1.5
    assert "odi_1_std" in info["maps"]
    # slab by slab = in memory
    ds = load_dataset(tmp_path / "ph")
    ref = fit_auto("noddi", ds.acq, ds.load_data(), mask=ds.mask).maps()
    for name in ("residual_rms", "odi_1_std", "s0_std"):
        np.testing.assert_allclose(maps[name][ph.mask], ref[name][ph.mask], rtol=1e-4,
                                   equal_nan=True, err_msg=name)
