"""Accuracy of every engine against simulated ground truth (seeded, a few hundred voxels)."""

import numpy as np
import pytest

from microlearn import activeax, ivim, noddi, simulate_dataset, zcd
from microlearn.fitting import fit

NODDI_RANGES = {"odi": (0.05, 0.7), "icvf": (0.2, 0.8), "fiso": (0.0, 0.3)}
#: RMSE bounds on 300 voxels: the issue's targets (0.033/0.024/0.031) + 10 % for the
#: nonlinear engines; the linearised dictionary (AMICO's recipe) is bounded by AMICO's
#: own errors on this problem (0.040/0.031/0.038 on 8000 voxels) + 10 %.
NODDI_BOUNDS = {
    "mix": {"odi": 0.036, "icvf": 0.027, "fiso": 0.034},
    "interior-point": {"odi": 0.036, "icvf": 0.027, "fiso": 0.034},
    "dictionary": {"odi": 0.044, "icvf": 0.034, "fiso": 0.042},
}


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def noddi_data():
    from microlearn import Acquisition

    acq = Acquisition.scheme("hcp")
    m = noddi()
    p, _, y = simulate_dataset(m, acq, 300, snr=30, random_state=7, ranges=NODDI_RANGES)
    return m, acq, p, 1000.0 * y


@pytest.fixture(scope="module")
def noddi_fits(noddi_data):
    m, acq, p, y = noddi_data
    return {meth: fit(m, acq, y, method=meth, workers=1) for meth in NODDI_BOUNDS}


@pytest.mark.parametrize("method", sorted(NODDI_BOUNDS))
def test_noddi_accuracy(noddi_data, noddi_fits, method):
    m, acq, p, y = noddi_data
    res, truth = noddi_fits[method], m.maps(p)
    assert res.success.mean() > 0.97
    assert res.sigma == pytest.approx(1000 / 30, rel=0.1)
    for k, bound in NODDI_BOUNDS[method].items():
        assert rmse(res[k], truth[k]) < bound, (method, k, rmse(res[k], truth[k]))
    ang = np.degrees(np.arccos(np.clip(np.abs(np.sum(res["mu"] * truth["mu"], -1)), 0, 1)))
    assert np.median(ang) < 5.0
    assert np.allclose(res["s0"], 1000, rtol=0.1)


def test_interior_point_agrees_with_mix(noddi_data, noddi_fits):
    a, b = noddi_fits["mix"], noddi_fits["interior-point"]
    for k in ("odi", "icvf", "fiso"):
        # within the noise: the engine difference is much smaller than the error to truth
        assert rmse(a[k], b[k]) < 0.02


def test_predict_and_residuals(noddi_data, noddi_fits):
    m, acq, p, y = noddi_data
    res = noddi_fits["mix"]
    r = res.residuals(y)
    assert r.shape == y.shape
    assert np.sqrt(np.mean(r**2)) < 1000 / 30 * 1.2  # residual at the noise level


@pytest.mark.parametrize("method", ["mix", "interior-point", "dictionary"])
def test_ivim_accuracy(ivim_acq, method):
    m = ivim()
    p, _, y = simulate_dataset(m, ivim_acq, 400, snr=30, random_state=3)
    res, truth = fit(m, ivim_acq, 1000 * y, method=method, workers=1), m.maps(p)
    assert rmse(res["f"], truth["f"]) < 0.07
    assert np.corrcoef(res["d"], truth["d"])[0, 1] > (0.93 if method != "dictionary" else 0.9)
    assert res["f"].max() > 0.3 or method == "dictionary"  # f is not capped


#: RMSE bounds on 150 voxels with diameters 2–10 µm. The compiled MIX engine reaches
#: 0.30–0.41 µm / 0.014–0.017 / 0.021–0.025 (diameter / ICVF / FISO) over seeds 4–7; FISO
#: and ICVF sit at their Cramér–Rao bounds (~0.025 / ~0.017 at SNR 50).
ACTIVEAX_BOUNDS = {
    "mix": {"diameter": 0.6e-6, "corr": 0.95, "icvf": 0.02, "fiso": 0.03},
    "interior-point": {"diameter": 0.6e-6, "corr": 0.95, "icvf": 0.02, "fiso": 0.03},
    "dictionary": {"diameter": 1.2e-6, "corr": 0.85, "icvf": 0.03, "fiso": 0.04},
}


