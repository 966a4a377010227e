"""An independent NODDI simulator for held-out tests of learned estimators.

Written from Zhang et al. (2012) without microlearn's compartments, samplers or noise code:
the Watson-dispersed stick is integrated numerically over a dense Fibonacci sphere (not by
the closed form), the hindered compartment uses the Watson-averaged tensor with
``<cos² θ>`` from the same quadrature, and the Rician noise is drawn here. A learned
estimator (trained on microlearn's own simulations) that does well on these signals does so
because it learned NODDI, not microlearn's code.

Used by ``tests/learning`` (``from independent_noddi import ...``) and by
``benchmarks/bench_uncertainty.py``.
"""

from __future__ import annotations

import numpy as np

D_PAR, D_ISO = 1.7e-9, 3.0e-9
#: The held-out tissue ranges of the issue (and bench_fitting).
TISSUE = {"odi": (0.05, 0.7), "icvf": (0.2, 0.8), "fiso": (0.0, 0.3)}


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5 ** 0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


_SPHERE = _fibonacci_sphere(3000)


def _watson_weights(mu: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Quadrature weights (n, P) of the Watson density around ``mu`` (n, 3)."""
    c2 = (mu @ _SPHERE.T) ** 2
    logw = kappa[:, None] * (c2 - 1.0)  # shifted for stability
    w = np.exp(logw)
    return w / w.sum(axis=1, keepdims=True)


def _random_unit(rng, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fibre_signal(bvals, bvecs, mu, odi, icvf, chunk: int = 500) -> np.ndarray:
    """Intra + extra-neurite signal of one Watson fibre population, shape (n, M).

    bvals in s/m² (M,), bvecs (M, 3); mu (n, 3); odi, icvf (n,).
    """
    kappa = 1.0 / np.tan(np.pi / 2.0 * np.asarray(odi, float))
    n = len(mu)
    out = np.empty((n, len(bvals)))
    gs = bvecs @ _SPHERE.T  # (M, P)
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        w = _watson_weights(mu[sl], kappa[sl])  # (c, P)
        # intra: ∫ W(n) exp(-b d∥ (g·n)²) dn
        intra = w @ np.exp(-bvals[:, None] * D_PAR * gs ** 2).T  # (c, M)
        # extra: exp(-b gᵀ D̄ g), D̄ = d⊥ I + (d∥ - d⊥) E[n nᵀ]
        m2 = np.einsum("cp,pi,pj->cij", w, _SPHERE, _SPHERE)
        d_perp = D_PAR * (1.0 - icvf[sl])
        gmg = np.einsum("mi,cij,mj->cm", bvecs, m2, bvecs)
        extra = np.exp(-bvals[None, :] * (d_perp[:, None] + (D_PAR - d_perp[:, None]) * gmg))
        out[sl] = icvf[sl, None] * intra + (1.0 - icvf[sl, None]) * extra
    return out


def rician(signal, snr, rng) -> np.ndarray:
    sigma = 1.0 / snr
    return np.hypot(signal + rng.normal(0, sigma, signal.shape),
                    rng.normal(0, sigma, signal.shape))


def simulate_noddi(acq, n: int, *, n_fibres: int = 1, snr: float = 30.0, seed: int = 0,
                   ranges=None, min_angle_deg: float = 45.0):
    """Held-out NODDI voxels: (signals (n, M) with S0 = 1000, truth dict of (n,) maps).

    ``n_fibres`` 1 to 3 populations with random directions (crossing angles of at least
    ``min_angle_deg``), fibre weights from a flat Dirichlet, and per-fibre ODI and ICVF in
    ``ranges``; the truth ODI/ICVF of a crossing is the fibre-weighted mean.
    """
    rng = np.random.default_rng(seed)
    ranges = {**TISSUE, **(ranges or {})}
    bvals = np.asarray(acq.bvals, float)
    bvecs = np.nan_to_num(np.asarray(acq.bvecs, float))
    fiso = rng.uniform(*ranges["fiso"], n)
    weights = rng.dirichlet(np.ones(n_fibres), n) if n_fibres > 1 else np.ones((n, 1))
    odis = rng.uniform(*ranges["odi"], (n, n_fibres))
    icvfs = rng.uniform(*ranges["icvf"], (n, n_fibres))
    mus = [_random_unit(rng, n)]
    for _ in range(1, n_fibres):
        cand = _random_unit(rng, n)
        for _ in range(200):
            cos = np.max(np.abs([np.einsum("ni,ni->n", cand, m) for m in mus]), axis=0)
            bad = cos > np.cos(np.radians(min_angle_deg))
            if not bad.any():
                break
            cand[bad] = _random_unit(rng, int(bad.sum()))
        mus.append(cand)
    tissue = sum(weights[:, i, None] * fibre_signal(bvals, bvecs, mus[i], odis[:, i],
                                                    icvfs[:, i])
                 for i in range(n_fibres))
    clean = fiso[:, None] * np.exp(-bvals * D_ISO)[None, :] + (1.0 - fiso[:, None]) * tissue
    truth = {"odi": np.sum(weights * odis, 1), "icvf": np.sum(weights * icvfs, 1),
             "fiso": fiso}
    return 1000.0 * rician(clean, snr, rng), truth
