"""Exercise checks for the workshop notebooks.

Each lesson in ``notebooks/`` ends its exercises with a call such as
``check("01-ball", answer)``. The expected value is computed here with the library (never
stored), compared within a tolerance, and the call returns a :class:`Verdict` that shows
as a green or red line in JupyterLab and Voila. Problems that need data (a matrix to
solve, costs to compare) come from the ``*_problem`` functions with a fixed seed, so the
student and the checker see the same numbers.

>>> from microlearn.teaching import check
>>> bool(check("02-sigma", 50.0))
True
>>> bool(check("02-sigma", 20.0))
False
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .units import S_PER_MM2

__all__ = ["EXERCISES", "Verdict", "aic_problem", "check", "exercise_ids",
           "rotation_problem", "varpro_problem"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``bool(verdict)`` is whether the answer is right.

    Attributes
    ----------
    exercise : str
        Exercise id (e.g. ``"01-ball"``).
    ok : bool
        Whether the answer is within tolerance of the expected value.
    message : str
        What was wrong, or a short confirmation.
    """

    exercise: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        mark = "correct" if self.ok else "not yet"
        return f"[{self.exercise}] {mark}: {self.message}"

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "✔ correct") if self.ok else ("#b42318", "✘ not yet")
        return (f'<div style="color:{colour};font-weight:600">{mark} '
                f'<span style="font-weight:400">[{html.escape(self.exercise)}] '
                f"{html.escape(self.message)}</span></div>")


@dataclass(frozen=True)
class Exercise:
    """An exercise: how to compute the expected answer and how close is close enough."""

    title: str
    expected: Callable[..., object]
    rtol: float = 1e-2
    atol: float = 0.0
    hint: str = ""


# --- problems the notebooks and the checks share ---------------------------------------


def varpro_problem(seed: int = 0):
    """A variable-projection exercise: compartment signals and a noiseless mixture.

    Returns
    -------
    basis : ndarray, shape (N, 3)
        Signals of a stick (along x, d∥ = 1.7e-9 m²/s), a zeppelin (d⊥ = 0.5e-9 m²/s) and
        a ball (3e-9 m²/s) on the HCP scheme, one column each.
    signal : ndarray, shape (N,)
        ``basis @ fractions`` for hidden fractions that sum to one.
    """
    from .acquisition import Acquisition
    from .compartments import Ball, Stick, Zeppelin

    acq = Acquisition.scheme("hcp")
    mu = np.array([[1.0, 0.0, 0.0]])
    basis = np.stack([
        Stick().signal(acq, mu=mu, d_par=np.array([1.7e-9]))[0],
        Zeppelin().signal(acq, mu=mu, d_par=np.array([1.7e-9]),
                          d_perp=np.array([0.5e-9]))[0],
        Ball().signal(acq, d_iso=np.array([3e-9]))[0],
    ], axis=1)
    rng = np.random.default_rng(seed)
    fractions = rng.dirichlet([3.0, 3.0, 1.0])
    return basis, basis @ fractions


def aic_problem(seed: int = 0):
    """A model-selection exercise: residual sums of squares of 1-, 2- and 3-fibre fits.

    Returns
    -------
    rss : ndarray, shape (3,)
        Residual sum of squares (signal units²) of the fits with 1, 2 and 3 fibres.
    n_params : ndarray, shape (3,)
        Free parameters of each fit.
    n_meas : int
        Measurements per voxel.
    """
    rng = np.random.default_rng(seed)
    n_meas = 288
    base = rng.uniform(0.05, 0.08)
    true_n = int(rng.integers(1, 4))
    gains = [0.0, 0.4 if true_n >= 2 else 0.004, 0.2 if true_n == 3 else 0.002]
    rss = base * np.cumprod([1.0 - g for g in gains]) * n_meas * 1e-3
    n_params = np.array([5, 9, 13])
    return rss, n_params, n_meas