@pytest.mark.parametrize("method", sorted(ACTIVEAX_BOUNDS))
def test_activeax_accuracy(activeax_acq, method):
    m = activeax()
    p, _, y = simulate_dataset(m, activeax_acq, 150, snr=50, random_state=4,
                               ranges={"diameter": (2e-6, 10e-6), "icvf": (0.3, 0.8),
                                       "fiso": (0, 0.2)})
    res, truth = fit(m, activeax_acq, 1000 * y, method=method, workers=1), m.maps(p)
    bounds = ACTIVEAX_BOUNDS[method]
    assert rmse(res["diameter"], truth["diameter"]) < bounds["diameter"]
    assert np.corrcoef(res["diameter"], truth["diameter"])[0, 1] > bounds["corr"]
    assert rmse(res["icvf"], truth["icvf"]) < bounds["icvf"]
    assert rmse(res["fiso"], truth["fiso"]) < bounds["fiso"]


def test_zcd_accuracy(activeax_acq):
    m = zcd()
    p, _, y = simulate_dataset(m, activeax_acq, 150, snr=50, random_state=5,
                               ranges={"diameter": (2e-6, 10e-6)})
    res, truth = fit(m, activeax_acq, 1000 * y, method="mix", workers=1), m.maps(p)
    # ZCD's free d⊥ trades off against small diameters: a few voxels end in local minima
    assert rmse(res["diameter"], truth["diameter"]) < 2.0e-6
    assert np.median(np.abs(res["diameter"] - truth["diameter"])) < 0.5e-6
    assert np.corrcoef(res["diameter"], truth["diameter"])[0, 1] > 0.85
    for k in ("f_cylinder", "f_zeppelin", "f_dot"):
        assert rmse(res[k], truth[k]) < 0.04


def test_two_fibre_fit_from_directions(hcp):
    m = noddi(2)
    p, _, y = simulate_dataset(m, hcp, 60, snr=50, random_state=6, min_crossing_angle=60)
    truth = m.maps(p)
    dirs = np.stack([truth["mu_1"], truth["mu_2"]], 1)
    res = fit(m, hcp, 1000 * y, method="mix", directions=dirs, workers=1)
    assert rmse(res["fiso"], truth["fiso"]) < 0.05
    assert rmse(res["icvf"], truth["icvf"]) < 0.05


def test_bad_voxels_and_unknown_method(hcp):
    m = noddi()
    p, _, y = simulate_dataset(m, hcp, 20, snr=30, random_state=1)
    y = 1000 * y
    y[3, 0] = np.nan
    y[5, hcp.b0_mask] = 0
    with pytest.warns(RuntimeWarning, match="2 voxel"):
        res = fit(m, hcp, y, method="mix", workers=1)
    odi = res["odi"]
    assert np.isnan(odi[3]) and np.isnan(odi[5]) and np.isfinite(np.delete(odi, [3, 5])).all()
    clean = fit(m, hcp, np.delete(y, [3, 5], 0), method="mix", workers=1, sigma=res.sigma)
    assert np.allclose(clean["odi"], np.delete(odi, [3, 5]))
    with pytest.raises(ValueError, match="Unknown fitting method"):
        fit(m, hcp, y, method="amico")
    with pytest.raises(ValueError, match="measurements"):
        fit(m, hcp, y[:, :10])


@pytest.mark.parametrize("method", ["mix", "interior-point", "dictionary"])
def test_free_water_model_without_free_parameters(method):
    """noddi(0) (a CSF ball, nothing free but S0) is fitted by every engine."""
    from microlearn import Acquisition

    acq, m = Acquisition.scheme("hcp"), noddi(0)
    _, _, y = simulate_dataset(m, acq, 50, snr=30, random_state=2)
    res = fit(m, acq, 1000 * y, method=method, workers=1)
    assert res.params.shape == (50, 0)
    assert np.all(res["fiso"] == 1.0)
    assert abs(np.median(res["s0"]) / 1000 - 1) < 0.02
    assert np.all(np.isfinite(res.predict()))
