"""Fibre counting says when the data cannot support 3 fibres (low angular resolution)."""

import warnings

import numpy as np
import pytest

import microlearn as ml
from microlearn.crossings.dipy_tools import countable_fibres, fibre_cap, supported_sh_order
from microlearn.data.examples import dipy_scan
from microlearn.fitting.selection import fit_auto
from microlearn.schemes import hemisphere_directions


def _one_shell(n_dirs, b=2e9):
    bvecs = np.vstack([[0, 0, 1], hemisphere_directions(n_dirs)])
    bvals = np.r_[0.0, np.full(n_dirs, b)]
    n = n_dirs + 1
    return ml.Acquisition(bvals, bvecs, np.full(n, 0.0106), np.full(n, 0.0431))


@pytest.mark.parametrize("n_dirs,order,fibres", [(14, 2, 1), (15, 4, 2), (25, 4, 2),
                                                 (28, 6, 3), (45, 8, 3), (90, 8, 3)])
def test_order_and_countable_fibres_follow_the_directions(n_dirs, order, fibres):
    acq = _one_shell(n_dirs)
    assert supported_sh_order(acq) == order
    assert countable_fibres(order) == fibres
    cap, why = fibre_cap(acq, 3)
    assert cap == fibres
    assert (why is None) == (fibres == 3)
    if why:
        assert f"{n_dirs} gradient directions" in why and f"order {order}" in why


def test_hcp_counts_three_fibres():
    assert fibre_cap(ml.Acquisition.scheme("hcp"), 3) == (3, None)


def test_small_25_is_never_given_three_fibres_and_says_why():
    """DIPY's small_25 (1 b0 + 25 directions at b = 2000): order 4 at most, so no voxel
    is given 3 fibres (it found 3 in 96 of 160 white-matter voxels with order 8)."""
    ds = dipy_scan("small_25")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit_auto("noddi", ds.acq, ds.load_data(), max_fibres=3)
    assert any("25 gradient directions" in str(w.message) for w in caught)
    counts = np.asarray(res.n_fibres)[res.mask]
    assert counts.max() <= 2
    assert res.model.n_fibres == 3  # the maps keep the requested layout