def rotation_problem(seed: int = 0):
    """The same tissue with its fibre in two orientations, on the HCP scheme.

    Returns
    -------
    acq : Acquisition
    signal_a, signal_b : ndarray, shape (1, N)
        NODDI signals (ODI 0.2, ICVF 0.6, fiso 0.1) with the fibre along two random
        directions.
    """
    from .acquisition import Acquisition
    from .models import noddi

    acq = Acquisition.scheme("hcp")
    model = noddi()
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(2, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    out = []
    for d in dirs:
        params = model.parameters.pack({"odi": 0.2, "icvf": 0.6, "fiso": 0.1, "mu": d})
        out.append(np.atleast_2d(model.signal(acq, params)))
    return acq, out[0], out[1]


# --- expected answers ------------------------------------------------------------------


def _ball_signal():
    return math.exp(-1000 * S_PER_MM2 * 3e-9)


def _stick_mean(b_s_per_mm2: float = 3000.0, d_par: float = 1.7e-9):
    x = b_s_per_mm2 * S_PER_MM2 * d_par
    return math.sqrt(math.pi) / (2 * math.sqrt(x)) * math.erf(math.sqrt(x))


def _rician_floor(sigma: float = 50.0):
    return sigma * math.sqrt(math.pi / 2)


def _varpro(seed: int = 0):
    basis, signal = varpro_problem(seed)
    return np.linalg.lstsq(basis, signal, rcond=None)[0]


def _aic(seed: int = 0):
    rss, k, n = aic_problem(seed)
    aic = n * np.log(rss / n) + 2 * k
    return int(np.argmin(aic)) + 1


def _feature_change(seed: int = 0):
    from .learning.features import normalise_by_b0, rotation_invariant_features

    acq, a, b = rotation_problem(seed)
    fa = rotation_invariant_features(normalise_by_b0(a, acq)[0], acq)
    fb = rotation_invariant_features(normalise_by_b0(b, acq)[0], acq)
    return float(np.linalg.norm(fa - fb) / np.linalg.norm(fa))


def _speedup(rows, learned: str, fitted: str):
    by = {r["method"]: r for r in rows}
    for name in (learned, fitted):
        if name not in by:
            raise ValueError(f"method {name!r} is not in the comparison; it has {sorted(by)}.")
    return by[learned]["vox_per_s"] / by[fitted]["vox_per_s"]


def _n_slabs(mask, chunk_voxels: int):
    from .run.chunked import plan_slabs

    return len(plan_slabs(np.asarray(mask, bool), chunk_voxels))


EXERCISES: dict[str, Exercise] = {
    "01-ball": Exercise("free-water signal at b = 1000 s/mm²", lambda: _ball_signal(),
                        rtol=1e-3, hint="S/S0 = exp(-b D) with b in s/m² and D in m²/s."),
    "01-stick-mean": Exercise("powder-averaged stick signal at b = 3000 s/mm²",
                              lambda: _stick_mean(), rtol=2e-2,
                              hint="average the stick's signal over the 90 directions "
                                   "of the b = 3000 shell."),
    "02-sigma": Exercise("noise σ for SNR 20 and S0 = 1000", lambda: 1000 / 20, rtol=1e-6,
                         hint="SNR = S0 / σ."),
    "02-rician-floor": Exercise("mean magnitude of pure noise (σ = 50)",
                                lambda: _rician_floor(), rtol=3e-2,
                                hint="add Rician noise to zeros and take the mean; "
                                     "theory: σ √(π/2)."),
    "03-varpro": Exercise("fractions by linear least squares", _varpro, rtol=1e-4,
                          atol=1e-6, hint="np.linalg.lstsq(basis, signal)."),
    "04-aic": Exercise("fibre count chosen by AIC", _aic, rtol=0,
                       hint="AIC = n log(RSS / n) + 2 k; pick the smallest."),
    "05-invariance": Exercise("relative change of the rotation-invariant features",
                              _feature_change, rtol=0, atol=2e-2,
                              hint="features of both signals; ||f_a − f_b|| / ||f_a||."),
    "07-speedup": Exercise("learned vs fitted voxels per second", _speedup, rtol=1e-6,
                           hint="divide the vox_per_s of the two rows."),
    "08-slabs": Exercise("slabs of a chunked run", _n_slabs, rtol=0,
                         hint="microlearn.run.chunked.plan_slabs(mask, chunk_voxels)."),
}


def exercise_ids() -> list[str]:
    """Ids of every exercise, in lesson order."""
    return sorted(EXERCISES)


def check(exercise: str, answer, **context) -> Verdict:
    """Compare a student's answer with the expected one.

    Parameters
    ----------
    exercise : str
        An id of :data:`EXERCISES` (``"01-ball"``...).
    answer : float, int or array_like
        The student's answer (``None``: not answered yet).
    context
        The exercise's inputs (e.g. ``rows=result.rows`` for ``"07-speedup"``).

    Returns
    -------
    Verdict
        Truthy when right; displays as a coloured line in a notebook.
    """
    if exercise not in EXERCISES:
        raise ValueError(f"exercise {exercise!r} is unknown; choose one of {exercise_ids()}.")
    ex = EXERCISES[exercise]
    if answer is None:
        return Verdict(exercise, False, f"no answer yet ({ex.title}). Hint: {ex.hint}")
    expected = np.asarray(ex.expected(**context), dtype=float)
    try:
        got = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return Verdict(exercise, False, f"expected a number, got {type(answer).__name__}.")
    if got.shape != expected.shape:
        return Verdict(exercise, False, f"expected shape {expected.shape}, got {got.shape}. "
                                        f"Hint: {ex.hint}")
    if ex.atol and not ex.rtol:
        ok = bool(np.all(np.abs(got - expected) <= ex.atol) and np.all(got >= 0))
    else:
        ok = bool(np.allclose(got, expected, rtol=ex.rtol, atol=ex.atol))
    if ok:
        return Verdict(exercise, True, ex.title)
    return Verdict(exercise, False, f"{ex.title}: your answer is off. Hint: {ex.hint}")
