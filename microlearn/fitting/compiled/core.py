"""The one compiled fitting core: grid search + NNLS start, Levenberg–Marquardt and the
log-barrier interior point on the Rician floor, for any model's plan (numba).

Every method here sees a model only through :func:`~.assembly.evaluate` (signal and
Jacobian of one voxel), so each algorithm is written once and serves every model and
acquisition. Voxels run in parallel over numba threads; measurements are in the plan's
shell-sorted order. Noise σ is per measurement (several echo times normalised by their own
b0 give different σ): the residual of measurement n is w_n (sqrt(S_n² + σ_n²) − y_n) with
w_n = min σ / σ_n (weighted least squares; w = 1 for one σ), the plain residual where
σ = 0. Parameters are handled in scaled units (x / scale) inside the solvers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .assembly import chunk_bounds, copy_plan, evaluate, voxels_of, workers, workspace
from .kernel_tools import clip, solve_spd
from .nnls import nnls_one

# start modes
START_SCALE, START_OUTER, START_COLUMNS = 0, 1, 2
# column rules (START_COLUMNS)
COLUMNS_FREE, COLUMNS_SINGLE = 0, 1


@njit(cache=True, fastmath={"contract", "reassoc", "nsz", "arcp"}, error_model="numpy")
def rician_cost(y, sg, wt, s, r):
    """Residuals ``r`` = w (sqrt(s² + σ²) − y) (s − y where σ = 0); returns Σ r²."""
    total = 0.0
    for n in range(y.shape[0]):
        m = np.sqrt(s[n] * s[n] + sg[n] * sg[n]) if sg[n] > 0 else s[n]
        r[n] = wt[n] * (m - y[n])
        total += r[n] * r[n]
    return total


@njit(cache=True, fastmath={"contract", "reassoc", "nsz", "arcp"}, error_model="numpy")
def normal_equations(J, r, s, y, sg, wt, scales, frozen, jtj, g):
    """Gauss–Newton system in scaled units: J ← w · (s/m) · J · scale, JᵀJ and g = −Jᵀr.

    Frozen entries get identity rows and a zero right-hand side.
    """
    P1, N = J.shape
    f = np.empty(N)
    for n in range(N):
        m = r[n] / wt[n] + y[n] if sg[n] > 0 else s[n]
        f[n] = wt[n] * (s[n] / m if sg[n] > 0 and m > 0 else 1.0)
    for p in range(P1):
        Jp = J[p]
        sc = scales[p]
        for n in range(N):
            Jp[n] *= f[n] * sc
    for p in range(P1):
        if frozen[p]:
            g[p] = 0.0
            for q in range(P1):
                jtj[p, q] = 0.0
                jtj[q, p] = 0.0
            jtj[p, p] = 1.0
            continue
        Jp = J[p]
        acc = 0.0
        for n in range(N):
            acc -= Jp[n] * r[n]
        g[p] = acc
        for q in range(p, P1):
            if frozen[q]:
                continue
            Jq = J[q]
            acc = 0.0
            for n in range(N):
                acc += Jp[n] * Jq[n]
            jtj[p, q] = acc
            jtj[q, p] = acc


@njit(cache=True, error_model="numpy")
def _hold_bounds(x, lower, upper, jtj, g):
    """Freeze entries at a bound whose descent direction points out of the box."""
    P1 = x.shape[0]
    for p in range(P1):
        if (x[p] <= lower[p] and g[p] < 0) or (x[p] >= upper[p] and g[p] > 0):
            g[p] = 0.0
            for q in range(P1):
                jtj[p, q] = 0.0
                jtj[q, p] = 0.0
            jtj[p, p] = 1.0


@njit(cache=True, error_model="numpy")
def levenberg_marquardt(x, y, sg, wt, plan, ws, lower, upper, scales, frozen, max_iter, tol,
                        s, r, J):
    """Bounded Levenberg–Marquardt from ``x`` (in place) on the Rician-floor residual.

    Returns (cost, converged): converged when an accepted step lowered the cost by less than
    ``tol`` (relative) or no damped step lowered it (a stationary point). (An absolute stop,
    Δχ² < 0.01, was tried: free d∥ ran 2.8× faster at equal RMSE, but MC-SMT's ICVF RMSE
    rose 22 %: slow valleys take small steps far from the optimum.)
    """
    P1 = x.shape[0]
    N = y.shape[0]
    rn = np.empty(N)
    xn = np.empty(P1)
    jtj = np.empty((P1, P1))
    A = np.empty((P1, P1))
    g = np.empty(P1)
    dz = np.empty(P1)
    evaluate(x, plan, ws, True, s, J)
    cost = rician_cost(y, sg, wt, s, r)
    lam = 1e-3
    improved = False
    rel = 0.0
    for _ in range(max_iter):
        normal_equations(J, r, s, y, sg, wt, scales, frozen, jtj, g)
        _hold_bounds(x, lower, upper, jtj, g)
        improved = False
        rel = 0.0
        for _try in range(6):
            for p in range(P1):
                for q in range(P1):
                    A[p, q] = jtj[p, q]
                A[p, p] += lam * (jtj[p, p] + 1e-12)
            if not solve_spd(A, g, dz):
                lam *= 4.0
                continue
            for p in range(P1):
                xn[p] = x[p] + dz[p] * scales[p]
            clip(xn, lower, upper)
            evaluate(xn, plan, ws, False, s, J)
            cn = rician_cost(y, sg, wt, s, rn)
            if cn < cost:
                rel = (cost - cn) / max(cost, 1e-30)
                x[:] = xn
                cost = cn
                lam = max(lam / 3.0, 1e-9)
                improved = True
                break
            lam *= 4.0
        if not improved or rel < tol:
            break
        evaluate(x, plan, ws, True, s, J)
        rician_cost(y, sg, wt, s, r)
    return cost, (not improved) or rel < tol


@njit(cache=True, error_model="numpy")
def _barrier(x, lower, upper, bounded, mu):
    """−μ Σ [log((x−l)/w) + log((u−x)/w)] over the ``bounded`` entries (inf outside)."""
    total = 0.0
    for p in range(x.shape[0]):
        if bounded[p]:
            w = upper[p] - lower[p]
            a = (x[p] - lower[p]) / w
            b = (upper[p] - x[p]) / w
            if a <= 0 or b <= 0:
                return np.inf
            total -= mu * (np.log(a) + np.log(b))
    return total


@njit(cache=True, error_model="numpy")
def interior_point(x, y, sg, wt, plan, ws, lower, upper, scales, frozen, bounded, mu_levels,
                   inner, tol, s, r, J):
    """Log-barrier interior point (Gauss–Newton Newton steps) from ``x`` (in place).

    Minimises ½ Σ r² − μ Σ_j [log(x_j − l_j) + log(u_j − x_j)] over the ``bounded`` entries
    for each μ in ``mu_levels`` (relative to the start's cost), with a fraction-to-boundary
    rule (τ = 0.995) and backtracking on the merit; iterates stay strictly inside.
    Returns (cost, converged) as :func:`levenberg_marquardt`.
    """
    P1 = x.shape[0]
    N = y.shape[0]
    rn = np.empty(N)
    xn = np.empty(P1)
    jtj = np.empty((P1, P1))
    H = np.empty((P1, P1))
    g = np.empty(P1)
    rhs = np.empty(P1)
    dz = np.empty(P1)
    for p in range(P1):
        if bounded[p]:
            inset = 1e-3 * (upper[p] - lower[p])
            x[p] = min(max(x[p], lower[p] + inset), upper[p] - inset)
    evaluate(x, plan, ws, True, s, J)
    cost = rician_cost(y, sg, wt, s, r)
    scale = max(cost, 1e-12)
    settled = False
    for level in range(mu_levels.shape[0]):
        mu = mu_levels[level] * scale
        merit = 0.5 * cost + _barrier(x, lower, upper, bounded, mu)
        settled = False
        for _ in range(inner):
            normal_equations(J, r, s, y, sg, wt, scales, frozen, jtj, g)
            for p in range(P1):
                for q in range(P1):
                    H[p, q] = jtj[p, q]
                H[p, p] += 1e-10 * (jtj[p, p] + 1e-12)
                rhs[p] = g[p]
                if bounded[p] and not frozen[p]:
                    dl = (x[p] - lower[p]) / scales[p]
                    du = (upper[p] - x[p]) / scales[p]
                    H[p, p] += mu * (1 / (dl * dl) + 1 / (du * du))
                    rhs[p] += mu * (1 / dl - 1 / du)
            if not solve_spd(H, rhs, dz):
                break
            alpha = 1.0
            for p in range(P1):
                if bounded[p]:
                    step = dz[p] * scales[p]
                    if step < 0:
                        alpha = min(alpha, -0.995 * (x[p] - lower[p]) / step)
                    elif step > 0:
                        alpha = min(alpha, 0.995 * (upper[p] - x[p]) / step)
            accepted = False
            mn = merit
            cn = cost
            for _bt in range(8):
                for p in range(P1):
                    xn[p] = x[p] + alpha * dz[p] * scales[p]
                evaluate(xn, plan, ws, False, s, J)
                cn = rician_cost(y, sg, wt, s, rn)
                mn = 0.5 * cn + _barrier(xn, lower, upper, bounded, mu)
                if mn <= merit:
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:
                settled = True
                evaluate(x, plan, ws, True, s, J)
                rician_cost(y, sg, wt, s, r)
                break
            small = merit - mn <= 1e-6 * abs(merit)
            tiny = True
            for p in range(P1):
                if abs(alpha * dz[p]) > tol:
                    tiny = False
                x[p] = xn[p]
            cost = cn
            merit = mn
            evaluate(x, plan, ws, True, s, J)
            rician_cost(y, sg, wt, s, r)
            if small or tiny:
                settled = True
                break
    return cost, settled


@njit(cache=True, fastmath={"contract", "reassoc", "nsz", "arcp"}, error_model="numpy")
def _nnls_two(T, I, y):
    """y ≈ α T + β I with α, β ≥ 0; returns (α, β, sse)."""
    tt = 0.0
    ii = 0.0
    ti = 0.0
    ty = 0.0
    iy = 0.0
    yy = 0.0
    for n in range(y.shape[0]):
        tt += T[n] * T[n]
        ii += I[n] * I[n]
        ti += T[n] * I[n]
        ty += T[n] * y[n]
        iy += I[n] * y[n]
        yy += y[n] * y[n]
    det = tt * ii - ti * ti
    al = (ii * ty - ti * iy) / det if det > 1e-12 * tt * ii else -1.0
    be = (tt * iy - ti * ty) / det if det > 1e-12 * tt * ii else -1.0
    if al < 0 or be < 0:
        a_only = max(ty / tt, 0.0) if tt > 0 else 0.0
        b_only = max(iy / ii, 0.0) if ii > 0 else 0.0
        sse_a = yy - 2 * a_only * ty + a_only * a_only * tt
        if sse_a <= yy - 2 * b_only * iy + b_only * b_only * ii:
            al, be = a_only, 0.0
        else:
            al, be = 0.0, b_only
    sse = yy - 2 * (al * ty + be * iy) + al * al * tt + 2 * al * be * ti + be * be * ii
    return al, be, sse


@njit(cache=True, inline="always", error_model="numpy")
def _score(x, yc, mode, outer, col_rule, col_idx, T, s, cols, gram, ety):
    """Sum of squares of the best non-negative combination of the candidate's columns
    (``T``/``s``, ``cols``): S0 (entry P) and the linear fractions set in ``x``."""
    P = x.shape[0] - 1
    N = yc.shape[0]
    if mode == START_OUTER:
        al, be, sse = _nnls_two(T, s, yc)
        x[outer] = be / (al + be) if al + be > 0 else 0.0
        x[P] = al + be
        return sse
    if mode == START_COLUMNS:
        C = cols.shape[0]
        for a in range(C):
            acc = 0.0
            for n in range(N):
                acc += cols[a, n] * yc[n]
            ety[a] = acc
            for b in range(a, C):
                acc = 0.0
                for n in range(N):
                    acc += cols[a, n] * cols[b, n]
                gram[a, b] = acc
                gram[b, a] = acc
        w = nnls_one(gram, ety, 1e-12, 3 * C + 3)
        total = 0.0
        for a in range(C):
            total += w[a]
        sse = 0.0
        for n in range(N):
            acc = 0.0
            for a in range(C):
                acc += w[a] * cols[a, n]
            sse += (acc - yc[n]) ** 2
        if total > 0:
            if col_rule == COLUMNS_SINGLE:
                x[col_idx[0]] = w[0] / total
            else:
                for a in range(C):
                    x[col_idx[a]] = w[a] / total
        x[P] = total
        return sse
    sy = 0.0
    ss = 0.0
    yy = 0.0
    for n in range(N):
        sy += s[n] * yc[n]
        ss += s[n] * s[n]
        yy += yc[n] * yc[n]
    a = max(sy / ss, 0.0) if ss > 0 else 0.0
    x[P] = a
    return yy - 2 * a * sy + a * a * ss


@njit(cache=True, fastmath={"contract", "reassoc", "nsz", "arcp"}, error_model="numpy")
def _table_column(table, k, col, base, w, Q, out):
    """Column ``col`` of candidate ``k`` at every measurement (linear in c²)."""
    if Q > 1:
        for n in range(out.shape[0]):
            b = base[n]
            out[n] = table[k, col, b] + w[n] * (table[k, col, b + 1] - table[k, col, b])
    else:
        for n in range(out.shape[0]):
            out[n] = table[k, col, base[n]]


@njit(cache=True, error_model="numpy")
def grid_start(x, yc, plan, ws, grid, grid_idx, mode, outer, col_rule, col_idx, s, T, J,
               table, Q, shell_of):
    """Stage 1: the best candidate of ``grid`` at ``x``'s orientations (x updated in place).

    ``mode``: START_SCALE (S0 by non-negative scaling), START_OUTER (tissue / isotropic
    split of entry ``outer`` and S0 by two-column NNLS), START_COLUMNS (every compartment a
    column of an NNLS; fractions from the weights by ``col_rule`` into ``col_idx``).
    ``yc`` is the floor-corrected signal. With a candidate ``table`` (K, columns, U·Q) —
    the columns of every candidate tabulated per shell on Q points of c² = (g·μ)² for a
    model with at most one orientation — the columns are interpolated, not evaluated.
    Returns the best sum of squares.
    """
    P = x.shape[0] - 1
    N = yc.shape[0]
    E = ws[3]
    C = E.shape[0]
    best = np.inf
    keep = x.copy()
    gram = np.empty((C, C))
    ety = np.empty(C)
    tabulated = table.shape[0] > 0
    cols = E
    base = np.empty(N, np.int64)
    w = np.zeros(N)
    if tabulated:
        cols = np.empty((table.shape[1], N))
        ox, bvecs = plan[7], plan[11]
        if ox.shape[0] == 1 and Q > 1:
            mx, my, mz = _unit(x, ox[0])
            for n in range(N):
                c = bvecs[0, n] * mx + bvecs[1, n] * my + bvecs[2, n] * mz
                pos = min(c * c, 1.0) * (Q - 1)
                i = min(int(pos), Q - 2)
                base[n] = shell_of[n] * Q + i
                w[n] = pos - i
        else:
            for n in range(N):
                base[n] = shell_of[n] * Q
    for k in range(grid.shape[0]):
        for g in range(grid_idx.shape[0]):
            x[grid_idx[g]] = grid[k, g]
        x[P] = 1.0
        if tabulated:
            if mode == START_OUTER:
                _table_column(table, k, 0, base, w, Q, T)
                _table_column(table, k, 1, base, w, Q, s)
            elif mode == START_COLUMNS:
                for a in range(cols.shape[0]):
                    _table_column(table, k, a, base, w, Q, cols[a])
            else:
                _table_column(table, k, 0, base, w, Q, s)
        elif mode == START_OUTER:
            x[outer] = 0.0
            evaluate(x, plan, ws, False, T, J)
            # not 1: the tissue fractions stay nonzero, so a tortuous d⊥ (which follows
            # their ratio) and the memoised tissue signals do not change
            x[outer] = 1.0 - 1e-9
            evaluate(x, plan, ws, False, s, J)
        else:
            evaluate(x, plan, ws, False, s, J)  # START_COLUMNS: the compartments' E
        sse = _score(x, yc, mode, outer, col_rule, col_idx, T, s, cols, gram, ety)
        if sse < best:
            best = sse
            keep[:] = x
    x[:] = keep
    return best


@njit(cache=True, error_model="numpy")
def _unit(x, t):
    st = np.sin(x[t])
    return st * np.cos(x[t + 1]), st * np.sin(x[t + 1]), np.cos(x[t])


@njit(parallel=True, cache=True, error_model="numpy")
def fit_voxels(Y, SIG, X0, has_start, plan, lower, upper, scales, frozen, grid, grid_idx,
               mode, outer, col_rule, col_idx, method, max_iter, tol, bounded, mu_levels,
               redo_deg, redo_outer_max, n_chunks, table, Q, shell_of, traps, trap_values,
               n_threads):
    """Start (grid + NNLS, or ``X0`` when ``has_start``) and refinement of every voxel.

    Parameters
    ----------
    Y : ndarray, shape (V, N)
        Normalised signals in the plan's measurement order.
    SIG : ndarray, shape (V, N) or (V, 1)
        Normalised noise σ per measurement (or per voxel); 0 fits the Gaussian model.
    X0 : ndarray, shape (V, P + 1)
        Starting orientations (every fibre's θ, φ) or, with ``has_start``, whole starts.
    method : int
        0 Levenberg–Marquardt, 1 log-barrier interior point.
    n_chunks, n_threads : int
        Ranges of voxels, shared out to one worker per thread (``numba.get_num_threads()``),
        each worker with a private copy of the plan.
    table, Q, shell_of
        Tabulated start columns (see :func:`grid_start`; an empty table evaluates the
        model instead), c² points, and the shell of every measurement.
    redo_deg : float
        With one orientation, a refinement that turned it by more than this reruns the
        grid and the refinement from the refined orientation; the lower cost is kept
        (skipped when entry ``outer`` ends at or above ``redo_outer_max``).
    traps, trap_values : ndarray, shape (T,)
        Entries whose signal flattens at their lower bound (a diameter: the restricted
        signal varies as R⁴ there, so a refinement that reaches the bound cannot leave it),
        and the value each is moved to for one more refinement when it ends at the bound;
        the lower cost is kept.

    Returns
    -------
    X : ndarray, shape (V, P + 1)
    cost : ndarray, shape (V,)
    converged : ndarray of bool, shape (V,)
    """
    V, N = Y.shape
    P1 = X0.shape[1]
    X = np.empty((V, P1))
    costs = np.full(V, np.inf)
    converged = np.zeros(V, np.bool_)
    ox = plan[7]
    one_orient = ox.shape[0] == 1
    cos_redo = np.cos(np.deg2rad(redo_deg))
    bounds = chunk_bounds(V, n_chunks)
    R = bounds.shape[0] - 1
    W = workers(R, n_threads)
    for w in prange(W):  # one plan copy per worker; ranges w, w + W, ... (balanced)
        plan_v = copy_plan(plan)
        ws = workspace(plan_v, P1 - 1)
        for v in voxels_of(bounds, w, W):
            _fit_voxel(v, Y, SIG, X0, X, costs, converged, has_start, plan_v, ws, lower, upper,
                       scales, frozen, grid, grid_idx, mode, outer, col_rule, col_idx, method,
                       max_iter, tol, bounded, mu_levels, one_orient, cos_redo, ox,
                       redo_deg, redo_outer_max, table, Q, shell_of, traps, trap_values)
    return X, costs, converged


@njit(cache=True, error_model="numpy")
def _refine(method, x, y, sg, wt, plan_v, ws, lower, upper, scales, frozen, bounded,
            mu_levels, max_iter, tol, s, r, J):
    """One refinement of ``x`` in place: Levenberg–Marquardt (``method`` 0) or the interior
    point (1); returns (cost, converged)."""
    if method == 0:
        return levenberg_marquardt(x, y, sg, wt, plan_v, ws, lower, upper, scales, frozen,
                                   max_iter, tol, s, r, J)
    return interior_point(x, y, sg, wt, plan_v, ws, lower, upper, scales, frozen, bounded,
                          mu_levels, max_iter, tol, s, r, J)


@njit(cache=True, error_model="numpy")
def _fit_voxel(v, Y, SIG, X0, X, costs, converged, has_start, plan_v, ws, lower, upper, scales,
               frozen, grid, grid_idx, mode, outer, col_rule, col_idx, method, max_iter, tol,
               bounded, mu_levels, one_orient, cos_redo, ox, redo_deg, redo_outer_max, table,
               Q, shell_of, traps, trap_values):
    """Start and refinement of voxel ``v`` (see :func:`fit_voxels`); writes its rows."""
    N = Y.shape[1]
    P1 = X0.shape[1]
    s = np.empty(N)
    T = np.empty(N)
    r = np.empty(N)
    J = np.empty((P1, N))
    sg = np.empty(N)
    wt = np.empty(N)
    yc = np.empty(N)
    smin = np.inf
    for n in range(N):
        sg[n] = SIG[v, n] if SIG.shape[1] > 1 else SIG[v, 0]
        if sg[n] > 0:
            smin = min(smin, sg[n])
    for n in range(N):
        wt[n] = smin / sg[n] if sg[n] > 0 and smin < np.inf else 1.0
        yc[n] = np.sqrt(max(Y[v, n] * Y[v, n] - sg[n] * sg[n], 0.0))
    x = X0[v].copy()
    best = np.inf
    for _pass in range(2):
        if not has_start or _pass > 0:
            grid_start(x, yc, plan_v, ws, grid, grid_idx, mode, outer, col_rule, col_idx,
                       s, T, J, table, Q, shell_of)
        for p in range(P1):
            x[p] = min(max(x[p], lower[p]), upper[p])
        cost, conv = _refine(method, x, Y[v], sg, wt, plan_v, ws, lower, upper, scales,
                             frozen, bounded, mu_levels, max_iter, tol, s, r, J)
        if cost < best:
            best = cost
            X[v] = x
            converged[v] = conv
        if not one_orient or has_start or redo_deg >= 180.0:
            break
        if outer >= 0 and x[outer] >= redo_outer_max:
            break
        ax, ay, az = _unit(X0[v], ox[0])
        bx, by, bz = _unit(x, ox[0])
        if abs(ax * bx + ay * by + az * bz) >= cos_redo:
            break
    for t in range(traps.shape[0]):
        i = traps[t]
        if X[v, i] > lower[i] * (1.0 + 1e-6):
            continue
        for p in range(P1):
            x[p] = X[v, p]
        x[i] = trap_values[t]
        cost, conv = _refine(method, x, Y[v], sg, wt, plan_v, ws, lower, upper, scales,
                             frozen, bounded, mu_levels, max_iter, tol, s, r, J)
        if cost < best:
            best = cost
            X[v] = x
            converged[v] = conv
    costs[v] = best
