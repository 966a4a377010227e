"""Input quality checks: gradient orientation (fibre coherence), header affines, shells."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from microlearn.acquisition import Acquisition
from microlearn.data.qc import affine_agreement, gradient_orientation, shell_jitter
from microlearn.models import noddi
from microlearn.simulate import simulate

RADIOLOGICAL = np.diag([-2.0, 2.0, 2.0, 1.0])  # as HCP: FSL bvecs need no x flip


@pytest.fixture(scope="module")
def torus():
    """A curved tract (a ring in the xy-plane, fibres along it) and crossing-free tissue."""
    n = 28
    ax = np.arange(n) - (n - 1) / 2
    x, y, z = np.meshgrid(ax, ax, np.arange(6), indexing="ij")
    r = np.hypot(x, y)
    ring = (r > 6) & (r < 11)
    tangent = np.stack([-y, x, np.zeros_like(x)], -1) / np.maximum(r, 1e-9)[..., None]
    tangent[..., 2] = 0.15  # a little through-plane tilt
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
    return ring, tangent


def _data(acq, ring, tangent, rng):
    model = noddi()
    vals = {"odi": np.full(ring.sum(), 0.08), "icvf": np.full(ring.sum(), 0.7),
            "fiso": np.zeros(ring.sum()), "mu": tangent[ring]}
    data = np.zeros(ring.shape + (acq.n_measurements,))
    data[ring] = 1000 * simulate(model, acq, model.parameters.pack(vals))
    data[~ring] = 1000 * np.exp(-acq.bvals * 2.5e-9)  # free water around it
    return data + rng.normal(0, 15, data.shape)


def _acq(hcp, bvecs):
    return Acquisition.from_bvals_bvecs(hcp.bvals, bvecs, bvals_unit="s/m^2", delta=hcp.delta,
                                        Delta=hcp.Delta)


@pytest.mark.parametrize("transform, expected", [
    (None, None), (np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]), "permuted"),
    (np.diag([1.0, -1.0, 1.0]), "flipped in y"), (np.diag([-1.0, 1.0, 1.0]), "flipped in x")])
def test_gradient_table_errors_are_found(transform, expected, torus, hcp):
    ring, tangent = torus
    rng = np.random.default_rng(0)
    data = _data(hcp, ring, tangent, rng)
    bvecs = hcp.bvecs if transform is None else hcp.bvecs @ transform.T  # the file's error
    res = gradient_orientation(_acq(hcp, bvecs), data, np.ones(ring.shape, bool), RADIOLOGICAL)
    if expected is None:
        assert res["warning"] == "" and res["best"] == res["given"]
    else:
        assert expected in res["warning"], res
        assert res["scores"][res["best"]] > 1.15 * res["scores"][res["given"]]


def test_fsl_x_flip_follows_the_affine(torus, hcp):
    ring, tangent = torus
    data = _data(hcp, ring, tangent, np.random.default_rng(1))
    neurological = np.diag([2.0, 2.0, 2.0, 1.0])  # FSL stores bvecs x-flipped for these
    flipped = _acq(hcp, hcp.bvecs * [-1.0, 1.0, 1.0])
    assert gradient_orientation(flipped, data, np.ones(ring.shape, bool),
                                neurological)["warning"] == ""
    assert "flipped in x" in gradient_orientation(hcp, data, np.ones(ring.shape, bool),
                                                  neurological)["warning"]


def test_qform_sform_disagreement(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), RADIOLOGICAL)
    img.set_qform(RADIOLOGICAL, code=1)
    img.set_sform(RADIOLOGICAL, code=1)
    nib.save(img, tmp_path / "a.nii.gz")
    assert affine_agreement(nib.load(tmp_path / "a.nii.gz")) == ""
    moved = RADIOLOGICAL.copy()
    moved[0, 3] += 5.0
    img.set_sform(moved, code=1)
    nib.save(img, tmp_path / "b.nii.gz")
    msg = affine_agreement(nib.load(tmp_path / "b.nii.gz"))
    assert "qform and sform disagree" in msg and "b.nii.gz" in msg


def test_shell_jitter(hcp):
    assert shell_jitter(hcp) == ""
    b = hcp.bvals.copy()
    shell3 = np.flatnonzero(np.isclose(b, 3e9))
    b[shell3[::2]] = 2.75e9  # half of the b = 3000 shell written as 2750: split in two
    jittered = Acquisition.from_bvals_bvecs(b, hcp.bvecs, bvals_unit="s/m^2")
    assert "2750 and 3000" in shell_jitter(jittered)


def test_one_slice_of_a_tract_is_enough(torus, hcp):
    """A crop of one slice (272 white-matter voxels) still shows a swapped table."""
    ring, tangent = torus
    data = _data(hcp, ring, tangent, np.random.default_rng(2))[:, :, :1]
    swapped = _acq(hcp, hcp.bvecs[:, [1, 0, 2]])
    res = gradient_orientation(swapped, data, np.ones(data.shape[:3], bool), RADIOLOGICAL)
    assert res["white_matter_voxels"] < 1000 and res["verdict"] == "wrong"
    assert res["best"].startswith("yxz") and "permuted" in res["warning"]
    right = gradient_orientation(hcp, data, np.ones(data.shape[:3], bool), RADIOLOGICAL)
    assert right["verdict"] == "consistent" and right["warning"] == ""


def test_too_little_white_matter_says_the_check_was_skipped(torus, hcp):
    ring, tangent = torus
    data = _data(hcp, ring, tangent, np.random.default_rng(3))[:8, :8, :1]
    res = gradient_orientation(hcp, data, np.ones(data.shape[:3], bool), RADIOLOGICAL)
    assert res["verdict"] == "skipped"
    assert f"{res['white_matter_voxels']} white-matter voxels" in res["warning"]
    assert "needs 50" in res["warning"] and "not checked" in res["warning"]
