"""compare(): metrics equal a direct computation; the report references every figure."""

from __future__ import annotations

import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_dataset, load_maps
from microlearn.data.phantom import make_phantom
from microlearn.run.compare import compare


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(shape=(10, 10, 3), seed=4).save(tmp_path_factory.mktemp("c") / "ph")


def test_rmse_bias_corr_match_direct_computation(phantom, tmp_path):
    ds = load_dataset(phantom)
    truth = load_maps(phantom / "truth")
    result = compare(ds, "noddi", "mix,polynomial", truth=truth,
                     learn_options={"n_samples": 5000, "n_fibres": 1})
    single = ds.mask & (truth["n_fibres"] == 1)
    assert np.array_equal(result.mask, single)
    for row in result.rows:
        maps = result.runs[row["method"]].maps
        for k in ("odi", "icvf", "fiso"):
            e, t = maps[k][single].astype(float), truth[k][single].astype(float)
            assert np.isclose(row[f"rmse_{k}"], np.sqrt(np.mean((e - t) ** 2)))
            assert np.isclose(row[f"bias_{k}"], np.mean(e - t))
            assert np.isclose(row[f"corr_{k}"], np.corrcoef(e, t)[0, 1])
        assert row["vox_per_s"] > 0 and row["voxels"] == ds.mask.sum()
    assert result.rows[1]["kind"] == "learn" and result.rows[1]["train_seconds"] > 0
    page = result.save_html(tmp_path / "rep")
    text = page.read_text()
    for fig in ("scatter", "runtime", "slices", "errors"):
        assert (tmp_path / "rep" / f"{fig}.png").stat().st_size > 1000
        assert f"src='{fig}.png'" in text
    assert "<table>" in result._repr_html_()


def test_without_truth_reports_agreement(phantom):
    ds = load_dataset(phantom)
    single = load_maps(phantom / "truth")["n_fibres"] == 1
    result = compare(ds, "noddi", ["mix", "interior-point"], evaluate=single)
    assert result.reference == "mix"
    assert result.rows[0]["rmsd_odi"] == 0.0
    assert 0 < result.rows[1]["rmsd_odi"] < 0.05 and result.rows[1]["corr_icvf"] > 0.95


def test_bad_method_and_cli(phantom, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        compare(load_dataset(phantom), "noddi", "mix,fast")
    code = main(["compare", str(phantom), "--methods", "dictionary", "--truth",
                 str(phantom / "truth"), "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0 and "report:" in out
    assert (tmp_path / "r" / "index.html").exists()
    code = main(["compare", str(phantom), "--methods", "nope", "--out", str(tmp_path / "r2")])
    assert code == 2
