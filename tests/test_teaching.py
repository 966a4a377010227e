"""The workshop's exercise checks accept the right answer, reject trivial and typical wrong
answers with a hint, and answer a wrong call with a hint instead of a traceback."""

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest

from microlearn import teaching
from microlearn.acquisition import Acquisition
from microlearn.compartments import CylinderGPD, Stick, Zeppelin
from microlearn.simulate import add_noise
from microlearn.teaching import (
    aic_problem,
    check,
    ivim_problem,
    perpendicular_measurement,
    rotation_problem,
    varpro_problem,
)

ROOT = Path(__file__).resolve().parents[1]
B = 1e6  # s/m² per s/mm²


def _stick_mean():
    acq = Acquisition.scheme("hcp")
    shell = np.isclose(acq.bvals, 3e9, rtol=0.05)
    s = Stick().signal(acq, mu=np.array([[0.3, 0.5, 0.81]]), d_par=np.array([1.7e-9]))[0]
    return s[shell].mean()


def _rician_floor():
    return add_noise(np.zeros(200_000), 20.0, s0=1000.0, random_state=0).mean()


def _varpro():
    basis, signal = varpro_problem(0)
    return np.linalg.lstsq(basis, signal, rcond=None)[0]


def _aic():
    rss, k, n = aic_problem(0)
    return int(np.argmin(n * np.log(rss / n) + 2 * k)) + 1


def _changes():
    from microlearn.learning import normalise_by_b0, rotation_invariant_features

    acq, a, b = rotation_problem(0)
    fa = rotation_invariant_features(normalise_by_b0(a, acq)[0], acq)
    fb = rotation_invariant_features(normalise_by_b0(b, acq)[0], acq)
    return [np.linalg.norm(fa - fb) / np.linalg.norm(fa), np.linalg.norm(a - b) / np.linalg.norm(a)]


def _diameter():
    acq = perpendicular_measurement()
    for d_um in np.arange(0.1, 20, 0.01):
        s = CylinderGPD().signal(acq, mu=np.array([[0, 0, 1.0]]), d_par=np.array([1.7e-9]),
                                 diameter=np.array([d_um * 1e-6]))[0, 0]
        if 1 - s > 1 / 30:
            return d_um
    raise AssertionError


def _segmented(b_min=200):
    bvals, s = ivim_problem()
    hi = bvals >= b_min
    slope, icpt = np.polyfit(bvals[hi] * B, np.log(s[hi]), 1)
    return [-slope, 1 - np.exp(icpt)]


