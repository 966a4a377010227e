"""Exercise checks of lesson 14 (model choice by held-out prediction).

Kept beside :mod:`microlearn.teaching` (same :class:`~microlearn.teaching.Verdict`, same
tolerances) so that lesson 14 can grow without touching the other lessons' checks.

>>> from microlearn.teaching_holdout import check, npe_problem
>>> y, expected, sigma = npe_problem(0)
>>> bool(check("14-npe", float(np.sqrt(np.mean((y - expected) ** 2)) / sigma)))
True
"""

from __future__ import annotations

import numpy as np

from .teaching import Exercise, Verdict, check_in

__all__ = ["EXERCISES", "check", "exercise_ids", "npe_problem"]


def npe_problem(seed: int = 0):
    """Held-out measurements, a model's Rician-expected prediction and σ.

    Returns
    -------
    y : ndarray, shape (40,)
        Measured magnitudes of one voxel (held out).
    expected : ndarray, shape (40,)
        The model's prediction E[M] ≈ sqrt(S² + σ²) at the same measurements.
    sigma : float
        Noise σ in the same units.
    """
    rng = np.random.default_rng(seed)
    sigma = 20.0
    S = 1000.0 * np.exp(-rng.uniform(0.2, 2.5, 40))
    y = np.hypot(S + sigma * rng.normal(size=40), sigma * rng.normal(size=40))
    expected = np.sqrt((0.97 * S) ** 2 + sigma**2)
    return y, expected, sigma


def _npe(seed: int = 0):
    y, expected, sigma = npe_problem(seed)
    return float(np.sqrt(np.mean((y - expected) ** 2)) / sigma)


def _held_out(k: int = 3):
    from .data.examples import dipy_scan
    from .run.holdout import holdout_folds

    return int(np.sum(holdout_folds(dipy_scan("small_101D").acq, k) >= 0))


def _ties(rows):
    return int(sum(r["rank"] == 1 for r in rows))


EXERCISES: dict[str, Exercise] = {
    "14-npe": Exercise("normalised prediction error of one voxel", _npe, rtol=1e-3,
                       hint="sqrt(mean((y - expected)**2)) / sigma."),
    "14-held-out": Exercise("measurements of small_101D held out with K = 3", _held_out,
                            rtol=0, hint="holdout_folds(acq, 3) >= 0; a shell with one "
                                         "measurement is never held out."),
    "14-ties": Exercise("candidates sharing rank 1", _ties, rtol=0,
                        hint="count the rows whose rank is 1 (ties share a rank)."),
}


def exercise_ids() -> list[str]:
    """Ids of lesson 14's exercises."""
    return sorted(EXERCISES)


def check(exercise: str, answer, **context) -> Verdict:
    """Compare a student's answer with the expected one (as :func:`microlearn.teaching.check`).

    Parameters
    ----------
    exercise : str
        An id of :data:`EXERCISES` (``"14-npe"``...).
    answer : float, int or None
    context
        The exercise's inputs (``rows=result.rows`` for ``"14-ties"``).

    Returns
    -------
    Verdict
    """
    return check_in(EXERCISES, exercise, answer, **context)
