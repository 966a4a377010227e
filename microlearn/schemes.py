"""Built-in acquisition schemes (``Acquisition.scheme(name)``)."""

from __future__ import annotations

import numpy as np

from .acquisition import HCP_TIMING, IVIM_B0_THRESHOLD, Acquisition, b_value
from .units import MS, MT_PER_M, S_PER_MM2


def hemisphere_directions(n: int, *, rotation: float = 0.0) -> np.ndarray:
    """``n`` well-spread unit vectors on the upper hemisphere (Fibonacci lattice).

    Parameters
    ----------
    n : int
        Number of directions.
    rotation : float
        Azimuthal offset in rad, so that different shells get interleaved directions.
    """
    i = np.arange(n) + 0.5
    z = 1.0 - i / n  # uniform in z on (0, 1]
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i + rotation
    r = np.sqrt(1.0 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def hcp() -> Acquisition:
    """HCP WU-Minn: 18 b0 + 90 directions at b = 1000, 2000, 3000 s/mm² (288 volumes).

    δ = 10.6 ms, Δ = 43.1 ms, TE = 89.5 ms. The b0 volumes are interleaved as in the
    real protocol (one every 16 volumes).
    """
    shells = []
    for k, b in enumerate((1000.0, 2000.0, 3000.0)):
        dirs = hemisphere_directions(90, rotation=k * 2 * np.pi / 3 / 90 * 30)
        shells.append((np.full(90, b), dirs))
    dw_b = np.concatenate([s[0] for s in shells])
    dw_v = np.concatenate([s[1] for s in shells])
    # interleave: spread the 270 weighted volumes and 18 b0 evenly
    order = np.random.default_rng(1200).permutation(270)
    dw_b, dw_v = dw_b[order], dw_v[order]
    bvals, bvecs, j = [], [], 0
    for i in range(288):
        if i % 16 == 0:
            bvals.append(0.0)
            bvecs.append([0.0, 0.0, 0.0])
        else:
            bvals.append(dw_b[j])
            bvecs.append(dw_v[j])
            j += 1
    return Acquisition(np.array(bvals) * S_PER_MM2, np.array(bvecs), HCP_TIMING["delta"],
                       HCP_TIMING["Delta"], TE=HCP_TIMING["TE"], name="hcp")


#: ActiveAx protocol: pulse duration (s), separations (s), gradient strengths (T/m).
ACTIVEAX_DELTA = 12.0 * MS
ACTIVEAX_DELTAS = (22.0 * MS, 49.0 * MS)
ACTIVEAX_G = tuple(g * MT_PER_M for g in (75.0, 150.0, 225.0, 300.0))
ACTIVEAX_DIRECTIONS = 30
ACTIVEAX_TE = 80.0 * MS


def activeax() -> Acquisition:
    """A multi-Δ, high-gradient protocol on which axon diameter is identifiable.

    δ = 12 ms, Δ ∈ {22, 49} ms, G ∈ {75, 150, 225, 300} mT/m, 30 directions per shell,
    one b0 per shell: 8 shells x 30 + 8 b0 = 248 measurements (b from ~1,000 to ~42,000
    s/mm²), in the spirit of Connectom ActiveAx/AxCaliber protocols. The long δ raises the
    sensitivity to small axons (ln E⊥ ∝ G² δ R⁴ / D): neighbouring diameters 2–10 µm differ
    by 2.6–23 σ at SNR 50, 1 vs 2 µm by only ~0.6 σ (not identifiable).
    """
    bvals, bvecs, deltas, Deltas, G = [], [], [], [], []
    k = 0
    for Delta in ACTIVEAX_DELTAS:
        for g in ACTIVEAX_G:
            dirs = hemisphere_directions(ACTIVEAX_DIRECTIONS, rotation=0.37 * k)
            b = float(b_value(g, ACTIVEAX_DELTA, Delta))
            bvals += [0.0] + [b] * ACTIVEAX_DIRECTIONS
            bvecs += [[0.0, 0.0, 0.0]] + dirs.tolist()
            G += [0.0] + [g] * ACTIVEAX_DIRECTIONS
            deltas += [ACTIVEAX_DELTA] * (ACTIVEAX_DIRECTIONS + 1)
            Deltas += [Delta] * (ACTIVEAX_DIRECTIONS + 1)
            k += 1
    return Acquisition(np.array(bvals), np.array(bvecs), np.array(deltas), np.array(Deltas),
                       TE=ACTIVEAX_TE, G=np.array(G), name="activeax")


#: IVIM b-values in s/mm² (21 values; 3 directions each are averaged by most users, we
#: keep one direction per b-value as isotropic models do not need more).
IVIM_BVALS = (0, 10, 20, 30, 40, 60, 80, 100, 120, 140, 160, 180, 200, 300, 400, 500, 600,
              700, 800, 900, 1000)


def ivim() -> Acquisition:
    """IVIM: b = 0, 10, 20, 30, 40, 60, 80, 100, 120, ..., 200, 300, ..., 1000 s/mm².

    One direction per b-value (cycling x, y, z); HCP-like timings.
    """
    b = np.array(IVIM_BVALS, dtype=float) * S_PER_MM2
    axes = np.eye(3)[np.arange(b.size) % 3]
    axes[b == 0] = 0.0
    return Acquisition(b, axes, HCP_TIMING["delta"], HCP_TIMING["Delta"],
                       TE=HCP_TIMING["TE"], name="ivim", b0_threshold=IVIM_B0_THRESHOLD)


def with_echo_times(acq: Acquisition, echo_times) -> Acquisition:
    """The acquisition repeated at each echo time (s), b0s included, for multi-TE data.

    Parameters
    ----------
    acq : Acquisition
    echo_times : sequence of float
        Echo times in s (each must leave room for the gradients: TE > Δ + δ).
    """
    tes = np.asarray(echo_times, dtype=float).ravel()
    if tes.size == 0 or np.any(tes <= 0):
        raise ValueError(f"echo times must be positive seconds, got {tes.tolist()}.")
    short = tes[tes <= float(np.max(acq.Delta + acq.delta))]
    if short.size:
        raise ValueError(f"echo time {short[0] * 1e3:g} ms is shorter than Δ + δ "
                         f"({float(np.max(acq.Delta + acq.delta)) * 1e3:g} ms) of the scheme.")
    k = tes.size
    return Acquisition(np.tile(acq.bvals, k), np.tile(acq.bvecs, (k, 1)),
                       np.tile(acq.delta, k), np.tile(acq.Delta, k),
                       TE=np.repeat(tes, acq.n_measurements), G=np.tile(acq.G, k),
                       name=f"{acq.name}-{k}TE", b0_threshold=acq.b0_threshold)


#: SANDI protocol: shells in s/mm², directions per shell, b0s, δ, Δ and TE (s).
SANDI_SHELLS = (500, 1000, 2000, 3000, 4000, 5500, 7000, 8500, 10000)
SANDI_DIRECTIONS = 32
SANDI_B0 = 6
SANDI_TIMING = {"delta": 10.0 * MS, "Delta": 30.0 * MS, "TE": 60.0 * MS}


def sandi() -> Acquisition:
    """A high-b protocol for SANDI and the spherical-mean models.

    6 b0 + 9 shells b = 500–10,000 s/mm² x 32 directions (294 measurements), δ = 10 ms,
    Δ = 30 ms (G up to ~230 mT/m), TE = 60 ms: a Connectom-style protocol in the spirit of
    Palombo et al. 2020, where the soma signal stands out of the neurites' at high b.
    """
    bvals, bvecs = [0.0] * SANDI_B0, [[0.0, 0.0, 0.0]] * SANDI_B0
    for k, b in enumerate(SANDI_SHELLS):
        bvals += [b * S_PER_MM2] * SANDI_DIRECTIONS
        bvecs += hemisphere_directions(SANDI_DIRECTIONS, rotation=0.37 * k).tolist()
    return Acquisition(np.array(bvals), np.array(bvecs), SANDI_TIMING["delta"],
                       SANDI_TIMING["Delta"], TE=SANDI_TIMING["TE"], name="sandi")


SCHEMES = {"hcp": hcp, "activeax": activeax, "ivim": ivim, "sandi": sandi}
