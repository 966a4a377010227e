"""Exercise checks for the workshop notebooks.

Each lesson in ``notebooks/`` ends its exercises with a call such as
``check("01-ball", answer)``. The expected value is computed here with the library (never
stored), compared within a tolerance, and the call returns a :class:`Verdict` that shows
as a green (right), red (wrong, with a hint) or grey (not answered yet) line in
JupyterLab and Voila. A wrong call (a missing or wrong input) also returns a red verdict
with a hint, never a traceback. Problems that need data (a matrix to solve, signals to
analyse) come from the ``*_problem`` functions with a fixed seed, so the student and the
checker see the same numbers.

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

__all__ = ["EXERCISES", "Exercise", "Verdict", "aic_problem", "check", "exercise_ids",
           "ivim_problem", "perpendicular_measurement", "rotation_problem",
           "varpro_problem"]


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
        What was wrong (with a hint), or a short confirmation.
    pending : bool
        No answer was given yet (shown in grey rather than red).
    """

    exercise: str
    ok: bool
    message: str
    pending: bool = False

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        mark = "correct" if self.ok else ("waiting" if self.pending else "not yet")
        return f"[{self.exercise}] {mark}: {self.message}"

    def _repr_html_(self) -> str:
        if self.ok:
            colour, mark = "#1a7f37", "✔ correct"
        elif self.pending:
            colour, mark = "#57606a", "… your turn"
        else:
            colour, mark = "#b42318", "✘ not yet"
        return (f'<div class="ml-verdict" style="color:{colour};font-weight:600">{mark} '
                f'<span style="font-weight:400">[{html.escape(self.exercise)}] '
                f"{html.escape(self.message)}</span></div>")


