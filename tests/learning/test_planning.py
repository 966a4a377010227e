"""``plan``: Cramér–Rao bounds agree with Monte-Carlo fits; unsupported parameters flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microlearn.cli import main
from microlearn.run.plan import plan

TISSUE = {"odi": (0.05, 0.7), "icvf": (0.2, 0.8), "fiso": (0.0, 0.3)}


def _rows(report):
    return {r["name"]: r for r in report["rows"]}


@pytest.fixture(scope="module")
def hcp_single(hcp):
    return _rows(plan("noddi", hcp, snr=30, n_voxels=400, ranges=TISSUE, n_train=4000))


def test_bound_matches_monte_carlo_fits_on_hcp(hcp_single):
    for name in ("odi", "icvf", "fiso"):
        r = hcp_single[name]
        assert r["verdict"] == "supported" and r["unidentifiable"] == 0
        # an efficient fit sits near the bound; the bound is a floor for unbiased fits
        # (measured fit RMSE / median bound: odi 1.8, icvf 1.1, fiso 1.2 over this prior)
        assert 0.7 < r["fit_rmse"] / r["crb_median"] < 2.2, (name, r)
        assert abs(r["fit_bias"]) < 0.5 * r["fit_rmse"]
        assert r["learn_rmse"] < 0.5 * r["prior_std"]


def test_single_shell_noddi_is_flagged(hcp):
    shell = hcp.subset(np.flatnonzero(hcp.bvals < 1.5e9))  # b = 0 and 1000 s/mm² only
    rows = _rows(plan("noddi", shell, snr=30, n_voxels=300, ranges=TISSUE, learn=False))
    assert rows["fiso"]["verdict"] != "supported"
    for name in ("icvf", "fiso"):  # the bound explodes without a second shell
        assert rows[name]["crb_median"] > 5 * 0.03, rows[name]
        assert rows[name]["fit_rmse"] > 2 * rows[name]["crb_median"] or \
            rows[name]["crb_median"] > rows[name]["prior_std"]


def test_per_fibre_icvf_in_crossings_is_not_supported(hcp):
    rows = _rows(plan("noddi", hcp, snr=30, n_fibres=2, n_voxels=200, ranges=TISSUE,
                      learn=False))
    for name in ("icvf_1", "icvf_2"):
        assert rows[name]["verdict"] == "not supported", rows[name]
        # Monte-Carlo fits agree: no better than a fraction of the prior spread
        assert rows[name]["fit_rmse"] > 0.5 * rows[name]["prior_std"]
    # the voxel-level free water stays far better determined than any per-fibre value
    assert rows["fiso"]["fit_rmse"] / rows["fiso"]["prior_std"] < 0.8
    assert rows["fiso"]["crb_median"] < 0.5 * rows["icvf_1"]["crb_median"]


def test_small_diameters_are_not_resolvable_on_hcp(hcp):
    rows = _rows(plan("activeax", hcp, snr=30, n_voxels=200, learn=False))
    d = rows["diameter"]
    assert d["verdict"] != "supported"
    assert d["resolvable_from"] is None or d["resolvable_from"] > 3e-6
    assert rows["icvf"]["verdict"] == "supported"


def test_plan_cli(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = main(["plan", "--model", "noddi", "--scheme", "hcp", "--snr", "30",
                 "--n-voxels", "100", "--no-learn", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "crb_sd" in text and "verdict" in text
    report = json.loads(out.read_text())
    assert {r["name"] for r in report["rows"]} == {"odi", "icvf", "fiso"}
    from microlearn.data.phantom import make_phantom

    folder = make_phantom(shape=(4, 4, 2), seed=0).save(tmp_path / "ph")
    code = main(["plan", "--acquisition", str(folder), "--bvals-unit", "s/mm2",
                 "--n-voxels", "50", "--no-learn"])
    assert code == 0 and "verdict" in capsys.readouterr().out
    code = main(["plan", "--scheme", "hcp", "--snr", "-3", "--n-voxels", "100"])
    err = capsys.readouterr().err
    assert code == 2 and "snr" in err and len(err.strip().splitlines()) == 1
