"""Per-acquisition tables of the compartments' compiled pieces.

:func:`shell_tables` sorts the measurements by shell — a distinct (b, G, δ, Δ, TE) — so
that the pieces of :mod:`microlearn.compartments.kernels` loop over contiguous ranges with
shell-constant coefficients. :func:`piece_tables` prepares one compartment's series and
restriction tables (float and int arrays the piece reads at its offsets). Everything here
runs once per (model, acquisition) in NumPy; nothing depends on a voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import kernels as K
from .cylinder import bessel_roots
from .dispersion import (
    _legendre_power_coefficients,
    odi_to_kappa,
    series_order,
    stick_legendre_coefficients,
    watson_even_moments,
    watson_legendre_moments,
)
from .sphere import sphere_roots

#: Compiled kind of each compartment class (by class name); classes absent here have no
#: compiled piece and their models are fitted by the generic NumPy engines.
KIND_OF = {"Ball": K.BALL, "Stick": K.STICK, "Zeppelin": K.ZEPPELIN, "Dot": K.DOT,
           "WatsonStick": K.WATSON_STICK, "WatsonZeppelin": K.WATSON_ZEPPELIN,
           "CylinderGPD": K.CYLINDER, "SphereGPD": K.SPHERE,
           "SphericalMeanStick": K.SM_STICK, "SphericalMeanZeppelin": K.SM_ZEPPELIN,
           "SphericalMeanTensor": K.SM_TENSOR}
#: Nodes of the ODI tables (linear interpolation; the NODDI kernels' resolution).
ODI_NODES = 2049
#: Longest Watson series evaluated on the power basis (Horner in c²); longer series use
#: Chebyshev polynomials of 2c² - 1 (Clenshaw; the power basis cancels catastrophically
#: above l ≈ 26).
HORNER_K = 14
#: Spacing of the stick-coefficient x = b d∥ grid when d∥ is free (cubic Hermite).
X_STEP = 0.02
#: Nodes per decade of D/R² in the restriction tables (cubic Hermite in ln(D/R²)).
RESTRICTION_PER_DECADE = 160


@dataclass(frozen=True)
class ShellTables:
    """Measurements sorted by shell, and per-shell acquisition values.

    Attributes
    ----------
    order : ndarray of int, shape (N,)
        Acquisition index of every sorted measurement.
    bvecs : ndarray, shape (3, N)
        Unit gradient directions (sorted), one contiguous row per axis.
    shell : ndarray, shape (5, U)
        Rows b (s/m²), G² (T²/m²), δ (s), Δ (s), TE (s; 0 when unknown).
    start : ndarray of int, shape (U + 1,)
        Sorted measurements ``start[u]:start[u + 1]`` belong to shell u.
    timing : ndarray of int, shape (U,)
        Distinct (δ, Δ) of each shell: index into ``delta``/``Delta``.
    delta, Delta : ndarray, shape (T,)
        Distinct pulse timings in s.
    """

    order: np.ndarray
    bvecs: np.ndarray
    shell: np.ndarray
    start: np.ndarray
    timing: np.ndarray
    delta: np.ndarray
    Delta: np.ndarray

    @property
    def n_shells(self) -> int:
        return self.start.size - 1


def _rounded(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    scale = np.where(v != 0, 10.0 ** np.floor(np.log10(np.abs(np.where(v != 0, v, 1.0)))), 1.0)
    return np.round(v / scale, 9) * scale


def shell_tables(acq) -> ShellTables:
    """The :class:`ShellTables` of an acquisition (cached on it).

    Parameters
    ----------
    acq : Acquisition
    """
    cached = acq._cache.get("kernel_shells")
    if cached is not None:
        return cached
    te = np.zeros(acq.n_measurements) if acq.TE is None else np.asarray(acq.TE, float)
    keys = np.stack([_rounded(acq.bvals), _rounded(acq.G), _rounded(acq.delta),
                     _rounded(acq.Delta), _rounded(te)], 1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=first.size)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    shell = np.ascontiguousarray(np.stack([acq.bvals[first], acq.G[first] ** 2,
                                           acq.delta[first], acq.Delta[first], te[first]]))
    pairs = np.stack([_rounded(acq.delta[first]), _rounded(acq.Delta[first])], 1)
    uniq, tinv = np.unique(pairs, axis=0, return_inverse=True)
    tabs = ShellTables(order=order.astype(np.int64),
                       bvecs=np.ascontiguousarray(acq.bvecs[order].T),
                       shell=shell, start=start, timing=tinv.ravel().astype(np.int64),
                       delta=np.ascontiguousarray(uniq[:, 0]),
                       Delta=np.ascontiguousarray(uniq[:, 1]))
    acq._cache["kernel_shells"] = tabs
    return tabs


def kind_of(compartment) -> int | None:
    """The compiled kind of a compartment, or None when it has no compiled piece."""
    return KIND_OF.get(type(compartment).__name__)


def piece_tables(compartment, tabs: ShellTables, fixed: dict, bounds: dict):
    """Float and int tables of one compartment's piece.

    Parameters
    ----------
    compartment : Compartment
    tabs : ShellTables
    fixed : dict of str to float
        Local parameters whose value is fixed for the whole fit (SI).
    bounds : dict of str to (float, float)
        Range each non-fixed local parameter can take (SI), for table extents.

    Returns
    -------
    ftab : ndarray, float64
    itab : ndarray, int64
    """
    kind = kind_of(compartment)
    if kind == K.WATSON_STICK:
        return _watson_stick_tables(tabs, fixed, bounds)
    if kind == K.WATSON_ZEPPELIN:
        return _tau_tables(bounds["odi"])
    if kind == K.CYLINDER:
        return _restriction_tables(tabs, "d_par", "diameter", fixed, bounds, roots=1)
    if kind == K.SPHERE:
        return _restriction_tables(tabs, "d_intra", "diameter", fixed, bounds, roots=2)
    return np.zeros(0), np.zeros(0, np.int64)


def _odi_nodes(odi_bounds):
    lo, hi = odi_bounds
    nodes = np.linspace(lo, hi, ODI_NODES)
    return nodes, nodes[1] - nodes[0]


@lru_cache(maxsize=8)
def _tau_tables(odi_bounds):
    nodes, step = _odi_nodes(odi_bounds)
    tau = watson_even_moments(odi_to_kappa(nodes), 1)[:, 1]
    ftab = np.concatenate([[nodes[0], step], tau, np.gradient(tau, step)])
    return ftab, np.array([ODI_NODES], np.int64)


@lru_cache(maxsize=8)
def _watson_moments(odi_bounds, lmax):
    nodes, step = _odi_nodes(odi_bounds)
    W = watson_legendre_moments(odi_to_kappa(nodes), lmax)
    return W, np.gradient(W, step, axis=0), nodes[0], step


@lru_cache(maxsize=16)
def _legendre_chebyshev_coefficients(lmax):
    """M[j, k]: P_2j(c) = Σ_k M[j, k] T_k(2c² - 1) (k ≤ j; entries of order one).

    Exact interpolation of the degree-j polynomials of c² at K Chebyshev nodes.
    """
    from numpy.polynomial import chebyshev
    from scipy.special import eval_legendre

    Kc = lmax // 2 + 1
    t = np.cos(np.pi * (np.arange(Kc) + 0.5) / Kc)
    c = np.sqrt((t + 1.0) / 2.0)
    values = eval_legendre(2 * np.arange(Kc)[None, :], c[:, None])  # (nodes, j)
    M = chebyshev.chebfit(t, values, Kc - 1).T  # (j, k)
    M[np.triu_indices(Kc, 1)] = 0.0  # degree j: exact zeros above the diagonal
    M.setflags(write=False)
    return M


def _series_basis(lmax, power):
    """Legendre -> power-of-c² (short series) or Chebyshev-of-2c²-1 (long) coefficients."""
    return _legendre_power_coefficients(lmax) if power else _legendre_chebyshev_coefficients(
        lmax)


def _stick_derivative_coefficients(x, lmax):
    """da_l/dx = -(2l+1)/2 ∫ t² exp(-x t²) P_l(t) dt (the quadrature of the coefficients)."""
    from .dispersion import _quadrature

    t, weights = _quadrature(lmax)
    return -np.exp(-np.asarray(x, dtype=float)[..., None] * t**2) @ (weights * (t**2)[:, None])


#: Most floats of a fixed-d∥ Watson table (nodes × shells × K × 2); more shells (e.g.
#: jittered b-values, one shell per measurement) get a coarser ODI grid.
WATSON_TABLE_FLOATS = 8_000_000


def _watson_stick_tables(tabs, fixed, bounds):
    d_par = fixed.get("d_par")
    key = (tabs.shell[0].tobytes(), None if d_par is None else float(d_par),
           tuple(float(v) for v in bounds["odi"]),
           None if d_par is not None else float(bounds["d_par"][1]))
    return _cached_watson_stick_tables(key)


@lru_cache(maxsize=16)
def _cached_watson_stick_tables(key):
    """The tables of :func:`_watson_stick_tables` by (b-values, d∥ or None, ODI bounds,
    largest d∥): built once per acquisition and setting in a process (~0.5 s for a
    2,820-measurement protocol with 48 shells), not once per ``fit()`` call."""
    b_bytes, d_par, odi_bounds, d_par_top = key
    b = np.frombuffer(b_bytes, dtype=float)
    fixed = {} if d_par is None else {"d_par": d_par}
    bounds = {"d_par": (0.0, d_par_top)}
    ftab, itab = _build_watson_stick_tables(b, fixed, bounds, odi_bounds)
    ftab.setflags(write=False)
    itab.setflags(write=False)
    return ftab, itab


def _build_watson_stick_tables(b, fixed, bounds, odi_bounds):
    if "d_par" in fixed:
        x = b * fixed["d_par"]
        lmax = series_order(round(float(np.max(x)), 1) + 0.1)
        Kc = lmax // 2 + 1
        power = int(Kc <= HORNER_K)
        U = x.size
        nodes = int(min(ODI_NODES, max(257, WATSON_TABLE_FLOATS // (2 * U * Kc))))
        grid = np.linspace(odi_bounds[0], odi_bounds[1], nodes)
        step = grid[1] - grid[0]
        coef = (stick_legendre_coefficients(x, lmax)[None]
                * watson_legendre_moments(odi_to_kappa(grid), lmax)[:, None, :])
        Q = np.ascontiguousarray(coef @ _series_basis(lmax, power))  # (nodes, U, K)
        ftab = np.concatenate([[grid[0], step], Q.ravel(), np.gradient(Q, step, axis=0).ravel()])
        return ftab, np.array([0, Kc, nodes, U, power], np.int64)
    x_max = float(np.max(b)) * bounds["d_par"][1]
    lmax = series_order(round(x_max, 1) + 0.1)
    Kc = lmax // 2 + 1
    power = int(Kc <= HORNER_K)
    W, dW, odi_lo, odi_step = _watson_moments(odi_bounds, lmax)
    n_x = int(np.ceil(x_max / X_STEP)) + 2
    grid = np.arange(n_x) * X_STEP
    A = stick_legendre_coefficients(grid, lmax)
    dA = _stick_derivative_coefficients(grid, lmax)
    Cp = _series_basis(lmax, power)
    ftab = np.concatenate([[odi_lo, odi_step, 0.0, X_STEP], W.ravel(), dW.ravel(), A.ravel(),
                           dA.ravel(), Cp.ravel()])
    return ftab, np.array([1, Kc, ODI_NODES, n_x, power], np.int64)


def restriction_h(w, delta, Delta, roots, k):
    """H(w) and dH/d(ln w) with C = D · H(D/R²) for the GPD cylinder (k=1) or sphere (k=2).

    ln E⊥ = C G² with C = -2γ² D Σ_m num(a_m) / (a_m³ (β_m² - k)), a_m = β_m² D / R².

    Parameters
    ----------
    w : ndarray, shape (W,)
        D / R² in 1/s.
    delta, Delta : ndarray, shape (T,)
        Pulse timings in s.
    roots : ndarray, shape (M,)
        β_m (roots of J1' for the cylinder, of j1' for the sphere).
    k : int
        1 (cylinder) or 2 (sphere).

    Returns
    -------
    H, dH : ndarray, shape (W, T)
    """
    from ..units import GAMMA

    beta2 = roots**2
    a = np.asarray(w, float)[:, None, None] * beta2  # (W, 1, M)
    d = np.asarray(delta, float)[:, None]
    D = np.asarray(Delta, float)[:, None]
    e1, e2 = np.exp(-a * d), np.exp(-a * D)
    e3, e4 = np.exp(-a * (D - d)), np.exp(-a * (D + d))
    num = 2 * a * d - 2 + 2 * e1 + 2 * e2 - e3 - e4
    dnum = 2 * d - 2 * d * e1 - 2 * D * e2 + (D - d) * e3 + (D + d) * e4
    small = a * D < 1e-2  # Taylor in a (the direct form cancels): num = c3 a³ + c4 a⁴ + c5 a⁵
    c3 = d**2 * (D - d / 3)
    c4 = -(D * d) ** 2 / 2
    c5 = (20 * D**3 * d**2 + 10 * D * d**4 - 2 * d**5) / 120
    safe = np.where(small, 1.0, a)
    term = np.where(small, c3 + c4 * a + c5 * a * a, num / safe**3)
    dterm = np.where(small, c4 + 2 * c5 * a, dnum / safe**3 - 3 * num / safe**4)  # d/da
    H = -2 * GAMMA**2 * np.sum(term / (beta2 - k), axis=-1)
    dH = -2 * GAMMA**2 * np.sum(dterm * a / (beta2 - k), axis=-1)  # d/d ln w = a d/da
    return H, dH


def _restriction_tables(tabs, d_name, diam_name, fixed, bounds, roots):
    D_lo, D_hi = ((fixed[d_name],) * 2) if d_name in fixed else bounds[d_name]
    r_lo, r_hi = ((fixed[diam_name] / 2,) * 2 if diam_name in fixed
                  else (bounds[diam_name][0] / 2, bounds[diam_name][1] / 2))
    s_lo = np.log(max(D_lo, 1e-12) / r_hi**2) - 0.05
    s_hi = np.log(max(D_hi, 1e-12) / max(r_lo, 1e-9) ** 2) + 0.05
    step = np.log(10.0) / RESTRICTION_PER_DECADE
    nodes = int(np.ceil((s_hi - s_lo) / step)) + 2
    s = s_lo + step * np.arange(nodes)
    beta = bessel_roots() if roots == 1 else sphere_roots()
    H, dH = restriction_h(np.exp(s), tabs.delta, tabs.Delta, beta, roots)
    ftab = np.concatenate([[s_lo, step], H.ravel(), dH.ravel()])
    return ftab, np.array([tabs.delta.size, nodes], np.int64)