@dataclass(frozen=True)
class Exercise:
    """An exercise: how to compute the expected answer and how close is close enough.

    Attributes
    ----------
    title : str
        What is asked, in a few words.
    expected : callable
        Returns the expected answer (a number or an array) from the check's context.
    rtol, atol : float
        Relative and absolute tolerance (``numpy.allclose``).
    hint : str
        Shown with every wrong answer.
    context : tuple of str
        Keyword arguments the check needs (e.g. ``("rows",)``).
    """

    title: str
    expected: Callable[..., object]
    rtol: float = 1e-2
    atol: float = 0.0
    hint: str = ""
    context: tuple[str, ...] = ()


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
    """A model-selection exercise: illustrative residual sums of squares of one voxel.

    The numbers are made up to look like the residuals of 1-, 2- and 3-fibre fits (each
    extra fibre lowers the residual, by a lot when the fibre is real, by a little when
    it only fits noise); they are not the output of a fit.

    Returns
    -------
    rss : ndarray, shape (3,)
        Residual sum of squares (signal units²) of the 1-, 2- and 3-fibre models.
    n_params : ndarray, shape (3,)
        Free parameters of each model.
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


def perpendicular_measurement(scheme: str = "hcp"):
    """The most diffusion-weighted measurement of ``scheme``, gradient along x.

    With a fibre along z the gradient is perpendicular to it: a stick gives no
    attenuation there, so any drop of a cylinder's signal is due to its diameter.

    Returns
    -------
    Acquisition
        One measurement (b, δ, Δ and G of the scheme's strongest gradient).
    """
    from .acquisition import Acquisition

    acq = Acquisition.scheme(scheme)
    i = int(np.argmax(acq.G))
    return Acquisition(acq.bvals[i:i + 1], np.array([[1.0, 0.0, 0.0]]), acq.delta[i:i + 1],
                       acq.Delta[i:i + 1], G=acq.G[i:i + 1], name=f"{scheme} (strongest G)")


def ivim_problem():
    """A noiseless IVIM signal on the built-in ``ivim`` scheme.

    Returns
    -------
    bvals : ndarray, shape (N,)
        b-values in s/mm² (as a scanner writes them).
    signal : ndarray, shape (N,)
        S/S0 for f = 0.10, D = 0.8e-9 m²/s, D* = 15e-9 m²/s.
    """
    from .acquisition import Acquisition
    from .models import ivim

    acq = Acquisition.scheme("ivim")
    model = ivim()
    params = model.parameters.pack({"f": 0.10, "d": 0.8e-9, "d_star": 15e-9})
    return acq.bvals / S_PER_MM2, np.asarray(model.signal(acq, params)).ravel()


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


def _rotation_changes(seed: int = 0):
    from .learning.features import normalise_by_b0, rotation_invariant_features

    acq, a, b = rotation_problem(seed)
    fa = rotation_invariant_features(normalise_by_b0(a, acq)[0], acq)
    fb = rotation_invariant_features(normalise_by_b0(b, acq)[0], acq)
    return (float(np.linalg.norm(fa - fb) / np.linalg.norm(fa)),
            float(np.linalg.norm(a - b) / np.linalg.norm(a)))


def _check_invariance(got: np.ndarray, expected: np.ndarray) -> bool:
    # the feature change is round-off (~1e-6): anything below 1e-3 is right, but the
    # raw-signal change must be measured, which rules out answering zeros
    return bool(0 <= got[0] <= 1e-3 and np.isclose(got[1], expected[1], rtol=2e-2))


def _at_bound_share(maps, mask):
    mask = np.asarray(mask, bool)
    return float(np.mean(np.asarray(maps["at_bound"])[mask] > 0))


def _rows_by_method(rows, *names):
    by = {r["method"]: r for r in rows}
    for name in names:
        if name not in by:
            raise ValueError(f"method {name!r} is not in the comparison; it has {sorted(by)}.")
    return [by[n] for n in names]


def _break_even(rows, learned: str, fitted: str):
    lrn, fit_ = _rows_by_method(rows, learned, fitted)
    saved = 1.0 / fit_["vox_per_s"] - 1.0 / lrn["vox_per_s"]
    return lrn.get("train_seconds", 0.0) / saved if saved > 0 else math.inf


def _slab_megabytes(mask, chunk_voxels: int, n_meas: int):
    from .run.chunked import plan_slabs

    mask = np.asarray(mask, bool)
    largest = max(int(mask[:, :, z0:z1].sum()) for z0, z1 in plan_slabs(mask, chunk_voxels))
    return 8.0 * largest * n_meas / 1e6


def _diameter_limit(snr: float = 30.0, scheme: str = "hcp"):
    """Smallest diameter (µm) whose perpendicular signal drops by more than 1/snr."""
    from .compartments import CylinderGPD

    acq = perpendicular_measurement(scheme)
    d = np.linspace(0.05e-6, 20e-6, 4000)
    s = CylinderGPD().signal(acq, mu=np.tile([0.0, 0.0, 1.0], (len(d), 1)),
                             d_par=np.full(len(d), 1.7e-9), diameter=d)[:, 0]
    return float(d[np.argmax(1.0 - s > 1.0 / snr)] * 1e6)


def _ivim_segmented(b_min: float = 200.0):
    bvals, signal = ivim_problem()
    high = bvals >= b_min
    slope, intercept = np.polyfit(bvals[high] * S_PER_MM2, np.log(signal[high]), 1)
    return np.array([-slope, 1.0 - math.exp(intercept)])


def _zeppelin_mean(b_s_per_mm2: float = 2000.0, d_par: float = 2.0e-9,
                   d_perp: float = 0.5e-9):
    from .acquisition import Acquisition
    from .compartments import SphericalMeanZeppelin

    acq = Acquisition(np.array([b_s_per_mm2 * S_PER_MM2]), np.array([[0.0, 0.0, 1.0]]),
                      np.array([0.0106]), np.array([0.0431]))
    return float(np.ravel(SphericalMeanZeppelin().signal(
        acq, d_par=np.array([d_par]), d_perp=np.array([d_perp])))[0])


def _averages_needed(snr: float = 30.0):
    from .acquisition import Acquisition
    from .fitting.uncertainty import cramer_rao_std
    from .models import noddi

    acq = Acquisition.scheme("hcp")
    one_shell = acq.subset(acq.bvals < 1.5e9)
    model = noddi()
    params = model.parameters.pack({"odi": 0.2, "icvf": 0.5, "fiso": 0.1,
                                    "mu": np.array([0.6, 0.0, 0.8])})[None]
    std = [float(np.ravel(cramer_rao_std(model, a, params, 1.0 / snr)["icvf"])[0])
           for a in (one_shell, acq)]
    return (std[0] / std[1]) ** 2


def _median_snr(data, sigma, b0_mask, mask):
    data, mask = np.asarray(data, float), np.asarray(mask, bool)
    b0 = data[..., np.asarray(b0_mask, bool)].mean(-1)
    return float(np.median(b0[mask] / np.asarray(sigma, float)[mask]))


EXERCISES: dict[str, Exercise] = {
    "01-ball": Exercise("free-water signal at b = 1000 s/mm²", lambda: _ball_signal(),
                        rtol=1e-2, hint="S/S0 = exp(-b D) with b in s/m² (1000 s/mm² = "
                        "1e9 s/m²) and D in m²/s."),
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
                       hint="AIC = n log(RSS / n) + 2 k for each model; the smallest wins "
                            "(answer 1, 2 or 3, not an index)."),
    "05-invariance": Exercise("[feature change, raw-signal change] between two rotations",
                              _rotation_changes,
                              hint="two numbers: ||f_a − f_b|| / ||f_a|| for the features, "
                                   "then the same for the raw signals."),
    "06-at-bound": Exercise("share of brain voxels with a parameter at a bound",
                            _at_bound_share, context=("maps", "mask"),
                            hint="maps['at_bound'] > 0 inside the mask, then the mean."),
    "07-break-even": Exercise("voxels from which learning (training included) beats fitting",
                              _break_even, rtol=1e-3, context=("rows", "learned", "fitted"),
                              hint="training time / (1/vox_per_s of the fit − 1/vox_per_s "
                                   "of the learned estimator)."),
    "08-slab-memory": Exercise("memory of the largest slab in MB (float64)", _slab_megabytes,
                               rtol=1e-3, context=("mask", "chunk_voxels", "n_meas"),
                               hint="brain voxels of the largest slab of plan_slabs(mask, "
                                    "chunk_voxels) × measurements × 8 bytes / 1e6."),
    "09-diameter": Exercise("smallest visible diameter (µm), HCP, SNR 30", _diameter_limit,
                            rtol=5e-2, hint="scan diameters in metres with CylinderGPD on "
                            "perpendicular_measurement(); the first whose 1 − S exceeds "
                            "1/30; answer in µm (a diameter, not a radius)."),
    "10-segmented": Exercise("[D in m²/s, f] by segmented fitting", _ivim_segmented,
                             rtol=2e-2, hint="fit log S against b (in s/m²) for b ≥ 200 "
                             "s/mm² only: D = −slope, f = 1 − exp(intercept)."),
    "11-zeppelin-mean": Exercise("spherical mean of a zeppelin at b = 2000 s/mm²",
                                 _zeppelin_mean, rtol=1e-2,
                                 hint="exp(−b d⊥) · √π erf(√x) / (2√x) with x = "
                                      "b (d∥ − d⊥), b in s/m²."),
    "12-averages": Exercise("repeats of the one-shell scan to match HCP's ICVF precision",
                            _averages_needed, rtol=3e-2,
                            hint="the std falls as 1/√(repeats): (std one shell / std "
                                 "HCP) squared."),
    "13-snr": Exercise("median b0 SNR of the brain from the MP-PCA σ map", _median_snr,
                       rtol=1e-3, context=("data", "sigma", "b0_mask", "mask"),
                       hint="mean of the b0 volumes divided by σ, voxel by voxel, then "
                            "the median inside the mask."),
}

_CUSTOM = {"05-invariance": _check_invariance}


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
        The exercise's inputs (e.g. ``rows=result.rows`` for ``"07-break-even"``).

    Returns
    -------
    Verdict
        Truthy when right; displays as a coloured line in a notebook. A missing or wrong
        input gives a falsy verdict with a hint, not an exception.
    """
    return check_in(EXERCISES, exercise, answer, **context)


def check_in(exercises: dict, exercise: str, answer, **context) -> Verdict:
    """:func:`check` against another table of exercises (e.g. a lesson's own module)."""
    if exercise not in exercises:
        return Verdict(str(exercise), False, f"unknown exercise; choose one of "
                                             f"{sorted(exercises)}.")
    ex = exercises[exercise]
    if answer is None:
        return Verdict(exercise, False, f"no answer yet ({ex.title}). Hint: {ex.hint}",
                       pending=True)
    missing = [name for name in ex.context if name not in context]
    if missing:
        return Verdict(exercise, False, f"the check needs {', '.join(missing)}=... as well "
                                        f"(keep the check line as given). Hint: {ex.hint}")
    try:
        expected = np.asarray(ex.expected(**context), dtype=float)
    except (TypeError, ValueError, KeyError, IndexError) as err:
        return Verdict(exercise, False, f"the check could not use its inputs ({err}). "
                                        f"Hint: {ex.hint}")
    try:
        got = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return Verdict(exercise, False, f"expected a number, got {type(answer).__name__}. "
                                        f"Hint: {ex.hint}")
    if got.shape != expected.shape:
        return Verdict(exercise, False, f"expected shape {expected.shape}, got {got.shape}. "
                                        f"Hint: {ex.hint}")
    if not np.all(np.isfinite(got) | np.isinf(expected)):
        return Verdict(exercise, False, f"your answer is not a finite number. Hint: {ex.hint}")
    custom = _CUSTOM.get(exercise)
    if custom is not None:
        ok = custom(got, expected)
    else:
        ok = bool(np.allclose(got, expected, rtol=ex.rtol, atol=ex.atol))
    if ok:
        return Verdict(exercise, True, ex.title)
    return Verdict(exercise, False, f"{ex.title}: your answer is off. Hint: {ex.hint}")
