"""The DIPY-style face: ``Model(model, gtab).fit(data, mask)`` -> Fit (map attributes)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.fitting import FitResult, Model, fit
from microlearn.models.builtin import noddi
from microlearn.simulate import simulate_dataset

S0 = 1000.0
N_VOX = 48
SIGMA = S0 / 40.0  # given, so that a voxel's fit does not depend on the others


@pytest.fixture(scope="module")
def acq():
    return Acquisition.scheme("hcp")


@pytest.fixture(scope="module")
def scan(acq):
    """Rician NODDI signals (S0 = 1000, SNR 40) with their truth, shape (4, 3, 4, N)."""
    params, _, noisy = simulate_dataset(noddi(1), acq, N_VOX, snr=40.0, random_state=7)
    return params, S0 * noisy.reshape(4, 3, 4, -1)


@pytest.fixture(scope="module")
def face(acq, scan):
    model = Model("noddi", acq)
    return model, model.fit(scan[1], sigma=SIGMA)


def test_maps_agree_with_fit(acq, scan, face):
    _, fitted = face
    reference = fit(noddi(1), acq, scan[1], sigma=SIGMA)
    assert isinstance(fitted.result, FitResult)
    for name in ("odi", "icvf", "fiso", "mu", "s0", "odi_std", "residual_rms"):
        np.testing.assert_allclose(getattr(fitted, name), reference[name], rtol=1e-10,
                                   equal_nan=True)
    np.testing.assert_array_equal(fitted.model_params, reference.params)
    assert fitted.shape == (4, 3, 4)
    assert fitted.mu.shape == (4, 3, 4, 3)


def test_maps_recover_truth(scan, face):
    """The face fits what was simulated (a test that fails if maps are mislabelled)."""
    truth = noddi(1).maps(scan[0])
    _, fitted = face
    for name, tol in (("odi", 0.08), ("icvf", 0.08)):
        err = np.sqrt(np.nanmean((fitted.maps()[name].ravel() - truth[name]) ** 2))
        assert err < tol, (name, err)


def test_gtab_and_acquisition_give_the_same_maps(acq, scan, face):
    gtab = acq.to_dipy()  # carries small_delta / big_delta
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # timings are set: no warning
        model = Model("noddi", gtab)
    assert model.gtab is gtab
    np.testing.assert_allclose(model.acquisition.bvals, acq.bvals, rtol=1e-9)
    np.testing.assert_allclose(model.acquisition.Delta, acq.Delta)
    fitted = model.fit(scan[1][0], sigma=SIGMA)
    np.testing.assert_allclose(fitted.odi, face[1].odi[0], rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(fitted.icvf, face[1].icvf[0], rtol=1e-6, equal_nan=True)


def test_gtab_without_timings_warns_with_the_values(acq):
    from dipy.core.gradients import gradient_table

    gtab = gradient_table(acq.bvals / 1e6, bvecs=acq.bvecs)
    with pytest.warns(UserWarning, match=r"δ = 10.6 ms, Δ = 43.1 ms"):
        model = Model("noddi", gtab)
    np.testing.assert_allclose(model.acquisition.Delta, 43.1e-3)


@pytest.mark.parametrize("shape", [(48,), (6, 8), (2, 2, 3, 4)])
def test_any_spatial_rank(scan, face, shape):
    model, fitted = face
    data = scan[1].reshape(shape + (-1,))
    out = model.fit(data, sigma=SIGMA)
    assert out.shape == shape and out.odi.shape == shape and out.mu.shape == shape + (3,)
    np.testing.assert_allclose(out.odi.ravel(), fitted.odi.ravel(), rtol=1e-8)


def test_single_voxel_is_zero_dimensional(scan, face):
    model, fitted = face
    one = model.fit(scan[1][1, 2, 3], sigma=SIGMA)
    assert one.shape == () and np.ndim(one.odi) == 0 and one.mu.shape == (3,)
    np.testing.assert_allclose(one.odi, fitted.odi[1, 2, 3], rtol=1e-8)
    assert one.predict().shape == (scan[1].shape[-1],)
    with pytest.raises(IndexError):
        one[0]


def test_mask(scan, face):
    model, fitted = face
    mask = np.zeros((4, 3, 4), bool)
    mask[1:3, :, ::2] = True
    out = model.fit(scan[1], mask, sigma=SIGMA)
    assert np.all(np.isnan(out.odi[~mask])) and np.all(np.isnan(out.mu[~mask]))
    np.testing.assert_allclose(out.odi[mask], fitted.odi[mask], rtol=1e-8)
    assert np.all(np.isnan(out.predict()[~mask]))
    with pytest.raises(ValueError, match="mask shape"):
        model.fit(scan[1], mask[:2])


def test_indexing_gives_a_sub_fit(face):
    _, fitted = face
    sub = fitted[1:3, 0]
    assert sub.shape == (2, 4)
    np.testing.assert_array_equal(sub.odi, fitted.odi[1:3, 0])
    np.testing.assert_array_equal(sub.mu, fitted.mu[1:3, 0])
    np.testing.assert_array_equal(sub.odi_std, fitted.odi_std[1:3, 0])
    np.testing.assert_allclose(sub.predict(), fitted.predict()[1:3, 0])
    voxel = fitted[2, 1, 3]
    assert voxel.shape == () and voxel.icvf == fitted.icvf[2, 1, 3]
    with pytest.raises(IndexError):
        fitted[0, 0, 0, 0]


def test_predict(acq, scan, face):
    model, fitted = face
    np.testing.assert_array_equal(fitted.predict(), fitted.result.predict())
    # the fitted signal is close to the data it was fitted to (SNR 40 → σ = 25)
    rms = np.sqrt(np.mean((fitted.predict() - scan[1]) ** 2))
    assert rms < 40.0
    # S0 = 1: normalised signals; the model-level predict of the packed parameters agrees
    unit = fitted.predict(S0=1.0)
    np.testing.assert_allclose(unit, model.predict(fitted.model_params), rtol=1e-12)
    np.testing.assert_allclose(unit[..., acq.b0_mask], 1.0, rtol=1e-9)


def test_predict_on_another_gradient_table(acq, face):
    from dipy.core.gradients import gradient_table

    model, fitted = face
    other = Acquisition.from_bvals_bvecs(
        [0, 500, 1500, 2500], [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
        bvals_unit="s/mm^2", delta=acq.delta[0], Delta=acq.Delta[0], TE=acq.TE[0])
    gtab = other.to_dipy()
    out = fitted.predict(gtab)
    assert out.shape == (4, 3, 4, 4)
    expected = fitted.s0[..., None] * noddi(1).signal(other, fitted.model_params)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    np.testing.assert_allclose(fitted.predict(other), out)  # an Acquisition works too
    # the fitted table, given explicitly, gives the default prediction
    np.testing.assert_allclose(fitted.predict(acq.to_dipy()), fitted.predict(), rtol=1e-8)
    # a table without timings takes the fitted acquisition's, and says so
    bare = gradient_table(other.bvals / 1e6, bvecs=other.bvecs)
    with pytest.warns(UserWarning, match="the model's acquisition"):
        np.testing.assert_allclose(fitted.predict(bare), out, rtol=1e-10)


def test_attribute_error_lists_the_maps(face):
    _, fitted = face
    with pytest.raises(AttributeError, match=r"no map 'fa'.*'icvf'.*'odi'"):
        _ = fitted.fa
    assert not hasattr(fitted, "diameter")
    assert {"odi", "icvf", "mu", "s0", "odi_std"} <= set(fitted.map_names)
    assert "odi" in dir(fitted)


def test_option_errors(acq):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['max_iters'\].*max_iter"):
        Model("noddi", acq, max_iters=5)
    with pytest.raises(ValueError, match="unknown fitting method 'wls'"):
        Model("noddi", acq, method="wls")
    with pytest.raises(ValueError, match="cannot fit model"):
        Model("noddi", acq, method="posterior")
    with pytest.raises(ValueError, match="Unknown model 'nodi'"):
        Model("nodi", acq)
    with pytest.raises(ValueError, match="gtab: expected a dipy GradientTable"):
        Model("noddi", np.zeros((10, 4)))
    with pytest.raises(ValueError, match=r"\['sigma'\] belong to the scan.*Model.fit"):
        Model("noddi", acq, sigma=10.0)
    model = Model("noddi", acq, max_iter=7, quality=False, workers=1)
    assert model.options == {"max_iter": 7, "quality": False, "workers": 1}


def test_model_argument_forms(acq, tmp_path):
    assert Model("noddi", acq, n_fibres=2).model.n_fibres == 2
    spec = noddi(1).set("d_par", 2.0e-9)
    path = tmp_path / "custom.json"
    path.write_text(spec.to_json())
    from_path = Model(str(path), acq)
    assert from_path.model.parameter_names == spec.parameter_names
    assert from_path.model.to_spec() == spec.to_spec()
    assert Model(spec, acq, n_fibres=2).model.n_fibres == 2
    assert Model("sandi", Acquisition.scheme("sandi")).method == "posterior"


def test_dipy_shipped_scan_end_to_end():
    """small_64D (shipped with DIPY, offline): NODDI next to DIPY's TensorModel."""
    from dipy.core.gradients import gradient_table
    from dipy.data import get_fnames
    from dipy.io.gradients import read_bvals_bvecs
    from dipy.io.image import load_nifti
    from dipy.reconst.dti import TensorModel

    fdata, fbval, fbvec = get_fnames("small_64D")
    data, _ = load_nifti(fdata)
    bvals, bvecs = read_bvals_bvecs(fbval, fbvec)
    gtab = gradient_table(bvals, bvecs=bvecs, big_delta=43.1e-3, small_delta=10.6e-3)
    data = data[2:8, 2:8, 3:7].astype(float)  # 144 voxels
    mask = data[..., 0] > 0
    tenfit = TensorModel(gtab, return_S0_hat=True).fit(data, mask=mask)
    nfit = Model("noddi", gtab).fit(data, mask=mask)
    assert nfit.shape == tenfit.shape == data.shape[:-1]
    ok = mask & np.isfinite(nfit.odi)
    assert ok.sum() > 0.9 * mask.sum()
    assert np.all((nfit.odi[ok] >= 0) & (nfit.odi[ok] <= 1))
    assert np.all((nfit.icvf[ok] >= 0) & (nfit.icvf[ok] <= 1))
    # orientations agree with the tensor's principal eigenvector where FA is high
    fa = tenfit.fa
    aligned = np.abs(np.sum(nfit.mu * tenfit.evecs[..., 0], axis=-1))
    assert np.median(aligned[ok & (fa > 0.4)]) > 0.95
    # both predict the scan about as well (same gtab, DIPY's call form)
    err = np.sqrt(np.mean((nfit.predict(gtab)[ok] - data[ok]) ** 2))
    err_dti = np.sqrt(np.mean((tenfit.predict(gtab)[ok] - data[ok]) ** 2))
    assert err < 1.25 * err_dti  # 6 parameters against the tensor's 7


def test_spherical_mean_model_predicts_every_measurement(acq):
    """SMT is fitted to powder averages; predict() still has the data's shape."""
    model = Model("smt", acq)
    _, _, noisy = simulate_dataset(model.model, acq, 12, snr=50.0, random_state=3)
    fitted = model.fit(S0 * noisy.reshape(3, 4, -1), sigma=S0 / 50.0)
    pred, per_shell = fitted.predict(), fitted.result.predict()
    assert pred.shape == (3, 4, acq.n_measurements)
    assert per_shell.shape[-1] < acq.n_measurements
    # each measurement's prediction is its shell's powder-averaged prediction
    gap = np.min(np.abs(pred[..., :, None] - per_shell[..., None, :]), axis=-1)
    assert np.all(gap < 1e-8 * S0)
    np.testing.assert_allclose(fitted.predict(acq), pred)
