"""The brain-shaped phantom: anatomy from DIPY's b0, tracts, truth and determinism."""

import numpy as np
import pytest

from microlearn.data.brain_phantom import (
    HCP_FOV_MM,
    LABELS,
    TRACTS,
    anatomy_classes,
    brain_layout,
    segment_b0,
)
from microlearn.data.phantom import make_phantom

SHAPE = (36, 44, 8)


@pytest.fixture(scope="module")
def layout():
    return brain_layout(SHAPE)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(shape=(30, 36, 6), seed=3, snr=np.inf, kind="brain")


def _axis_cos(dirs, axis):
    return np.abs(dirs[..., axis])


def test_anatomy_segmentation_is_brain_like():
    classes, centre = anatomy_classes()
    assert classes.shape == (128, 128, 10)
    brain = classes > 0
    frac = {k: (classes == c).sum() / brain.sum() for k, c in (("csf", 1), ("gm", 2), ("wm", 3))}
    # adult brain tissue fractions inside the brain mask: GM 40-55 %, WM 30-45 %, CSF 5-20 %
    assert 0.35 < frac["gm"] < 0.6 and 0.25 < frac["wm"] < 0.5 and 0.05 < frac["csf"] < 0.2
    # the brain sits in the middle of the 256 mm field of view
    assert np.all(np.abs(centre - 64) < 10)
    # the lateral ventricles (CSF) are near the midline in the top slice
    top = classes[..., -1]
    xs = np.nonzero(top == 1)[0]
    assert abs(np.median(xs) - centre[0]) < 8


def test_segment_b0_rejects_bad_input():
    with pytest.raises(ValueError, match="3-D"):
        segment_b0(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="contrast"):
        segment_b0(np.zeros((16, 16, 3)))


def test_layout_shape_and_fractions(layout):
    labels = layout.labels
    assert labels.shape == SHAPE and layout.directions.shape == SHAPE + (3, 3)
    brain = labels > 0
    assert 0.15 < brain.mean() < 0.4  # a brain in HCP's field of view fills ~a quarter
    wm = np.isin(labels, [3, 4, 5])
    assert 0.3 < (labels == 2).sum() / brain.sum() < 0.6  # coarse 5 mm grid: less GM
    assert 0.25 < wm.sum() / brain.sum() < 0.6
    assert 0.03 < (labels == 1).sum() / brain.sum() < 0.25
    assert (labels == 4).any() and (labels == 5).any()
    # the affine covers HCP's field of view, radiological like HCP's (FSL bvecs unflipped)
    assert np.allclose(np.abs(np.diag(layout.affine)[:3]) * SHAPE, HCP_FOV_MM)
    assert np.linalg.det(layout.affine[:3, :3]) < 0


def test_layout_hcp_size_voxels():
    small = brain_layout((29, 35, 29))  # a fifth of the HCP grid, 6.25 mm voxels
    n = (small.labels > 0).sum() * 6.25**3 / 1000  # ml
    assert 900 < n < 1700  # adult brain volume ~1.1-1.4 l


def test_directions_unit_and_counts(layout):
    n = layout.n_fibres
    norms = np.linalg.norm(layout.directions, axis=-1)
    for k in range(3):
        used = n > k
        assert np.allclose(norms[used, k], 1, atol=1e-5)
        assert np.all(norms[~used & (layout.labels != 2), k] == 0)
    popcount = np.array([bin(t).count("1") for t in range(8)])
    wm = np.isin(layout.labels, [3, 4, 5])
    assert np.array_equal(popcount[layout.tracts[wm]], n[wm])
    assert np.all(layout.tracts[~wm] == 0)


