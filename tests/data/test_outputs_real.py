"""Maps of DIPY's shipped scans keep the input's header codes and carry their units."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from microlearn.cli import main
from microlearn.models import get_model
from microlearn.run.fit_volume import map_units, output_names

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"


@pytest.mark.parametrize("name, dwi", [("small_64D", "small_64D.nii"),
                                       ("small_25", "small_25.nii.gz")])
def test_maps_keep_qform_sform_and_state_units(tmp_path, name, dwi, capsys):
    src = nib.load(FILES / dwi)
    out = tmp_path / "maps"
    assert main(["fit", "--dwi", str(FILES / dwi), "--bvals", str(FILES / f"{name}.bval"),
                 "--bvecs", str(FILES / f"{name}.bvec"), "--method", "dictionary",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "σ not estimated" in err and "1 b0 volume(s)" in err  # one b0: said, not silent
    assert "timings: the data give no" in err
    info = json.loads((out / "fit.json").read_text())
    for m in ("odi", "icvf", "s0", "residual_rms", "mu"):
        img = nib.load(out / f"{m}.nii.gz")
        for code in ("qform_code", "sform_code"):
            assert int(img.header[code]) == int(src.header[code]), (m, code)
        assert np.allclose(img.affine, src.affine, atol=1e-4)
        assert img.header.get_xyzt_units()[0] == "mm"
        assert info["units"][m]["unit"] in img.header["descrip"].item().decode()
    assert info["units"]["odi"]["unit"] == "1" and "vector" in info["units"]["mu"]["unit"]


def test_length_maps_are_si_with_micrometre_display():
    """One decision for every command: files hold SI (m) and say so; plan, fit warnings and
    panels show µm through the same display scale."""
    model = get_model("activeax")
    units = map_units(model, output_names(model, False))
    assert units["diameter"] == {"unit": "m", "display_unit": "µm", "display_scale": 1e-6}
    assert units["diameter_std"]["display_unit"] == "µm"
    assert units["icvf"]["unit"] == "1"


def test_uncompressed_maps_are_the_same_maps(tmp_path):
    from microlearn.data.dataset import load_maps

    args = ["--dwi", str(FILES / "small_64D.nii"), "--bvals", str(FILES / "small_64D.bval"),
            "--bvecs", str(FILES / "small_64D.bvec"), "--method", "dictionary"]
    assert main(["fit", *args, "--out", str(tmp_path / "gz")]) == 0
    assert main(["fit", *args, "--uncompressed", "--out", str(tmp_path / "raw")]) == 0
    assert (tmp_path / "raw" / "odi.nii").is_file() and not list(
        (tmp_path / "raw").glob("*.nii.gz"))
    gz, raw = load_maps(tmp_path / "gz"), load_maps(tmp_path / "raw")
    assert sorted(gz) == sorted(raw)
    for k in gz:
        assert np.array_equal(gz[k], raw[k], equal_nan=True), k
    assert main(["fit", *args, "--uncompressed", "--out", str(tmp_path / "raw")]) == 2  # exists
