"""Shell grouping and the jitter warning on gradient tables from other labs, shipped inside
DIPY's wheel (offline): DSI grids, multi-shell HARDI, a jittered single shell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from microlearn.acquisition import Acquisition
from microlearn.data.qc import shell_jitter

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"


def _table(name, **timings):
    """A DIPY table: rows ``b x y z`` (4 columns) or ``b·g`` (3 columns, comma-separated)."""
    text = (FILES / name).read_text().replace(",", " ")
    rows = np.array([[float(v) for v in line.split()] for line in text.splitlines()
                     if line.strip()])
    if rows.shape[1] == 4:
        b, g = rows[:, 0], rows[:, 1:]
    else:
        b = np.linalg.norm(rows, axis=1)
        g = rows / np.where(b > 0, b, 1)[:, None]
    g = g / np.where(np.linalg.norm(g, axis=1) > 0, np.linalg.norm(g, axis=1), 1)[:, None]
    return Acquisition.from_bvals_bvecs(b, g, bvals_unit="s/mm^2", **timings)


@pytest.mark.parametrize("name", ["dsi515_b_table.txt", "dsi4169_b_table.txt",
                                  "gtab_taiwan_dsi.txt", "grad_514.txt"])
def test_dsi_grids_are_not_called_jitter(name):
    acq = _table(name)
    assert len(acq.shells) > 10  # a q-space grid: many b-values
    assert shell_jitter(acq) == ""


def test_dsi_scan_small_101d_is_not_called_jitter():
    b = np.loadtxt(FILES / "small_101D.bval")
    acq = Acquisition.from_bvals_bvecs(b, np.loadtxt(FILES / "small_101D.bvec"),
                                       bvals_unit="s/mm^2")
    assert shell_jitter(acq) == ""


@pytest.mark.parametrize("name, n_shells", [("gtab_3shell.txt", 3),
                                            ("gtab_isbi2013_2shell.txt", 2)])
def test_multi_shell_tables(name, n_shells):
    acq = _table(name)
    assert len(acq.shells) == n_shells and shell_jitter(acq) == ""


def test_equal_b_with_other_timings_is_another_shell_not_jitter():
    """Two diffusion times at the same b (as the ISBI 2015 and ex vivo protocols have)."""
    one = _table("gtab_isbi2013_2shell.txt")
    n = one.n_measurements
    two = Acquisition(np.r_[one.bvals, one.bvals], np.r_[one.bvecs, one.bvecs],
                      np.r_[np.full(n, 10e-3), np.full(n, 20e-3)],
                      np.r_[np.full(n, 30e-3), np.full(n, 60e-3)], TE=np.full(2 * n, 0.08))
    assert len(two.shells) == 4 and shell_jitter(two) == ""
    same_b_other_te = Acquisition(two.bvals, two.bvecs, 10e-3, 30e-3,
                                  TE=np.r_[np.full(n, 0.06), np.full(n, 0.09)])
    assert len(same_b_other_te.shells) == 4 and shell_jitter(same_b_other_te) == ""


def test_a_shell_split_by_jitter_is_reported():
    acq = _table("gtab_3shell.txt")
    b = acq.bvals.copy()
    top = np.flatnonzero(np.isclose(b, b.max(), rtol=0.05))
    b[top[::2]] *= 0.92  # half of the top shell written 8 % lower
    jittered = Acquisition.from_bvals_bvecs(b, acq.bvecs, bvals_unit="s/m^2")
    assert "look like one shell split by jitter" in shell_jitter(jittered)
