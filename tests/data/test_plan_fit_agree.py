"""plan and fit read one rule for "does this acquisition determine this map": on DIPY's
single-shell scan small_64D at one SNR both say ICVF is not determined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microlearn.data.dataset import load_dataset
from microlearn.fitting import fit
from microlearn.fitting.quality import identifiability
from microlearn.models import get_model
from microlearn.run.plan import plan

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"
SNR = 20.0


def test_plan_and_fit_agree_on_a_single_shell_scan():
    ds = load_dataset(dwi=FILES / "small_64D.nii", bvals=FILES / "small_64D.bval",
                      bvecs=FILES / "small_64D.bvec")
    data = ds.load_data().astype(float)
    mask = ds.mask.copy()
    mask[:, :, 3:] = False
    s0 = float(np.median(data[mask][:, ds.acq.b0_mask]))
    model = get_model("noddi")
    res = fit(model, ds.acq, data, mask=mask, method="dictionary", sigma=s0 / SNR, workers=1)
    from_fit = identifiability(model, res.maps(), mask)
    report = plan(model, ds.acq, snr=SNR, n_voxels=60, learn=False)
    rows = {r["name"]: r for r in report["rows"]}
    assert from_fit["icvf"]["determined"] is False
    assert rows["icvf"]["determined"] is False and rows["icvf"]["verdict"] == "not supported"
    for name in ("odi", "icvf", "fiso"):  # the same verdict from both, whatever it is
        assert rows[name]["determined"] == from_fit[name]["determined"], name
