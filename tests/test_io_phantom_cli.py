"""HCP I/O, the phantom, and the CLI's bad-input handling (exit 2, one line, nothing written)."""

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_dataset, load_maps
from microlearn.data.phantom import LABELS, make_phantom
from microlearn.data.voxels import validate_signal
from microlearn.data.writers import write_maps


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph")
    ph = make_phantom(shape=(12, 12, 3), seed=1)
    ph.save(out)
    return out


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_phantom_truth_matches_regions():
    ph = make_phantom(shape=(20, 20, 4), seed=0, snr=np.inf)
    n = ph.truth["n_fibres"]
    for label, fibres in [("csf", 0), ("gm", 1), ("wm", 1), ("cross2", 2), ("cross3", 3)]:
        sel = ph.labels == LABELS[label]
        assert sel.any() and np.all(n[sel] == fibres)
    assert np.all(ph.truth["fiso"][ph.labels == LABELS["csf"]] == 1.0)
    wm, gm = ph.labels == LABELS["wm"], ph.labels == LABELS["gm"]
    assert ph.truth["odi"][wm].max() < ph.truth["odi"][gm].min()
    c2 = ph.labels == LABELS["cross2"]
    ang = np.degrees(np.arccos(np.abs(np.sum(ph.truth["mu_1"][c2] * ph.truth["mu_2"][c2], -1))))
    assert ang.min() > 40 and ang.max() <= 90
    assert np.all(np.isnan(ph.truth["odi_2"][ph.labels == LABELS["wm"]]))
    # noiseless data equal s0 × model signal at b0
    assert np.allclose(ph.data[ph.mask][:, ph.acq.b0_mask].mean(1), ph.truth["s0"][ph.mask],
                       rtol=1e-5)


def test_phantom_cli_layout(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "phantom", "--out", tmp_path / "p", "--shape", 8, 8, 2,
                             "--kind", "rings")
    assert code == 0
    files = set(os.listdir(tmp_path / "p"))
    assert {"data.nii.gz", "bvals", "bvecs", "nodif_brain_mask.nii.gz", "acquisition.json",
            "truth"} <= files
    bvals = np.loadtxt(tmp_path / "p" / "bvals")
    assert bvals.ndim == 1 and bvals.max() == pytest.approx(3000)
    assert np.loadtxt(tmp_path / "p" / "bvecs").shape == (3, 288)
    truth = load_maps(tmp_path / "p" / "truth")
    assert {"odi", "icvf", "fiso", "mu", "n_fibres", "odi_1", "ffib_2"} <= set(truth)
    assert truth["n_fibres"].dtype == np.uint8 and truth["mu"].shape[-1] == 3


def test_load_dataset_roundtrip(phantom_dir):
    ds = load_dataset(phantom_dir)
    assert ds.shape == (12, 12, 3) and ds.acq.n_measurements == 288
    assert ds.acq.delta[0] == pytest.approx(10.6e-3)
    assert ds.mask.sum() > 0 and ds.load_data().dtype == np.float32


def test_info(phantom_dir, capsys):
    code, out, _ = run_cli(capsys, "info", phantom_dir)
    assert code == 0 and "b=   3000" in out
    problems = out.split("problems  :", 1)[1].strip().splitlines()
    # 12x12x3 voxels: too small for the gradient check to decide, and it says so
    assert len(problems) == 1 and "gradient check cannot decide" in problems[0]


def test_write_maps_atomic(tmp_path):
    maps = {"odi": np.random.default_rng(0).random((3, 3, 2)), "n_fibres": np.ones((3, 3, 2))}
    write_maps(tmp_path, maps, np.eye(4))
    assert sorted(os.listdir(tmp_path)) == ["n_fibres.nii.gz", "odi.nii.gz"]
    assert nib.load(tmp_path / "n_fibres.nii.gz").get_data_dtype() == np.uint8


def test_validate_signal():
    d = np.ones((4, 5))
    d[1, 2] = np.nan
    d[3, 0] = -1
    bad, msg = validate_signal(d)
    assert bad.tolist() == [False, True, False, False] and "1 voxel" in msg  # -1 is data


# bad input: see tests/test_bad_input_matrix.py


def test_nan_voxels_are_marked(phantom_dir, tmp_path, capsys):
    d = _copy(phantom_dir, tmp_path / "d")
    img = nib.load(d / "data.nii.gz")
    data = np.asarray(img.dataobj).copy()
    mask = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj) > 0
    idx = np.argwhere(mask)[:3]
    data[tuple(idx[0])][5] = np.nan
    data[tuple(idx[1])][7] = -5
    data[tuple(idx[2])][:] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine), d / "data.nii.gz")
    code, out, _ = run_cli(capsys, "info", d)
    assert code == 0 and "2 voxel(s) have NaN" in out  # a negative DW sample is data
    with pytest.warns(RuntimeWarning, match="2 voxel"):
        code, _, _ = run_cli(capsys, "fit", d, "--method", "dictionary", "--out", tmp_path / "o")
    assert code == 0
    odi = load_maps(tmp_path / "o")["odi"]
    assert np.isnan(odi[tuple(idx[0])]) and np.isfinite(odi[tuple(idx[1])])
    assert np.isfinite(odi[mask]).sum() == mask.sum() - 2
    assert json.loads((tmp_path / "o" / "fit.json").read_text())["n_voxels"] == mask.sum()


def test_slab_wise_phantom_matches_in_memory(tmp_path):
    from microlearn.data.phantom import save_phantom_slabwise

    out = save_phantom_slabwise(tmp_path / "p", shape=(12, 14, 7), slab=3, radius=1.0,
                                snr=np.inf)
    ds = load_dataset(out)
    ph = make_phantom(shape=(12, 14, 7), snr=np.inf)
    data = ds.load_data()
    assert (out / "data.nii").exists() and data.shape == ph.data.shape
    b0 = ds.acq.b0_mask
    np.testing.assert_array_equal(data[..., b0], ph.data[..., b0])  # layout and S0
    truth = load_maps(out / "truth")
    np.testing.assert_array_equal(truth["labels"], ph.labels)
    np.testing.assert_array_equal(truth["n_fibres"], ph.truth["n_fibres"])
    # the signal follows the truth: re-simulate the single-fibre voxels from truth
    from microlearn.models import noddi

    wm = truth["labels"] == LABELS["wm"]
    m = noddi()
    vals = {k: truth[k][wm].astype(float) for k in ("odi", "icvf", "fiso")}
    vals["mu"] = truth["mu"][wm].astype(float)
    sim = m.signal(ds.acq, vals) * truth["s0"][wm][:, None]
    np.testing.assert_allclose(data[wm], sim, rtol=1e-4, atol=1e-3)
