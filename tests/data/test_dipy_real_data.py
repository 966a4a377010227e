"""Real scans shipped inside DIPY's wheel (no download): readers, fit, quality maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microlearn.data.dataset import load_dataset
from microlearn.fitting import fit
from microlearn.models import get_model

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"


def _load(name):
    dwi = FILES / f"{name}.nii.gz"
    if not dwi.exists():
        dwi = FILES / f"{name}.nii"
    return load_dataset(dwi=dwi, bvals=FILES / f"{name}.bval", bvecs=FILES / f"{name}.bvec")


@pytest.fixture(scope="module")
def multi_b():
    """small_101D: 6x10x10 voxels, one b0 (b=15) and 101 jittered q-space b-values to 4000."""
    return _load("small_101D")


def test_multi_b_scan_fits_and_predicts_held_out_measurements(multi_b):
    ds = multi_b
    assert ds.acq.n_measurements == 102 and ds.acq.n_b0 == 1
    data = ds.load_data().astype(float)
    rng = np.random.default_rng(0)
    mask = ds.mask & (rng.random(ds.mask.shape) < 0.15)  # ~90 voxels
    model = get_model("noddi")
    dw = np.flatnonzero(~ds.acq.b0_mask)
    held = dw[1::4]  # every fourth weighted measurement is left out of the fit
    keep = np.setdiff1d(np.arange(ds.acq.n_measurements), held)
    res = fit(model, ds.acq.subset(keep), data[..., keep], mask=mask, method="mix",
              workers=1)
    assert np.isfinite(res["odi"][mask]).all()
    pred = res.s0[mask][:, None] * model.signal(ds.acq, res.params[mask])
    s0 = data[mask][:, ds.acq.b0_mask].mean(1, keepdims=True)
    rms_in = np.sqrt(np.mean(((pred - data[mask]) / s0)[:, keep[~ds.acq.b0_mask[keep]]] ** 2))
    rms_out = np.sqrt(np.mean(((pred - data[mask]) / s0)[:, held] ** 2))
    assert rms_out < 0.06 and rms_out < 1.25 * rms_in  # predicts what it never saw
    assert np.nanmedian(res["residual_rms"][mask]) < 0.06
    # a multi-b protocol pins NODDI down: small Cramér–Rao std
    assert np.nanmedian(res["icvf_std"][mask]) < 0.1


def test_single_shell_scan_is_flagged_by_the_std_maps():
    """small_64D (one shell, b=1000): NODDI is not identifiable, and the std maps say so."""
    ds = _load("small_64D")
    data = ds.load_data()
    mask = ds.mask.copy()
    mask[:, :, 3:] = False
    res = fit(get_model("noddi"), ds.acq, data, mask=mask, method="dictionary", workers=1)
    assert np.nanmedian(res["icvf_std"][mask]) > 1.0