def _zeppelin_mean():
    # averaged numerically over many directions: an independent route to the formula
    rng = np.random.default_rng(0)
    g = rng.normal(size=(20000, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    acq = Acquisition(np.full(len(g), 2000 * B), g, np.full(len(g), 0.0106),
                      np.full(len(g), 0.0431))
    return Zeppelin().signal(acq, mu=np.array([[0, 0, 1.0]]), d_par=np.array([2e-9]),
                             d_perp=np.array([0.5e-9]))[0].mean()


def _averages():
    from microlearn.fitting.uncertainty import cramer_rao_std
    from microlearn.models import noddi

    acq = Acquisition.scheme("hcp")
    m = noddi()
    p = m.parameters.pack({"odi": 0.2, "icvf": 0.5, "fiso": 0.1,
                           "mu": np.array([0.6, 0.0, 0.8])})[None]
    s1 = cramer_rao_std(m, acq.subset(acq.bvals < 1.5e9), p, 1 / 30)["icvf"].item()
    s3 = cramer_rao_std(m, acq, p, 1 / 30)["icvf"].item()
    return (s1 / s3) ** 2, s1 / s3, (s3 / s1) ** 2


def _break_even_rows():
    rows = [{"method": "mix", "vox_per_s": 400.0, "train_seconds": 0.0},
            {"method": "dnn (learned)", "vox_per_s": 2e4, "train_seconds": 30.0}]
    return rows, {"rows": rows, "learned": "dnn (learned)", "fitted": "mix"}


def _slab_context():
    mask = np.zeros((6, 6, 10), bool)
    mask[1:5, 1:5, :] = True
    mask[1:3, 1:3, 7:] = False
    return {"mask": mask, "chunk_voxels": 40, "n_meas": 288}


def _snr_context():
    rng = np.random.default_rng(0)
    data = rng.uniform(100, 200, size=(4, 4, 2, 5))
    sigma = rng.uniform(5, 10, size=(4, 4, 2))
    b0 = np.array([True, True, False, False, False])
    mask = np.ones((4, 4, 2), bool)
    mask[0] = False
    data[0] *= 10  # bright voxels outside the brain (e.g. CSF or fat) move the median
    right = np.median(data[..., b0].mean(-1)[mask] / sigma[mask])
    everywhere = np.median(data[..., b0].mean(-1) / sigma)
    one_b0 = np.median(data[..., 0][mask] / sigma[mask])
    ctx = {"data": data, "sigma": sigma, "b0_mask": b0, "mask": mask}
    return right, [everywhere, one_b0, np.median(sigma), 1 / right], ctx


_AV = _averages()
_BE_ROWS, _BE = _break_even_rows()
_SNR_RIGHT, _SNR_WRONG, _SNR = _snr_context()
_SL = _slab_context()
_SEG = _segmented()
_SEG_ALL = _segmented(b_min=0)
_D = _diameter()

# (exercise, a student's independent right answer, wrong answers students give, context)
CASES = [
    ("01-ball", lambda: math.exp(-3.0), [math.exp(-3e-6), math.exp(-0.003), 1.0, 0.0], {}),
    ("01-stick-mean", _stick_mean, [math.exp(-3000e6 * 1.7e-9), 1.0, 0.0], {}),
    ("02-sigma", lambda: 50.0, [20.0, 1000 * 20, 0.0], {}),
    ("02-rician-floor", _rician_floor, [0.0, 50.0, 50 * math.sqrt(2)], {}),
    ("03-varpro", _varpro, [np.full(3, 1 / 3), [0.4, 0.5], np.zeros(3)], {}),
    ("04-aic", _aic, [1, 3, 0], {}),
    ("05-invariance", _changes, [[0.0, 0.0], [0.2275, 0.2275], 0.0, [1.0, 0.2275],
                                 [-0.01, 0.2275]], {}),
    ("07-break-even", lambda: 30.0 / (1 / 400 - 1 / 2e4),
     [2e4 / 400, 30.0 * 2e4, 30.0 * 400, 0.0], _BE),
    ("08-slab-memory", lambda: None, [0.0, 40 * 288 * 8 / 1e6, 1.0], _SL),
    ("09-diameter", lambda: _D, [_D * 1e-6, _D / 2, 0.0, 1.0], {}),
    ("10-segmented", lambda: _SEG, [[0.0, 0.0], [_SEG[0] * B, _SEG[1]], _SEG_ALL,
                                    [_SEG[0], -_SEG[1]], [0.8e-9, 0.0]], {}),
    ("11-zeppelin-mean", _zeppelin_mean, [math.exp(-2000 * B * 0.5e-9),
                                          math.sqrt(math.pi) / 2 / math.sqrt(3.0)
                                          * math.erf(math.sqrt(3.0)), 1.0, 0.0], {}),
    ("12-averages", lambda: _AV[0], [_AV[1], _AV[2], 1.0, 0.0], {}),
    ("13-snr", lambda: _SNR_RIGHT, _SNR_WRONG, _SNR),
]


def _slab_answer():
    from microlearn.run.chunked import plan_slabs

    m = _SL["mask"]
    return 8 * max(int(m[:, :, a:b].sum()) for a, b in plan_slabs(m, 40)) * 288 / 1e6


CASES[8] = ("08-slab-memory", _slab_answer, CASES[8][2], _SL)


@pytest.mark.parametrize("exercise,right,wrongs,context", CASES, ids=[c[0] for c in CASES])
def test_check_accepts_right_rejects_wrong(exercise, right, wrongs, context):
    assert check(exercise, right(), **context)
    for wrong in wrongs:
        verdict = check(exercise, wrong, **context)
        assert not verdict and "Hint" in verdict.message, (wrong, verdict)
    pending = check(exercise, None, **context)
    assert not pending and pending.pending and "your turn" in pending._repr_html_()
    for junk in ("a string", [1.0, 2.0, 3.0, 4.0, 5.0], float("nan")):
        verdict = check(exercise, junk, **context)
        assert not verdict and "Hint" in verdict.message


def test_at_bound_share_from_the_maps():
    at_bound = np.zeros((3, 3, 2), np.uint8)
    at_bound[0, :, 0] = 1
    mask = np.ones((3, 3, 2), bool)
    mask[2] = False
    ctx = {"maps": {"at_bound": at_bound}, "mask": mask}
    assert check("06-at-bound", 3 / 12, **ctx)
    for wrong in (3 / 18, 3, 0.0, 1.0):
        assert not check("06-at-bound", wrong, **ctx)


def test_wrong_calls_give_a_hint_not_a_traceback():
    # context forgotten, context of the wrong kind, a method that is not compared
    for verdict in (check("07-break-even", 1.0),
                    check("07-break-even", 1.0, rows=_BE_ROWS, learned="polynomial",
                          fitted="mix"),
                    check("08-slab-memory", 1.0, mask=None, chunk_voxels=40, n_meas=288),
                    check("06-at-bound", 0.5, maps={}, mask=np.ones(3, bool)),
                    check("13-snr", 1.0, data=None, sigma="σ", b0_mask=[True], mask=None)):
        assert not verdict and "Hint" in verdict.message
    unknown = check("99-nothing", 1.0)
    assert not unknown and "choose one of" in unknown.message


def test_display():
    good, bad = check("02-sigma", 50), check("02-sigma", 49)
    assert "✔" in good._repr_html_() and "✘" in bad._repr_html_()
    assert "correct" in repr(good) and "not yet" in repr(bad)


def test_every_exercise_is_tested_and_used_in_a_lesson():
    tested = {c[0] for c in CASES} | {"06-at-bound"}
    assert tested == set(teaching.exercise_ids())
    used = set()
    for path in (ROOT / "notebooks").glob("[0-9]*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                used |= {e for e in tested if f'check("{e}"' in cell.source}
    assert used == tested


def test_lessons_have_narrative_references_exercises_and_hidden_solutions():
    lessons = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert len(lessons) >= 13
    for path in lessons:
        nb = nbformat.read(path, as_version=4)
        text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert len(text.split()) > 300, path.name
        assert "## References" in text and "$" in text, path.name
        assert "## What to remember" in text, path.name
        solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert solutions, path.name
        assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions)
        assert any("check(" in c.source for c in nb.cells if c.cell_type == "code")


def test_stored_outputs_show_the_right_state():
    """Solutions show green; unanswered exercises grey, never red."""
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or "check(" not in cell.source:
                continue
            html = " ".join(o.get("data", {}).get("text/html", "")
                            for o in cell.get("outputs", []))
            assert "✘" not in html, (path.name, cell.source)
            if "solution" in cell.metadata.get("tags", []):
                assert "✔ correct" in html, (path.name, cell.source)
