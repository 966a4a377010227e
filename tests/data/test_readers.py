"""Readers: every acquisition form of one protocol gives the same Acquisition."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.acquisition import check_bvals_unit
from microlearn.cli import main
from microlearn.data.dataset import load_dataset
from microlearn.data.readers import (
    acquisition_from_folder,
    find_inputs,
    image_to_scanner,
    read_sidecar,
)
from microlearn.schemes import hemisphere_directions
from microlearn.units import GAMMA


@pytest.fixture(scope="module")
def protocol():
    """Two TEs, two timings, b0 rows with zero timings written in scheme files."""
    rows = []
    for te, d, D, g in ((0.06, 0.01, 0.03, 0.08), (0.09, 0.015, 0.045, 0.06)):
        rows += [(0, 0, 0, 0.0, D, d, te)] * 2
        for v in hemisphere_directions(12, rotation=te):
            rows.append((*v, g, D, d, te))
    a = np.array(rows)
    b = np.where(a[:, 3] > 0, (GAMMA * a[:, 3] * a[:, 5]) ** 2 * (a[:, 4] - a[:, 5] / 3), 0)
    return {"bvecs": a[:, :3], "G": a[:, 3], "Delta": a[:, 4], "delta": a[:, 5],
            "TE": a[:, 6], "bvals": b}


def _same(a: Acquisition, b: Acquisition):
    assert np.allclose(a.bvals, b.bvals, rtol=1e-6, atol=1e3)
    dw = ~a.b0_mask
    assert np.allclose(a.bvecs[dw], b.bvecs[dw], atol=1e-6)
    for k in ("delta", "Delta", "TE"):
        assert np.allclose(getattr(a, k)[dw], getattr(b, k)[dw], rtol=1e-6), k
    assert np.allclose(a.TE, b.TE)
    assert np.allclose(a.G, b.G, rtol=1e-5, atol=1e-9)
    assert a.n_te == b.n_te == 2


def _fmt(arr):
    return "\n".join(" ".join(f"{v:.12g}" for v in np.atleast_1d(r)) for r in arr) + "\n"


def _image(path, n):
    nib.save(nib.Nifti1Image(np.ones((2, 2, 1, n), np.float32), np.diag([2.0, 2, 2, 1])),
             path)


def test_every_form_gives_the_same_acquisition(protocol, tmp_path):
    p = protocol
    n = p["bvals"].size
    timings = {"delta": p["delta"].tolist(), "Delta": p["Delta"].tolist(),
               "TE": p["TE"].tolist()}
    # FSL / HCP + acquisition.json
    fsl = tmp_path / "fsl"
    fsl.mkdir()
    _image(fsl / "data.nii.gz", n)
    (fsl / "bvals").write_text(" ".join(f"{b / 1e6:.12g}" for b in p["bvals"]) + "\n")
    (fsl / "bvecs").write_text(_fmt(p["bvecs"].T))
    (fsl / "acquisition.json").write_text(json.dumps(timings))
    ref = acquisition_from_folder(fsl)
    # Camino STEJSKALTANNER, b0 rows with zero timings (they do not matter)
    st = tmp_path / "st"
    st.mkdir()
    _image(st / "data.nii.gz", n)
    cols = np.column_stack([p["bvecs"], p["G"], p["Delta"], p["delta"], p["TE"]])
    cols[p["G"] == 0, 4:6] = 0.0
    (st / "prot.scheme").write_text("VERSION: STEJSKALTANNER\n" + _fmt(cols))
    _same(ref, acquisition_from_folder(st))
    # Camino BVECTOR (s/m²) + sidecar
    bv = tmp_path / "bv"
    bv.mkdir()
    _image(bv / "data.nii.gz", n)
    (bv / "p.scheme").write_text("VERSION: BVECTOR\n" + _fmt(np.column_stack(
        [p["bvecs"], p["bvals"]])))
    (bv / "acquisition.json").write_text(json.dumps(timings))
    _same(ref, acquisition_from_folder(bv))
    # MRtrix table in scanner axes (image affine diag(2, 2, 2): x flipped)
    mr = tmp_path / "mr"
    mr.mkdir()
    _image(mr / "data.nii.gz", n)
    scan = image_to_scanner(p["bvecs"], np.diag([2.0, 2, 2, 1]))
    assert np.allclose(scan[:, 0], -p["bvecs"][:, 0])
    (mr / "dwi.b").write_text(_fmt(np.column_stack([scan, p["bvals"] / 1e6])))
    (mr / "acquisition.json").write_text(json.dumps(timings))
    _same(ref, acquisition_from_folder(mr))
    # BIDS with BIDS keys, an inherited top-level sidecar and unknown keys
    root = tmp_path / "bids"
    dwi = root / "sub-01" / "ses-1" / "dwi"
    dwi.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    (root / "dwi.json").write_text(json.dumps({"SmallDelta": timings["delta"],
                                               "Manufacturer": "X"}))
    stem = dwi / "sub-01_ses-1_dwi"
    _image(stem.with_suffix(".nii.gz"), n)
    (dwi / "sub-01_ses-1_dwi.bval").write_text((fsl / "bvals").read_text())
    (dwi / "sub-01_ses-1_dwi.bvec").write_text((fsl / "bvecs").read_text())
    (dwi / "sub-01_ses-1_dwi.json").write_text(json.dumps(
        {"EchoTime": timings["TE"], "LargeDelta": timings["Delta"], "PhaseEncodingDirection":
         "j-", "RepetitionTime": 3.2}))
    for target in (root, root / "sub-01", dwi, dwi / "sub-01_ses-1_dwi.nii.gz"):
        ds = load_dataset(target)
        _same(ref, ds.acq)
        assert ds.source["form"] == "bids"
        assert ds.source["bids"]["entities"] == {"sub": "01", "ses": "1"}
    timings_read, ignored = read_sidecar(dwi / "sub-01_ses-1_dwi.json")
    assert set(timings_read) == {"TE", "Delta"}
    assert ignored == ["PhaseEncodingDirection", "RepetitionTime"]
    assert find_inputs(st).form == "camino" and find_inputs(mr).form == "mrtrix"


def test_units_rule_accepts_preclinical_and_refuses_si():
    check_bvals_unit(np.array([0, 1.2e5]), "s/mm^2")  # preclinical, s/mm²
    check_bvals_unit(np.array([0, 1e6]), "s/mm2")  # ex vivo extreme
    check_bvals_unit(np.array([0, 1.2e11]), "s/m2")
    with pytest.raises(ValueError, match="looks like s/m².*--bvals-unit s/m2"):
        check_bvals_unit(np.array([0, 3e9]), "s/mm^2")
    with pytest.raises(ValueError, match="looks like s/mm²"):
        check_bvals_unit(np.array([0, 3000.0]), "s/m^2")
    with pytest.raises(ValueError, match="looks like ms/µm²"):
        check_bvals_unit(np.array([0, 3.0]), "s/mm^2")


def test_b0_rows_with_zero_timings_and_vectors():
    b = np.array([0, 0, 2e9, 2e9])
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    acq = Acquisition(b, v, delta=[0, 0, 0.01, 0.01], Delta=[0, 0, 0.03, 0.03], TE=0.07)
    assert acq.delta[0] == pytest.approx(0.01) and acq.Delta[1] == pytest.approx(0.03)
    assert acq.G[0] == 0
    with pytest.raises(ValueError, match="measurement 2"):
        Acquisition(b, v, delta=[0, 0, 0.0, 0.01], Delta=[0, 0, 0.03, 0.03])


def test_cli_bvals_unit_on_a_preclinical_folder(tmp_path, capsys):
    """b up to 1.2e5 s/mm² passes with the default unit; the same file in s/m² needs the
    flag, and info lists both TE groups."""
    acq = Acquisition.scheme("activeax")
    n = acq.n_measurements
    d = tmp_path / "pre"
    d.mkdir()
    rng = np.random.default_rng(0)
    _image(d / "data.nii.gz", n)
    nib.save(nib.Nifti1Image(100 + rng.random((2, 2, 1, n)).astype(np.float32), np.eye(4)),
             d / "data.nii.gz")
    bv = acq.bvals / 1e6 * 3  # up to ~1.3e5 s/mm²
    (d / "bvals").write_text(" ".join(f"{b:.6g}" for b in bv) + "\n")
    (d / "bvecs").write_text(_fmt(acq.bvecs.T))
    te = np.where(np.arange(n) < n // 2, 0.05, 0.08)
    (d / "acquisition.json").write_text(json.dumps({"delta": acq.delta.tolist(),
                                                    "Delta": acq.Delta.tolist(),
                                                    "EchoTime": te.tolist()}))
    assert main(["info", str(d)]) == 0
    out = capsys.readouterr().out
    assert "TE groups : 2" in out and "50.0 ms" in out and "80.0 ms" in out
    (d / "bvals").write_text(" ".join(f"{b * 1e6:.6g}" for b in bv) + "\n")
    assert main(["info", str(d)]) == 2
    assert "--bvals-unit s/m2" in capsys.readouterr().err
    assert main(["info", str(d), "--bvals-unit", "s/m2"]) == 0


def test_bids_input_gives_a_bids_derivatives_layout(tmp_path):
    """A phantom moved into BIDS: fit writes entity-named maps and a settings sidecar."""
    import shutil

    from microlearn.data.phantom import make_phantom

    src = make_phantom(shape=(6, 6, 2), seed=2).save(tmp_path / "ph")
    dwi = tmp_path / "bids" / "sub-07" / "ses-a" / "dwi"
    dwi.mkdir(parents=True)
    (tmp_path / "bids" / "dataset_description.json").write_text(
        '{"Name": "t", "BIDSVersion": "1.9.0"}')
    stem = "sub-07_ses-a_run-2_dwi"
    shutil.copy(src / "data.nii.gz", dwi / f"{stem}.nii.gz")
    shutil.copy(src / "bvals", dwi / f"{stem}.bval")
    shutil.copy(src / "bvecs", dwi / f"{stem}.bvec")
    acq = json.loads((src / "acquisition.json").read_text())
    (dwi / f"{stem}.json").write_text(json.dumps(
        {"EchoTime": acq["TE"], "SmallDelta": acq["delta"], "LargeDelta": acq["Delta"],
         "Manufacturer": "Siemens"}))
    out = tmp_path / "deriv"
    assert main(["fit", str(tmp_path / "bids" / "sub-07"), "--method", "dictionary",
                 "--out", str(out)]) == 0
    folder = out / "sub-07" / "ses-a" / "dwi"
    names = sorted(p.name for p in folder.iterdir())
    pre = "sub-07_ses-a_run-2_model-noddi"
    assert f"{pre}_param-odi_dwimap.nii.gz" in names
    assert f"{pre}_param-odiStd_dwimap.nii.gz" in names
    assert f"{pre}_param-residualRms_dwimap.nii.gz" in names
    assert all(n.startswith(pre) for n in names), names
    settings = json.loads((folder / f"{pre}_dwimap.json").read_text())
    assert settings["method"] == "dictionary" and settings["noise"]["model"] == "rician"
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "microlearn"
    odi = nib.load(folder / f"{pre}_param-odi_dwimap.nii.gz").get_fdata()
    assert np.isfinite(odi).any()


def test_fit_or_learn_panel_opens_a_bids_or_scheme_folder(protocol, tmp_path):
    """The dashboard's data source reads any supported form inside its data folder."""
    pytest.importorskip("ipywidgets")
    from microlearn.panels.fit_or_learn import DataSource

    p = protocol
    n = p["bvals"].size
    dwi = tmp_path / "bids" / "sub-01" / "dwi"
    dwi.mkdir(parents=True)
    _image(dwi / "sub-01_dwi.nii.gz", n)
    (dwi / "sub-01_dwi.bval").write_text(" ".join(f"{b / 1e6:.12g}" for b in p["bvals"]))
    (dwi / "sub-01_dwi.bvec").write_text(_fmt(p["bvecs"].T))
    (dwi / "sub-01_dwi.json").write_text(json.dumps({"EchoTime": p["TE"].tolist(),
                                                     "SmallDelta": p["delta"].tolist(),
                                                     "LargeDelta": p["Delta"].tolist()}))
    st = tmp_path / "st"
    st.mkdir()
    _image(st / "data.nii.gz", n)
    (st / "p.scheme").write_text("VERSION: STEJSKALTANNER\n" + _fmt(np.column_stack(
        [p["bvecs"], p["G"], p["Delta"], p["delta"], p["TE"]])))
    source = DataSource(data_root=tmp_path)
    a, _ = source.load("folder...", "bids/sub-01")
    b, _ = source.load("folder...", "st")
    assert a.source["form"] == "bids" and b.source["form"] == "camino"
    _same(a.acq, b.acq)


def test_unknown_sidecar_keys_are_listed_in_the_log(tmp_path, caplog):
    side = tmp_path / "acquisition.json"
    side.write_text(json.dumps({"EchoTime": 0.08, "delta": 0.01, "Delta": 0.03,
                                "FlipAngle": 90, "SliceTiming": [0, 1]}))
    with caplog.at_level("INFO", logger="microlearn.data.readers"):
        timings, ignored = read_sidecar(side)
    assert timings == {"delta": 0.01, "Delta": 0.03, "TE": 0.08}
    assert ignored == ["FlipAngle", "SliceTiming"]
    assert "FlipAngle, SliceTiming" in caplog.text
    side.write_text(json.dumps({"EchoTime": 80}))
    with pytest.raises(ValueError, match="looks like ms"):
        read_sidecar(side)
    side.write_text(json.dumps({"TE": 0.08, "EchoTime": 0.09}))
    with pytest.raises(ValueError, match="disagree"):
        read_sidecar(side)
