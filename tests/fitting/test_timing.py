"""Set-up vs throughput timing: the split never changes the fit, and fit.json reports it."""

import json

import numpy as np
import pytest

from microlearn import ivim, noddi, simulate_dataset
from microlearn.cli import main
from microlearn.data.phantom import make_phantom
from microlearn.fitting import api as base
from microlearn.fitting import fit


@pytest.mark.parametrize("method", ["mix", "dictionary"])
def test_warm_up_split_gives_the_same_fit(hcp, ivim_acq, method, monkeypatch):
    for model, acq in ((noddi(), hcp), (ivim(), ivim_acq)):
        _, _, y = simulate_dataset(model, acq, 40, snr=30, random_state=3)
        split = fit(model, acq, 1000 * y, method=method)
        monkeypatch.setattr(base, "WARM_VOXELS", 0)
        whole = fit(model, acq, 1000 * y, method=method)
        monkeypatch.undo()
        np.testing.assert_allclose(split.params, whole.params, rtol=1e-9, atol=1e-12)
        assert 0 < split.setup_seconds <= split.seconds
        steady = split.seconds - split.setup_seconds
        assert split.vox_per_s == pytest.approx(40 / steady)


def test_throughput_without_steady_time_is_nan():
    assert np.isnan(base.throughput(10, 1.0, 1.0))
    assert base.throughput(10, 3.0, 1.0) == pytest.approx(5.0)


def test_fit_json_reports_setup_and_throughput(tmp_path, capsys):
    make_phantom(shape=(8, 8, 2), seed=2).save(tmp_path / "ph")
    assert main(["fit", str(tmp_path / "ph"), "--out", str(tmp_path / "o")]) == 0
    info = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert 0 < info["setup_seconds"] <= info["fit_seconds"] <= info["seconds"]
    steady = info["fit_seconds"] - info["setup_seconds"]
    assert info["vox_per_s"] == pytest.approx(info["n_voxels"] / steady)
    assert "set-up" in capsys.readouterr().out


@pytest.mark.parametrize("scheme", ["hcp", "ivim", "activeax"])
def test_tensor_design_is_dipys(scheme):
    from dipy.reconst.dti import design_matrix

    from microlearn import Acquisition
    from microlearn.compartments.gaussian import tensor_design

    acq = Acquisition.scheme(scheme)
    ours = tensor_design(np.where(acq.b0_mask, 0.0, acq.bvals) / 1e6, acq.bvecs)
    np.testing.assert_allclose(ours, design_matrix(acq.to_dipy()), rtol=1e-12, atol=1e-12)


def test_fit_path_does_not_import_dipy_reconst():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from microlearn import Acquisition, noddi, simulate_dataset;"
            "from microlearn.fitting import fit; acq = Acquisition.scheme('hcp');"
            "y = simulate_dataset(noddi(), acq, 8, snr=30, random_state=0)[2];"
            "fit(noddi(), acq, 1000 * y); print(sorted(m for m in sys.modules"
            " if m.startswith(('dipy.reconst', 'dipy.data'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dictionary_is_kept_and_cache_state_does_not_change_results(hcp, monkeypatch):
    from microlearn.fitting.engines import dictionary

    monkeypatch.setattr(dictionary, "_CACHE", {})
    _, _, y = simulate_dataset(noddi(), hcp, 60, snr=30, random_state=4)
    fresh = fit(noddi(), hcp, 1000 * y, method="dictionary", sigma=0)
    kept = next(iter(dictionary._CACHE.values()))
    n_built = kept.built.sum()
    monkeypatch.setattr(dictionary, "_CACHE", {})
    fit(noddi(), hcp, 1000 * y[:7], method="dictionary", sigma=0)  # a few directions first
    again = fit(noddi(), hcp, 1000 * y, method="dictionary", sigma=0)  # the rest added
    assert len(dictionary._CACHE) == 1
    assert next(iter(dictionary._CACHE.values())).built.sum() == n_built
    np.testing.assert_allclose(again.params, fresh.params, rtol=1e-10, atol=1e-12)


def test_prewarm_thread_loads_kernels_and_reports_time():
    from microlearn.fitting.compiled.warm import prewarm, warm_jobs

    assert warm_jobs("noddi", "auto", "mix") == (("noddi", "auto", "mix"),)
    assert warm_jobs("ivim", 1, "mix") == (("ivim", 0, "mix"),)
    thread = prewarm((("ivim", 0, "mix"), ("nomodel", 1, "mix")))  # a bad job is skipped
    thread.join(60)
    assert not thread.is_alive() and thread.seconds > 0


def test_small_volume_is_read_once_and_never_stale(tmp_path):
    import os

    import nibabel as nib

    from microlearn.data.dataset import load_dataset
    from microlearn.run import chunked as parallel

    make_phantom(shape=(6, 6, 2), seed=3).save(tmp_path / "ph")
    ds = load_dataset(tmp_path / "ph")
    path = ds.image.get_filename()
    parallel.sample_sigma(ds)
    assert len(parallel._READ_ONCE) == 1  # kept for the slab loop
    np.testing.assert_array_equal(parallel.read_slab(path, 0, 2),
                                  np.asarray(nib.load(path).dataobj, np.float32))
    assert not parallel._READ_ONCE  # handed over once
    parallel.sample_sigma(ds)
    img = nib.load(path)
    old = np.asarray(img.dataobj, np.float32)
    nib.save(nib.Nifti1Image(old * 2, img.affine), path)
    os.utime(path, ns=(1, 10**18))  # a changed file is read again
    np.testing.assert_allclose(parallel.read_slab(path, 0, 2), 2 * old)
