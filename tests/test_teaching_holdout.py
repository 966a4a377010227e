"""Lesson 14's exercise checks accept the right answer and reject wrong ones."""

from pathlib import Path

import nbformat
import numpy as np

from microlearn.teaching_holdout import check, exercise_ids, npe_problem

ROOT = Path(__file__).resolve().parents[1]


def test_npe_check():
    y, expected, sigma = npe_problem(0)
    right = np.sqrt(np.mean((y - expected) ** 2)) / sigma
    assert check("14-npe", right)
    for wrong in (right * sigma, np.mean(np.abs(y - expected)) / sigma, right**2):
        verdict = check("14-npe", wrong)
        assert not verdict and "Hint" in verdict.message
    assert not check("14-npe", None) and not check("14-npe", "one")


def test_held_out_count_and_ties():
    from microlearn.data.examples import dipy_scan

    acq = dipy_scan("small_101D").acq
    singles = int(np.sum(np.bincount(acq.shell_index)[acq.shell_index] == 1))
    assert check("14-held-out", acq.n_measurements - singles)  # independent count
    assert not check("14-held-out", acq.n_measurements)
    rows = [{"rank": 1}, {"rank": 1}, {"rank": 3}]
    assert check("14-ties", 2, rows=rows) and not check("14-ties", 1, rows=rows)
    wrong_id = check("14-nothing", 1)  # a wrong call answers with a hint, never a traceback
    assert not wrong_id and "unknown exercise" in str(wrong_id)


def test_lesson_uses_every_check_and_hides_solutions():
    nb = nbformat.read(ROOT / "notebooks" / "14_model_choice_holdout.ipynb", as_version=4)
    code = " ".join(c.source for c in nb.cells if c.cell_type == "code")
    assert all(f'check("{e}"' in code for e in exercise_ids())
    text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## References" in text and "Ferizi" in text and "$" in text
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert solutions and all(c.metadata["jupyter"]["source_hidden"] for c in solutions)
