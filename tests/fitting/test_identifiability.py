"""fit warns when the acquisition cannot determine a map it writes (Cramér–Rao std vs prior)."""

from __future__ import annotations

import json

import numpy as np

from microlearn.acquisition import Acquisition
from microlearn.cli import main
from microlearn.data.phantom import make_phantom


def _phantom(tmp_path, acq, name):
    return make_phantom(shape=(8, 8, 2), seed=4, acq=acq, kind="rings").save(tmp_path / name)


def test_single_shell_noddi_is_flagged_and_hcp_is_not(tmp_path, capsys):
    hcp = Acquisition.scheme("hcp")
    single = hcp.subset(np.flatnonzero(hcp.bvals < 1.5e9))  # b0s + the b = 1000 shell
    for acq, name in ((hcp, "hcp"), (single, "single")):
        d = _phantom(tmp_path, acq, name)
        assert main(["fit", str(d), "--out", str(tmp_path / f"out_{name}")]) == 0
    err = capsys.readouterr().err
    ident = {name: json.loads((tmp_path / f"out_{name}" / "fit.json").read_text())
             ["identifiability"] for name in ("hcp", "single")}
    assert all(row["determined"] for row in ident["hcp"].values()), ident["hcp"]
    assert not ident["single"]["icvf"]["determined"]
    assert not ident["single"]["fiso"]["determined"]
    assert "icvf: median Cramér–Rao std" in err and "microlearn plan" in err
    assert err.count("does not determine") == sum(
        not row["determined"] for row in ident["single"].values())