def test_tracts_follow_anatomy(layout):
    """Callosal fibres run left-right, corticospinal inferior-superior, association A-P."""
    single = layout.labels == LABELS["wm"]
    d = layout.directions[..., 0, :]
    cc = single & (layout.tracts == TRACTS["callosal"])
    cst = single & (layout.tracts == TRACTS["corticospinal"])
    assoc = single & (layout.tracts == TRACTS["association"])
    assert cc.sum() > 10 and cst.sum() > 10 and assoc.sum() > 10
    assert np.median(_axis_cos(d[cc], 0)) > 0.9
    assert np.median(_axis_cos(d[cst], 2)) > 0.9
    assert np.median(_axis_cos(d[assoc], 1)) > 0.9
    # the callosum crosses the midline; corticospinal voxels sit either side of it
    x = np.arange(SHAPE[0]) - (SHAPE[0] - 1) / 2
    xs = np.broadcast_to(x[:, None, None], SHAPE)
    assert np.abs(xs[cc]).min() < 1.0
    assert (xs[cst] < 0).any() and (xs[cst] > 0).any()
    # 2-fibre crossings hold two nearly perpendicular fibres
    c2 = layout.labels == LABELS["cross2"]
    cos = np.abs(np.sum(layout.directions[c2, 0] * layout.directions[c2, 1], -1))
    assert np.median(cos) < 0.5


def test_grey_matter_radial(layout):
    gm = layout.labels == LABELS["gm"]
    (x, y, z) = np.meshgrid(*[np.arange(s) - (s - 1) / 2 for s in SHAPE], indexing="ij")
    pos = np.stack([x, y, z], -1) * np.abs(np.diag(layout.affine)[:3])  # mm, voxel axes
    pos = pos / np.linalg.norm(pos, axis=-1, keepdims=True).clip(1e-9)
    cos = np.abs(np.sum(layout.directions[gm, 0] * pos[gm], -1))
    assert np.median(cos) > 0.6  # roughly perpendicular to the brain surface


def test_phantom_truth_consistent(phantom):
    ph = phantom
    n = ph.truth["n_fibres"]
    for name, fibres in (("csf", 0), ("gm", 1), ("wm", 1), ("cross2", 2), ("cross3", 3)):
        sel = ph.labels == LABELS[name]
        assert sel.any() and np.all(n[sel] == fibres)
    assert np.all(ph.truth["fiso"][ph.labels == LABELS["csf"]] == 1.0)
    gm, wm = ph.labels == LABELS["gm"], ph.labels == LABELS["wm"]
    assert ph.truth["odi"][gm].mean() > 3 * ph.truth["odi"][wm].mean()  # grey is dispersed
    assert np.allclose(ph.data[ph.mask][:, ph.acq.b0_mask].mean(1), ph.truth["s0"][ph.mask],
                       rtol=1e-5)
    # truth orientations are the layout's tract directions up to the small jitter
    lay = brain_layout((30, 36, 6))
    c2 = ph.labels == LABELS["cross2"]
    for k in (1, 2):
        cos = np.abs(np.sum(ph.truth[f"mu_{k}"][c2] * lay.directions[c2, k - 1], -1))
        assert np.median(cos) > 0.95
    assert "tracts" in ph.truth and ph.mask.sum() == (lay.labels > 0).sum()


def test_deterministic_with_seed():
    a = make_phantom(shape=(16, 20, 4), seed=5, kind="brain")
    b = make_phantom(shape=(16, 20, 4), seed=5, kind="brain")
    c = make_phantom(shape=(16, 20, 4), seed=6, kind="brain")
    assert np.array_equal(a.data, b.data) and np.array_equal(a.labels, c.labels)
    assert not np.array_equal(a.data, c.data)


def test_bad_kind_and_shape():
    with pytest.raises(ValueError, match="kind"):
        make_phantom(shape=(8, 8, 2), kind="cube")
    with pytest.raises(ValueError, match="HCP"):
        brain_layout((200, 20, 20))


def test_cli_default_is_brain(tmp_path):
    from microlearn.cli import main
    from microlearn.data.dataset import load_maps

    assert main(["phantom", "--out", str(tmp_path / "p"), "--shape", "20", "24", "4"]) == 0
    truth = load_maps(tmp_path / "p" / "truth")
    assert "tracts" in truth and truth["n_fibres"].max() >= 2
    assert np.array_equal(truth["labels"], brain_layout((20, 24, 4)).labels)


def test_slabwise_brain_matches_layout(tmp_path):
    from microlearn.data.dataset import load_maps
    from microlearn.data.phantom import save_phantom_slabwise

    out = save_phantom_slabwise(tmp_path / "s", shape=(16, 20, 6), slab=4, kind="brain",
                                snr=np.inf)
    truth = load_maps(out / "truth")
    lay = brain_layout((16, 20, 6))
    assert np.array_equal(truth["labels"], lay.labels)
    assert np.array_equal(truth["n_fibres"], lay.n_fibres)
