"""Any model's compiled signal and Jacobian, assembled from its compartments' pieces.

:func:`build_plan` turns a :class:`~microlearn.models.core.MultiCompartmentModel` and an
:class:`~microlearn.acquisition.Acquisition` into a *plan*: a tuple of arrays that says,
for every compartment, its compiled kind (:mod:`microlearn.compartments.kernels`), where
each of its parameters comes from (free entry of the parameter vector, fixed value,
tortuosity), which orientation it follows, how its volume fraction is formed from the
free fractions (a product of factors x, 1 − x, x / Σ group, constant), and its tables.
:func:`evaluate` interprets the plan for one voxel: S = s0 Σ_c f_c E_c and, on request,
the Jacobian with respect to every free entry and S0 by the chain rule.

The interpreter is compiled once for every model (the plan's array types never change),
so a model composed in a notebook or loaded from a JSON spec runs compiled on arrival,
with nothing to generate or compile per model. Compartment signals are memoised across
calls (a compartment whose inputs did not change is not recomputed: the ball of a fixed
d_iso is computed once per voxel, the stick of a grid's ODI once per ODI value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ...compartments.kernel_tables import kind_of, piece_tables, shell_tables
from ...compartments.kernels import B_ROW, SCRATCH, WORK_ROWS, evaluate_piece

#: Most factors in one compartment's fraction.
MAX_FACTORS = 4
# link kinds
FIXED, FREE, TORTUOSITY = 0, 1, 2
# fraction factor kinds
F_NONE, F_X, F_ONE_MINUS, F_RATIO, F_CONST = 0, 1, 2, 3, 4


class NotCompilable(ValueError):
    """The model has a part without a compiled piece (the reason is the message)."""


@dataclass(frozen=True)
class Plan:
    """A model on an acquisition, as the arrays the compiled core reads.

    Attributes
    ----------
    arrays : tuple of ndarray
        The plan passed to :func:`evaluate` (see :func:`build_plan`).
    tabs : ShellTables
        Measurement order and per-shell values.
    n_params : int
        Free entries P of the packed parameter vector (S0 is entry P).
    orientation_index : ndarray of int
        Packed index of θ of every orientation (φ follows).
    max_local : int
        Most local scalar parameters of one compartment.
    """

    arrays: tuple
    tabs: object
    n_params: int
    orientation_index: np.ndarray
    max_local: int

    @property
    def n_compartments(self) -> int:
        return self.arrays[0].shape[0]

    @property
    def n_measurements(self) -> int:
        return self.tabs.order.size


def _fraction_factors(model):
    """Per compartment: list of (kind, index or group, constant) whose product is f_c."""
    from ...models.fractions import FreeFractions, NestedFractions

    space = model.parameters
    rule = model.fractions
    names = model.compartment_names
    groups: list[list[int]] = []
    factors = {n: [] for n in names}
    idx = lambda name: space.slice(name).start  # noqa: E731
    if isinstance(rule, FreeFractions):
        if rule.single is not None:
            i = idx(rule.single.name)
            factors[rule.compartments[0]].append((F_X, i, 0.0))
            factors[rule.compartments[1]].append((F_ONE_MINUS, i, 0.0))
        else:
            groups.append([idx(f"f_{n}") for n in rule.compartments])
            for k, n in enumerate(rule.compartments):
                factors[n].append((F_RATIO, 0, float(k)))  # constant: member position
    elif isinstance(rule, NestedFractions):
        n = len(rule.fibres)
        if n == 0:
            for c in rule.isotropic:
                factors[c].append((F_CONST, 0, 1.0 / len(rule.isotropic)))
        has_iso = bool(rule.fiso_name and rule.isotropic)
        if n > 1:
            groups.append([idx(f"ffib_{i}") for i in range(1, n + 1)])
        for i, fibre in enumerate(rule.fibres):
            sfx = f"_{i + 1}" if n > 1 else ""
            for k, c in enumerate(fibre):
                if has_iso:
                    factors[c].append((F_ONE_MINUS, idx(rule.fiso_name), 0.0))
                if n > 1:
                    factors[c].append((F_RATIO, 0, float(i)))
                if len(fibre) == 2:
                    kind = F_X if k == 0 else F_ONE_MINUS
                    factors[c].append((kind, idx(f"{rule.intra_name}{sfx}"), 0.0))
        if n > 0:
            for c in rule.isotropic:
                factors[c].append((F_X, idx(rule.fiso_name), 0.0) if has_iso
                                  else (F_CONST, 0, 0.0))
                if len(rule.isotropic) > 1:
                    factors[c].append((F_CONST, 0, 1.0 / len(rule.isotropic)))
    else:
        raise NotCompilable(f"fraction rule {type(rule).__name__} has no compiled form")
    return factors, groups


def build_plan(model, acq) -> Plan:
    """The compiled plan of ``model`` on ``acq``.

    Raises
    ------
    NotCompilable
        When a compartment has no compiled piece or the fraction rule is unknown; the
        message names the part.
    """
    space = model.parameters
    tabs = shell_tables(acq)
    comps = list(model.compartments)
    C = len(comps)
    local = []
    for inst, comp in comps:
        if kind_of(comp) is None:
            raise NotCompilable(f"compartment {inst!r} ({type(comp).__name__}) has no "
                                "compiled piece")
        local.append([p for p in comp.parameters if p.kind != "orientation"])
    L = max([1] + [len(p) + 1 for p in local])  # + 1: a compartment's T2
    factors, groups = _fraction_factors(model)
    orient_sources: list[str] = []
    ci = np.full((C, 6), -1, np.int64)
    relax = getattr(model, "relaxation", None) or {}
    li = np.zeros((C, L, 5), np.int64)
    lv = np.zeros((C, L))
    fi = np.zeros((C, MAX_FACTORS, 2), np.int64)
    fv = np.zeros((C, MAX_FACTORS))
    ftabs, itabs, foff, ioff = [], [], 0, 0
    position = {inst: k for k, (inst, _) in enumerate(comps)}
    for k, (inst, comp) in enumerate(comps):
        fixed, bounds = {}, {}
        for j, p in enumerate(local[k]):
            link = model.links[f"{inst}.{p.name}"]
            bounds[p.name] = p.bounds
            if link.kind == "fixed":
                li[k, j, 0] = FIXED
                lv[k, j] = link.value
                fixed[p.name] = float(link.value)
            elif link.kind == "free":
                li[k, j, 0] = FREE
                li[k, j, 1] = space.slice(link.source).start
                bounds[p.name] = space[link.source].bounds
            elif link.kind == "tortuosity":
                src_inst, src_name = link.source.split(".", 1)
                src_k = position[src_inst]
                src_j = [q.name for q in local[src_k]].index(src_name)
                if model.links[link.source].kind == "tortuosity":
                    raise NotCompilable(f"tortuosity of {inst}.{p.name} follows another "
                                        "tortuous parameter")
                li[k, j] = (TORTUOSITY, 0, src_k * L + src_j, position[link.intra],
                            position[link.extra])
            else:
                raise NotCompilable(f"link kind {link.kind!r} of {inst}.{p.name}")
        if comp.oriented:
            src = model.links[f"{inst}.mu"].source
            if src not in orient_sources:
                orient_sources.append(src)
            ci[k, 2] = orient_sources.index(src)
        ft, it = piece_tables(comp, tabs, fixed, bounds)
        ci[k, 0], ci[k, 1], ci[k, 3], ci[k, 4] = kind_of(comp), len(local[k]), foff, ioff
        ci[k, 5] = 0
        if inst in relax:  # T2 decay exp(-TE/T2): one more local value, after the piece's
            link = relax[inst]
            j = len(local[k])
            if link.kind == "fixed":
                li[k, j, 0], lv[k, j] = FIXED, link.value
            elif link.kind == "free":
                li[k, j, 0], li[k, j, 1] = FREE, space.slice(link.source).start
            else:
                raise NotCompilable(f"T2 link kind {link.kind!r} of {inst!r}")
            ci[k, 1], ci[k, 5] = j + 1, 1
        ftabs.append(ft)
        itabs.append(it)
        foff += ft.size
        ioff += it.size
        if len(factors[inst]) > MAX_FACTORS:
            raise NotCompilable(f"fraction of {inst!r} has more than {MAX_FACTORS} factors")
        for m, (kind, index, const) in enumerate(factors[inst]):
            fi[k, m] = (kind, index)
            fv[k, m] = const
    gstart = np.zeros(len(groups) + 1, np.int64)
    gmem = np.zeros(max(1, sum(len(g) for g in groups)), np.int64)
    pos = 0
    for g, members in enumerate(groups):
        gmem[pos:pos + len(members)] = members
        pos += len(members)
        gstart[g + 1] = pos
    # F_RATIO factors name their group by its first member's position: group 0 holds the
    # compartments' own weights (FreeFractions) or the fibre weights (NestedFractions)
    ox = np.array([space.slice(s).start for s in orient_sources] or [0], np.int64)
    arrays = (ci, li, lv, fi, fv, gstart, gmem, ox[:len(orient_sources)] if orient_sources
              else np.zeros(0, np.int64), tabs.shell, tabs.start, tabs.timing, tabs.bvecs,
              np.ascontiguousarray(np.concatenate(ftabs) if ftabs else np.zeros(0)),
              np.ascontiguousarray(np.concatenate(itabs).astype(np.int64) if itabs
                                   else np.zeros(0, np.int64)))
    return Plan(arrays=arrays, tabs=tabs, n_params=space.size,
                orientation_index=arrays[7], max_local=L)


@njit(cache=True, error_model="numpy")
def copy_plan(plan):
    """A private copy of a plan's arrays: threads that read one shared copy contend for
    its reference counts (every view of a shared array is an atomic update)."""
    return (plan[0].copy(), plan[1].copy(), plan[2].copy(), plan[3].copy(), plan[4].copy(),
            plan[5].copy(), plan[6].copy(), plan[7].copy(), plan[8].copy(), plan[9].copy(),
            plan[10].copy(), plan[11].copy(), plan[12].copy(), plan[13].copy())


@njit(cache=True, error_model="numpy")
def chunk_bounds(V, n_chunks):
    """Start of each of ``n_chunks`` contiguous voxel ranges (and V), shape (n_chunks + 1,).

    The parallel loops run over :func:`workers`, each with a private copy of the plan
    (:func:`copy_plan`) and the ranges :func:`voxels_of` gives it: more ranges than
    workers balance uneven voxel costs.
    """
    n = max(1, min(n_chunks, V))
    out = np.empty(n + 1, np.int64)
    for k in range(n + 1):
        out[k] = (V * k) // n
    return out


@njit(cache=True, error_model="numpy")
def workers(n_ranges, n_threads):
    """Parallel workers for ``n_ranges`` voxel ranges: one per thread (``n_threads``, from
    ``numba.get_num_threads()`` in the caller: read inside, it would stop the kernels from
    being cached), each with one private copy of the plan (a long-series table can hold tens
    of MB: copying it per range cost more than fitting a small block)."""
    return max(1, min(n_ranges, n_threads))


@njit(cache=True, error_model="numpy")
def voxels_of(bounds, w, W):
    """Voxels of worker ``w`` of ``W``: ranges w, w + W, w + 2W, ... of ``bounds``
    (interleaved, so that expensive regions are shared out)."""
    R = bounds.shape[0] - 1
    total = 0
    for k in range(w, R, W):
        total += bounds[k + 1] - bounds[k]
    out = np.empty(total, np.int64)
    i = 0
    for k in range(w, R, W):
        for v in range(bounds[k], bounds[k + 1]):
            out[i] = v
            i += 1
    return out


@njit(cache=True, error_model="numpy")
def workspace(plan, P):
    """Scratch arrays of :func:`evaluate` for one voxel (one set per thread)."""
    ci = plan[0]
    C, L = ci.shape[0], plan[1].shape[1]
    N = plan[11].shape[1]
    n_or = plan[7].shape[0]
    work = np.zeros((WORK_ROWS, N))
    shell, start = plan[8], plan[9]
    for u in range(start.shape[0] - 1):
        for n in range(start[u], start[u + 1]):
            work[B_ROW, n] = shell[0, u]
    return (np.zeros((max(n_or, 1), N)), np.zeros((max(n_or, 1), N)),
            np.zeros((max(n_or, 1), N)), np.zeros((C, N)), np.zeros((C, L, N)),
            np.zeros((C, N)), work, np.zeros((C, L)),
            np.zeros((C, L, P)), np.zeros(C), np.zeros((C, P)),
            np.full((C, L + 2), np.nan), np.zeros(C, np.int64),
            np.full(max(n_or, 1) * 2, np.nan), np.zeros(SCRATCH), np.zeros(MAX_FACTORS))


@njit(cache=True, error_model="numpy")
def reset(ws):
    """Forget the memoised compartment signals (call when the plan's tables change)."""
    ws[11][:] = np.nan
    ws[12][:] = 0
    ws[13][:] = np.nan


@njit(cache=True, inline="always", error_model="numpy")
def _fractions(x, plan, frac, dfrac, want_jac, fval):
    fi, fv, gstart, gmem = plan[3], plan[4], plan[5], plan[6]
    C, P = frac.shape[0], dfrac.shape[1]
    for c in range(C):
        f = 1.0
        nf = 0
        for m in range(fi.shape[1]):
            kind = fi[c, m, 0]
            if kind == F_NONE:
                break
            i = fi[c, m, 1]
            if kind == F_X:
                v = x[i]
            elif kind == F_ONE_MINUS:
                v = 1.0 - x[i]
            elif kind == F_CONST:
                v = fv[c, m]
            else:  # ratio: member fv[c, m] of group i (in gmem)
                total = 0.0
                for g in range(gstart[i], gstart[i + 1]):
                    total += x[gmem[g]]
                me = gmem[gstart[i] + int(fv[c, m])]
                v = x[me] / total if total > 1e-12 else 1.0 / (gstart[i + 1] - gstart[i])
            fval[m] = v
            f *= v
            nf += 1
        frac[c] = f
        if not want_jac:
            continue
        for p in range(P):
            dfrac[c, p] = 0.0
        for m in range(nf):
            rest = 1.0
            for q in range(nf):
                if q != m:
                    rest *= fval[q]
            kind, i = fi[c, m, 0], fi[c, m, 1]
            if kind == F_X:
                dfrac[c, i] += rest
            elif kind == F_ONE_MINUS:
                dfrac[c, i] -= rest
            elif kind == F_RATIO:
                total = 0.0
                for g in range(gstart[i], gstart[i + 1]):
                    total += x[gmem[g]]
                if total > 1e-12:
                    me = gmem[gstart[i] + int(fv[c, m])]
                    for g in range(gstart[i], gstart[i + 1]):
                        dfrac[c, gmem[g]] -= rest * x[me] / (total * total)
                    dfrac[c, me] += rest / total


@njit(cache=True, inline="always", error_model="numpy")
def _link_values(x, plan, frac, dfrac, vals, dvals, want_jac):
    ci, li, lv = plan[0], plan[1], plan[2]
    C, L = li.shape[0], li.shape[1]
    P = dvals.shape[2]
    for rnd in range(2):  # free and fixed first, then tortuosity (reads their values)
        for c in range(C):
            for j in range(ci[c, 1]):
                kind = li[c, j, 0]
                if (kind == TORTUOSITY) != (rnd == 1):
                    continue
                if want_jac:
                    for p in range(P):
                        dvals[c, j, p] = 0.0
                if kind == FIXED:
                    vals[c, j] = lv[c, j]
                elif kind == FREE:
                    vals[c, j] = x[li[c, j, 1]]
                    if want_jac:
                        dvals[c, j, li[c, j, 1]] = 1.0
                else:
                    sc, sj = li[c, j, 2] // L, li[c, j, 2] % L
                    fa, fb = frac[li[c, j, 3]], frac[li[c, j, 4]]
                    tot = fa + fb
                    r = fa / tot if tot > 0 else 0.0
                    src = vals[sc, sj]
                    vals[c, j] = src * (1.0 - r)
                    if want_jac:
                        for p in range(P):
                            dr = ((dfrac[li[c, j, 3], p] * fb - fa * dfrac[li[c, j, 4], p])
                                  / (tot * tot) if tot > 0 else 0.0)
                            dvals[c, j, p] = (1.0 - r) * dvals[sc, sj, p] - src * dr


@njit(cache=True, inline="always", fastmath={"contract", "reassoc", "nsz", "arcp"},
      error_model="numpy")
def _orientations(x, plan, ws, want_jac):
    ox, bvecs = plan[7], plan[11]
    cv, dct, dcp, last = ws[0], ws[1], ws[2], ws[13]
    N = bvecs.shape[1]
    for o in range(ox.shape[0]):
        th, ph = x[ox[o]], x[ox[o] + 1]
        if last[2 * o] == th and last[2 * o + 1] == ph:
            continue
        last[2 * o], last[2 * o + 1] = th, ph
        st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
        mx, my, mz = st * cp, st * sp, ct
        tx, ty, tz = ct * cp, ct * sp, -st
        px, py = -st * sp, st * cp
        for n in range(N):
            gx, gy, gz = bvecs[0, n], bvecs[1, n], bvecs[2, n]
            cv[o, n] = gx * mx + gy * my + gz * mz
            dct[o, n] = gx * tx + gy * ty + gz * tz
            dcp[o, n] = gx * px + gy * py


@njit(cache=True, fastmath={"contract", "reassoc", "nsz", "arcp"}, error_model="numpy")
def _decay(t2, shell, start, j, want_jac, E, dE, dEdc):
    """Multiply a compartment's signal (and its derivatives) by exp(-TE/T2); row ``j`` of
    ``dE`` gets the T2 derivative E · TE / T2²."""
    for u in range(start.shape[0] - 1):
        te = shell[4, u]
        f = np.exp(-te / t2) if te > 0 else 1.0
        g = te / (t2 * t2)
        for n in range(start[u], start[u + 1]):
            E[n] *= f
            if want_jac:
                for k in range(j):
                    dE[k, n] *= f
                dEdc[n] *= f
                dE[j, n] = E[n] * g


@njit(cache=True, fastmath={"contract", "reassoc", "nsz", "arcp"}, error_model="numpy")
def evaluate(x, plan, ws, want_jac, s, J):
    """Signal ``s`` (N,) of one voxel and, if ``want_jac``, its Jacobian ``J`` (P + 1, N).

    Parameters
    ----------
    x : ndarray, shape (P + 1,)
        Packed free parameters (SI, orientations as θ, φ) and S0 last.
    plan : tuple
        ``Plan.arrays``.
    ws : tuple
        :func:`workspace` of this thread.
    want_jac : bool
    s : ndarray, shape (N,)
        Output: s0 Σ_c f_c E_c, measurements in the plan's (shell-sorted) order.
    J : ndarray, shape (P + 1, N)
        Output (parameter-major): dS/dx_p; row P is dS/ds0.
    """
    ci = plan[0]
    cv, dct, dcp, E, dE, dEdc, work, vals, dvals, frac, dfrac, memo, state, _, scr, fval = ws
    C, L = ci.shape[0], dE.shape[1]
    P = x.shape[0] - 1
    N = s.shape[0]
    s0 = x[P]
    _orientations(x, plan, ws, want_jac)
    _fractions(x, plan, frac, dfrac, want_jac, fval)
    _link_values(x, plan, frac, dfrac, vals, dvals, want_jac)
    for c in range(C):
        o = ci[c, 2]
        nl = ci[c, 1]
        same = state[c] >= (2 if want_jac else 1)
        for j in range(nl):
            if memo[c, j] != vals[c, j]:
                same = False
        if o >= 0 and (memo[c, L] != x[plan[7][o]] or memo[c, L + 1] != x[plan[7][o] + 1]):
            same = False
        if same:
            continue
        for j in range(nl):
            memo[c, j] = vals[c, j]
        if o >= 0:
            memo[c, L], memo[c, L + 1] = x[plan[7][o]], x[plan[7][o] + 1]
        state[c] = 2 if want_jac else 1
        evaluate_piece(ci[c, 0], vals[c], cv[max(o, 0)], plan[8], plan[9], plan[10],
                       plan[12], plan[13], ci[c, 3], ci[c, 4], want_jac, E[c], dE[c],
                       dEdc[c], work, scr)
        if ci[c, 5] == 1:
            _decay(vals[c, nl - 1], plan[8], plan[9], nl - 1, want_jac, E[c], dE[c], dEdc[c])
    for n in range(N):
        s[n] = 0.0
    for c in range(C):
        f = frac[c]
        for n in range(N):
            s[n] += f * E[c, n]
    if not want_jac:
        for n in range(N):
            s[n] *= s0
        return
    for n in range(N):
        J[P, n] = s[n]
        s[n] *= s0
    for p in range(P):
        for n in range(N):
            J[p, n] = 0.0
    for c in range(C):
        f = frac[c]
        for p in range(P):
            a = s0 * dfrac[c, p]
            if a != 0.0:
                for n in range(N):
                    J[p, n] += a * E[c, n]
        for j in range(ci[c, 1]):
            for p in range(P):
                a = s0 * f * dvals[c, j, p]
                if a != 0.0:
                    for n in range(N):
                        J[p, n] += a * dE[c, j, n]
        o = ci[c, 2]
        if o >= 0:
            t = plan[7][o]
            a = s0 * f
            for n in range(N):
                g = a * dEdc[c, n]
                J[t, n] += g * dct[o, n]
                J[t + 1, n] += g * dcp[o, n]

@njit(cache=True, parallel=True, error_model="numpy")
def signals(X, plan, want_jac, n_chunks=8, n_threads=2):
    """Signals (V, N) and Jacobians (V, P + 1, N) of parameter rows ``X`` (V, P + 1), in
    the plan's measurement order (NaN rows for non-finite parameters); ``n_chunks``
    parallel voxel ranges (see :func:`chunk_bounds`)."""
    V, P1 = X.shape
    N = plan[11].shape[1]
    S = np.full((V, N), np.nan)
    JJ = np.full((V if want_jac else 0, P1, N), np.nan)
    bounds = chunk_bounds(V, n_chunks)
    R = bounds.shape[0] - 1
    W = workers(R, n_threads)
    for w in prange(W):
        plan_t = copy_plan(plan)
        ws = workspace(plan_t, P1 - 1)
        s = np.empty(N)
        J = np.empty((P1, N))
        for v in voxels_of(bounds, w, W):
            ok = True
            for p in range(P1):
                if not np.isfinite(X[v, p]):
                    ok = False
            if not ok:
                continue
            evaluate(X[v], plan_t, ws, want_jac, s, J)
            S[v] = s
            if want_jac:
                JJ[v] = J
    return S, JJ
