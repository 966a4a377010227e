"""Two rich synthetic protocols for the fitting benchmarks (built here, not shipped).

``isbi2015()``: an ISBI 2015 white-matter modelling challenge-like protocol (Ferizi et al.,
NMR Biomed 2017;30:e3734, "Diffusion MRI microstructure models with in vivo human brain
Connectom data"): 2,820 measurements in 48 (G, Δ, δ, TE) groups, 45 directions per group
plus interleaved b0s. The challenge acquired on the MGH Connectom scanner with gradients up
to 300 mT/m and a broad set of diffusion times; the values below are chosen inside the
ranges it reports, not copied from its table:

- δ ∈ {3, 8, 13, 20} ms, Δ ∈ {22, 40, 60, 80} ms (16 timing pairs);
- three gradient strengths per pair, 1/3, 2/3 and 3/3 of G_top, where G_top is the
  weaker of 300 mT/m and the strength giving b = 10,000 s/mm² for that pair (so short δ
  use the strong Connectom gradients, long δ stay near 40–60 mT/m, and every shell keeps
  measurable signal in vivo): b from ~100 to 10,000 s/mm²;
- TE = Δ + δ + 27 ms (readout and refocusing), 52–127 ms: 16 echo-time groups;
- 45 directions per group (a Fibonacci hemisphere, rotated per group) and 13 or 14 b0s
  per group (660 b0s in all): 48 × 45 + 660 = 2,820.

A reading of "G up to 60 mT/m" for every group would put the δ = 3 ms groups below
b = 50 s/mm² (counted as b0); the Connectom strengths avoid that.

``exvivo_spinal_cord()``: an ex vivo spinal-cord-like preclinical protocol (strong
gradients as on small-bore systems, up to ~1.3 T/m, fixed tissue, one TE): 1,791
measurements up to b = 1.2·10⁵ s/mm²:

- four (δ, Δ) pairs: (3, 12), (4, 20), (5, 30), (6, 40) ms;
- twelve gradient steps per pair, linear up to G_max of the pair, the weaker of 1.3 T/m
  and the strength giving b = 1.2·10⁵ s/mm² (1.3 T/m for the three shorter pairs, about
  1.1 T/m for (6, 40) ms): b from ~80 to 120,000 s/mm²;
- 36 directions per shell (rotated per shell) and 63 b0s (15–16 per pair): 4 × 12 × 36 +
  63 = 1,791; TE = 50 ms for every measurement.
"""

from __future__ import annotations

import numpy as np

from microlearn import Acquisition
from microlearn.acquisition import b_value
from microlearn.schemes import hemisphere_directions

MS, MT_PER_M, S_PER_MM2 = 1e-3, 1e-3, 1e6

ISBI_DELTAS = tuple(d * MS for d in (3.0, 8.0, 13.0, 20.0))  # δ
ISBI_BIG_DELTAS = tuple(d * MS for d in (22.0, 40.0, 60.0, 80.0))  # Δ
ISBI_G_MAX = 300.0 * MT_PER_M
ISBI_B_MAX = 10_000.0 * S_PER_MM2
ISBI_DIRECTIONS, ISBI_B0 = 45, 660
ISBI_TE_EXTRA = 27.0 * MS

EXVIVO_PAIRS = tuple((d * MS, D * MS) for d, D in ((3, 12), (4, 20), (5, 30), (6, 40)))
EXVIVO_G_MAX = 1300.0 * MT_PER_M
EXVIVO_B_MAX = 1.2e5 * S_PER_MM2
EXVIVO_STEPS, EXVIVO_DIRECTIONS, EXVIVO_B0 = 12, 36, 63
EXVIVO_TE = 50.0 * MS


def _g_top(delta, Delta, g_max, b_max):
    """The weaker of ``g_max`` and the strength giving ``b_max`` for (δ, Δ), T/m."""
    g_for_b = g_max * np.sqrt(b_max / b_value(g_max, delta, Delta))
    return float(min(g_max, g_for_b))


def _build(groups, n_b0_total, name, te_of):
    """groups: list of (δ, Δ, G, n_dirs); b0s spread evenly over the groups, first."""
    n_groups = len(groups)
    b0_per = np.full(n_groups, n_b0_total // n_groups)
    b0_per[: n_b0_total - b0_per.sum()] += 1
    cols = {k: [] for k in ("b", "v", "d", "D", "G", "TE")}
    for k, ((delta, Delta, g, n_dirs), n_b0) in enumerate(zip(groups, b0_per)):
        n = n_b0 + n_dirs
        dirs = hemisphere_directions(n_dirs, rotation=0.37 * k)
        b = float(b_value(g, delta, Delta))
        cols["b"] += [0.0] * n_b0 + [b] * n_dirs
        cols["v"] += [[0.0, 0.0, 0.0]] * n_b0 + dirs.tolist()
        cols["G"] += [0.0] * n_b0 + [g] * n_dirs
        cols["d"] += [delta] * n
        cols["D"] += [Delta] * n
        cols["TE"] += [te_of(delta, Delta)] * n
    return Acquisition(np.array(cols["b"]), np.array(cols["v"]), np.array(cols["d"]),
                       np.array(cols["D"]), TE=np.array(cols["TE"]), G=np.array(cols["G"]),
                       name=name)


def isbi2015() -> Acquisition:
    """The ISBI 2015 challenge-like protocol: 2,820 measurements, 48 groups (see module)."""
    groups = []
    for Delta in ISBI_BIG_DELTAS:
        for delta in ISBI_DELTAS:
            top = _g_top(delta, Delta, ISBI_G_MAX, ISBI_B_MAX)
            groups += [(delta, Delta, top * k / 3, ISBI_DIRECTIONS) for k in (1, 2, 3)]
    return _build(groups, ISBI_B0, "isbi2015",
                  lambda d, D: round((D + d + ISBI_TE_EXTRA) / MS) * MS)


def exvivo_spinal_cord() -> Acquisition:
    """The ex vivo spinal-cord-like protocol: 1,791 measurements to b = 1.2e5 s/mm²."""
    groups = []
    for delta, Delta in EXVIVO_PAIRS:
        top = _g_top(delta, Delta, EXVIVO_G_MAX, EXVIVO_B_MAX)
        groups += [(delta, Delta, top * k / EXVIVO_STEPS, EXVIVO_DIRECTIONS)
                   for k in range(1, EXVIVO_STEPS + 1)]
    return _build(groups, EXVIVO_B0, "exvivo-sc", lambda d, D: EXVIVO_TE)


#: Rich protocols by name.
RICH = {"isbi2015": isbi2015, "exvivo-sc": exvivo_spinal_cord}
