"""What the commands say about DIPY's shipped scans: every check that did not run says
why, assumed timings are named, b-values the timings cannot produce stop timing-dependent
fits, and the b0 threshold is the user's to set."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_dataset
from microlearn.data.qc import depends_on_timings, timing_warnings
from microlearn.models import get_model

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"


def _args(name):
    dwi = FILES / (f"{name}.nii" if name == "small_64D" else f"{name}.nii.gz")
    return ["--dwi", str(dwi), "--bvals", str(FILES / f"{name}.bval"),
            "--bvecs", str(FILES / f"{name}.bvec")]


@pytest.mark.parametrize("name", ["small_64D", "small_101D", "small_25"])
def test_info_never_says_none_for_a_check_it_did_not_run(name, capsys):
    assert main(["info", *_args(name)]) == 0
    out = capsys.readouterr().out
    assert "problems  : none" not in out  # no timings in these files: always said
    assert "using HCP's (δ = 10.6 ms, Δ = 43.1 ms, TE = 89.5 ms)" in out
    assert "--acquisition FILE.json" in out
    gradient = [ln for ln in out.splitlines() if "gradient" in ln]
    if name == "small_64D":
        assert gradient == []  # checked and confirmed
    else:  # named a fix or said it could not decide
        assert gradient and ("cannot decide" in gradient[0] or "look" in gradient[0])


def test_preclinical_b_with_assumed_timings_is_refused_for_diameters(tmp_path, capsys):
    """b up to 1.2·10⁵ s/mm² (an ex vivo cord) without timings: HCP's δ/Δ would need
    ~600 mT/m; a diameter fit refuses, a NODDI fit warns."""
    b = np.loadtxt(FILES / "small_25.bval") * 60  # 2000 -> 120000 s/mm²
    np.savetxt(tmp_path / "x.bval", b[None], fmt="%g")
    shutil.copy(FILES / "small_25.bvec", tmp_path / "x.bvec")
    args = ["--dwi", str(FILES / "small_25.nii.gz"), "--bvals", str(tmp_path / "x.bval"),
            "--bvecs", str(tmp_path / "x.bvec")]
    ds = load_dataset(dwi=FILES / "small_25.nii.gz", bvals=tmp_path / "x.bval",
                      bvecs=tmp_path / "x.bvec")
    lines, refusal = timing_warnings(ds.acq)
    assert "beyond any human scanner" in refusal and refusal in lines
    assert depends_on_timings(get_model("activeax"), ds.acq)
    assert not depends_on_timings(get_model("noddi"), ds.acq)
    assert main(["fit", *args, "--model", "activeax", "--out", str(tmp_path / "a")]) == 2
    assert "beyond any human scanner" in capsys.readouterr().err
    assert not (tmp_path / "a" / "fit.json").exists()
    with_timings = tmp_path / "t.json"
    with_timings.write_text('{"delta": 0.005, "Delta": 0.012, "TE": 0.03}')
    ds = load_dataset(dwi=FILES / "small_25.nii.gz", bvals=tmp_path / "x.bval",
                      bvecs=tmp_path / "x.bvec", acquisition=with_timings)
    assert timing_warnings(ds.acq) == ([], "")


def test_b0_threshold_is_settable_and_a_low_b_shell_is_pointed_out(tmp_path, capsys):
    """A b ≈ 41 s/mm² shell (as in an ex vivo cord protocol) counts as b0 by default, said
    so; --b0-threshold 20 makes it diffusion-weighted."""
    b = np.loadtxt(FILES / "small_64D.bval")
    dw = np.flatnonzero(b > 100)
    b[dw[:8]] = 41.0
    np.savetxt(tmp_path / "x.bval", b[None], fmt="%g")
    args = ["--dwi", str(FILES / "small_64D.nii"), "--bvals", str(tmp_path / "x.bval"),
            "--bvecs", str(FILES / "small_64D.bvec")]
    assert main(["info", *args]) == 0
    out = capsys.readouterr().out
    assert "b0        : 9 volume(s)" in out
    assert "8 volume(s) with b between 41 and 41 s/mm² count as b0" in out
    assert "--b0-threshold 20" in out
    assert main(["info", *args, "--b0-threshold", "20"]) == 0
    out = capsys.readouterr().out
    assert "b0        : 1 volume(s)" in out and "count as b0" not in out
    assert main(["info", *args, "--b0-threshold", "-1"]) == 2
