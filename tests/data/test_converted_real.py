"""DIPY's shipped scans converted to the forms other labs use: Camino scheme files with
``%`` comment headers and no VERSION line, BIDS runs given with ``--dwi``, dcm2niix names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from microlearn.data.dataset import load_dataset
from microlearn.data.readers import read_scheme
from microlearn.units import GAMMA

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"
TIMINGS = {"delta": 0.0129, "Delta": 0.0218, "TE": 0.057}  # any plausible PGSE timings


def _fsl():
    return (load_dataset(dwi=FILES / "small_101D.nii.gz", bvals=FILES / "small_101D.bval",
                         bvecs=FILES / "small_101D.bvec",
                         delta=TIMINGS["delta"], Delta=TIMINGS["Delta"], TE=TIMINGS["TE"]))


def _write_scheme(path, acq, *, header, columns):
    d, D = TIMINGS["delta"], TIMINGS["Delta"]
    lines = [header]
    for b, g in zip(acq.bvals, acq.bvecs):
        if columns == 7:
            G = np.sqrt(b / (D - d / 3)) / (GAMMA * d)
            lines.append(f"{g[0]:.8f} {g[1]:.8f} {g[2]:.8f} {G:.10g} {D} {d} {TIMINGS['TE']}")
        else:
            lines.append(f"{g[0]:.8f} {g[1]:.8f} {g[2]:.8f} {b / 1e6:.6g}  # s/mm²")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("header, columns", [
    ("% ISBI-style header: x y z |G| Delta delta TE\n%  (SI units, no VERSION line)", 7),
    ("# MRtrix-like rows without a VERSION line, b in s/mm²", 4)])
def test_scheme_without_version_line_is_read_by_its_columns(tmp_path, header, columns):
    ref = _fsl()
    _write_scheme(tmp_path / "s.scheme", ref.acq, header=header, columns=columns)
    table = read_scheme(tmp_path / "s.scheme")
    assert np.allclose(table["bvals"], ref.acq.bvals, rtol=1e-6, atol=1e3)
    ds = load_dataset(dwi=FILES / "small_101D.nii.gz", scheme=tmp_path / "s.scheme",
                      delta=TIMINGS["delta"], Delta=TIMINGS["Delta"], TE=TIMINGS["TE"])
    assert np.allclose(ds.acq.bvals, ref.acq.bvals, rtol=1e-6, atol=1e3)
    dw = ~ref.acq.b0_mask
    assert np.allclose(ds.acq.bvecs[dw], ref.acq.bvecs[dw], atol=1e-6)
    assert np.allclose(ds.acq.delta[dw], TIMINGS["delta"])


def test_percent_comments_in_fsl_files(tmp_path):
    for ext in ("bval", "bvec"):
        text = (FILES / f"small_64D.{ext}").read_text()
        (tmp_path / f"t.{ext}").write_text(f"% exported by MATLAB\n{text}# end\n")
    ds = load_dataset(dwi=FILES / "small_64D.nii", bvals=tmp_path / "t.bval",
                      bvecs=tmp_path / "t.bvec")
    assert ds.acq.n_measurements == 65


@pytest.mark.parametrize("bids", [True, False])
def test_dwi_file_alone_finds_its_sidecars(tmp_path, bids):
    """``--dwi X.nii.gz`` finds X.bval/X.bvec/X.json as the positional form does: BIDS runs
    (with inheritance) and dcm2niix output."""
    folder = tmp_path / ("sub-01/dwi" if bids else "dcm2niix")
    folder.mkdir(parents=True)
    stem = "sub-01_dwi" if bids else "series_7_DTI"
    shutil.copy(FILES / "small_25.nii.gz", folder / f"{stem}.nii.gz")
    shutil.copy(FILES / "small_25.bval", folder / f"{stem}.bval")
    shutil.copy(FILES / "small_25.bvec", folder / f"{stem}.bvec")
    (folder / f"{stem}.json").write_text(json.dumps(
        {"EchoTime": 0.08, "SmallDelta": 0.02, "LargeDelta": 0.04, "Manufacturer": "GE"}))
    ds = load_dataset(dwi=folder / f"{stem}.nii.gz")
    assert ds.acq.n_measurements == 26
    dw = ~ds.acq.b0_mask
    assert np.allclose(ds.acq.TE, 0.08) and np.allclose(ds.acq.delta[dw], 0.02)
    assert ds.source["form"] == ("bids" if bids else "fsl")
    if bids:
        assert ds.source["bids"]["entities"] == {"sub": "01"}
        positional = load_dataset(tmp_path / "sub-01")
        assert np.allclose(positional.acq.Delta, ds.acq.Delta)


def test_comma_separated_tables(tmp_path):
    """MATLAB's csvwrite and DIPY's own tables separate numbers with commas."""
    for ext in ("bval", "bvec"):
        rows = np.atleast_2d(np.loadtxt(FILES / f"small_101D.{ext}"))
        (tmp_path / f"t.{ext}").write_text(
            "\n".join(",".join(f"{v:.10g}" for v in r) for r in rows) + "\n")
    ds = load_dataset(dwi=FILES / "small_101D.nii.gz", bvals=tmp_path / "t.bval",
                      bvecs=tmp_path / "t.bvec")
    assert np.allclose(ds.acq.bvals, _fsl().acq.bvals)
