"""The workshop's exercise checks accept the right answer and reject wrong ones."""

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest

from microlearn import teaching
from microlearn.acquisition import Acquisition
from microlearn.compartments import Stick
from microlearn.simulate import add_noise
from microlearn.teaching import aic_problem, check, rotation_problem, varpro_problem

ROOT = Path(__file__).resolve().parents[1]


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


def _features():
    from microlearn.learning import normalise_by_b0, rotation_invariant_features

    acq, a, b = rotation_problem(0)
    fa = rotation_invariant_features(normalise_by_b0(a, acq)[0], acq)
    fb = rotation_invariant_features(normalise_by_b0(b, acq)[0], acq)
    return np.linalg.norm(fa - fb) / np.linalg.norm(fa)


# (exercise, a student's independent right answer, wrong answers students give, context)
CASES = [
    ("01-ball", lambda: math.exp(-3.0), [math.exp(-3e-6), math.exp(-0.003), 1.0], {}),
    ("01-stick-mean", _stick_mean, [math.exp(-3000e6 * 1.7e-9), 1.0, 0.0], {}),
    ("02-sigma", lambda: 50.0, [20.0, 1000 * 20], {}),
    ("02-rician-floor", _rician_floor, [0.0, 50.0], {}),
    ("03-varpro", _varpro, [np.full(3, 1 / 3), [0.4, 0.5]], {}),
    ("04-aic", _aic, [1, 3], {}),
    ("05-invariance", _features, [0.2275, 1.0, -0.01], {}),
]


@pytest.mark.parametrize("exercise,right,wrongs,context", CASES, ids=[c[0] for c in CASES])
def test_check_accepts_right_rejects_wrong(exercise, right, wrongs, context):
    assert check(exercise, right(), **context)
    for wrong in wrongs:
        verdict = check(exercise, wrong, **context)
        assert not verdict and "Hint" in verdict.message
    assert not check(exercise, None, **context)
    assert not check(exercise, "a string", **context)


def test_speedup_and_slabs_use_context():
    rows = [{"method": "mix", "vox_per_s": 400.0}, {"method": "dnn (learned)", "vox_per_s": 2e4}]
    assert check("07-speedup", 50.0, rows=rows, learned="dnn (learned)", fitted="mix")
    assert not check("07-speedup", 1 / 50, rows=rows, learned="dnn (learned)", fitted="mix")
    with pytest.raises(ValueError, match="not in the comparison"):
        check("07-speedup", 1.0, rows=rows, learned="polynomial", fitted="mix")
    from microlearn.run.chunked import plan_slabs

    mask = np.zeros((6, 6, 10), bool)
    mask[1:5, 1:5, :] = True
    n = len(plan_slabs(mask, 40))
    assert n > 1 and check("08-slabs", n, mask=mask, chunk_voxels=40)
    assert not check("08-slabs", n + 1, mask=mask, chunk_voxels=40)


def test_unknown_exercise_and_display():
    with pytest.raises(ValueError, match="unknown"):
        check("99-nothing", 1.0)
    good, bad = check("02-sigma", 50), check("02-sigma", 49)
    assert "✔" in good._repr_html_() and "✘" in bad._repr_html_()
    assert "correct" in repr(good) and "not yet" in repr(bad)


def test_every_exercise_is_tested_and_used_in_a_lesson():
    tested = {c[0] for c in CASES} | {"07-speedup", "08-slabs"}
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
    own = [p for p in lessons if p.stem != "06_real_scan"]
    assert len(own) >= 7
    for path in own:
        nb = nbformat.read(path, as_version=4)
        text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert len(text.split()) > 300, path.name
        assert "## References" in text and "$" in text, path.name
        solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert solutions, path.name
        assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions)
        assert any("check(" in c.source for c in nb.cells if c.cell_type == "code")
