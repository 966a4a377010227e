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


#: Compartment T2 (s) at 3 T of the multi-echo simulations (intra-axonal longer than
#: extra-axonal, as measured by TE-dependent diffusion; free water far longer).
T2 = {"intra": 0.090, "extra": 0.055, "free": 1.5}


def fibre_parts(bvals, bvecs, mu, odi, icvf, chunk: int = 500):
    """Intra- and extra-neurite signals of one Watson population, each (n, M), unweighted
    by ICVF (see :func:`fibre_signal`)."""
    kappa = 1.0 / np.tan(np.pi / 2.0 * np.asarray(odi, float))
    n = len(mu)
    intra, extra = np.empty((n, len(bvals))), np.empty((n, len(bvals)))
    gs = bvecs @ _SPHERE.T
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        w = _watson_weights(mu[sl], kappa[sl])
        intra[sl] = w @ np.exp(-bvals[:, None] * D_PAR * gs ** 2).T
        m2 = np.einsum("cp,pi,pj->cij", w, _SPHERE, _SPHERE)
        d_perp = D_PAR * (1.0 - icvf[sl])
        gmg = np.einsum("mi,cij,mj->cm", bvecs, m2, bvecs)
        extra[sl] = np.exp(-bvals[None, :] * (d_perp[:, None]
                                              + (D_PAR - d_perp[:, None]) * gmg))
    return intra, extra


def simulate_noddi_t2(acq, n: int, *, snr: float = 30.0, seed: int = 0, ranges=None,
                      t2=None, s0_spread: float = 0.3):
    """Single-fibre NODDI voxels measured at several echo times, each compartment decaying
    with its own T2 (:data:`T2`): signals (n, M) and the truth (proton-density fractions).

    ``acq.TE`` (s) gives each measurement's echo time. S0 varies across voxels by
    ``s0_spread`` (uniform, relative), σ is fixed in signal units (SNR ``snr`` at the mean
    S0 and TE → 0), as in a scan.
    """
    rng = np.random.default_rng(seed)
    ranges = {**TISSUE, **(ranges or {})}
    t2 = {**T2, **(t2 or {})}
    bvals = np.asarray(acq.bvals, float)
    bvecs = np.nan_to_num(np.asarray(acq.bvecs, float))
    te = np.asarray(acq.TE, float)
    fiso = rng.uniform(*ranges["fiso"], n)
    odi = rng.uniform(*ranges["odi"], n)
    icvf = rng.uniform(*ranges["icvf"], n)
    intra, extra = fibre_parts(bvals, bvecs, _random_unit(rng, n), odi, icvf)
    e_in, e_ex, e_iso = (np.exp(-te / t2[k])[None, :] for k in ("intra", "extra", "free"))
    clean = (fiso[:, None] * e_iso * np.exp(-bvals * D_ISO)[None, :]
             + (1.0 - fiso[:, None]) * (icvf[:, None] * e_in * intra
                                         + (1.0 - icvf[:, None]) * e_ex * extra))
    s0 = 1000.0 * rng.uniform(1.0 - s0_spread, 1.0 + s0_spread, n)
    sigma = 1000.0 / snr
    noisy = np.hypot(s0[:, None] * clean + rng.normal(0, sigma, clean.shape),
                     rng.normal(0, sigma, clean.shape))
    return noisy, {"odi": odi, "icvf": icvf, "fiso": fiso}


def multi_te_acquisition(n_dirs: int = 30, tes_ms=(60.0, 80.0, 100.0), n_b0: int = 3,
                         shells=(1000.0, 2500.0)):
    """A multi-echo protocol: at every TE ``n_b0`` b0s and ``n_dirs`` directions per shell
    (s/mm²), δ = 10 ms, Δ = 30 ms."""
    from microlearn import Acquisition

    b, v, te = [], [], []
    for k, t in enumerate(tes_ms):
        dirs = _fibonacci_sphere(2 * n_dirs)
        dirs = dirs[dirs[:, 2] > 0]  # a half sphere, different per TE
        rot = np.linalg.qr(np.random.default_rng(k).normal(size=(3, 3)))[0]
        dirs = dirs @ rot.T
        b += [0.0] * n_b0
        v += [[1.0, 0.0, 0.0]] * n_b0
        for sh in shells:
            b += [sh * 1e6] * len(dirs)
            v += list(dirs)
        te += [t * 1e-3] * (n_b0 + len(shells) * len(dirs))
    return Acquisition(np.array(b), np.array(v), 0.010, 0.030, TE=np.array(te))
