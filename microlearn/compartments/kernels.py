"""The compartments' compiled signals: one voxel, every measurement (numba).

Each compartment kind has one *piece*: a jitted function that fills, for one voxel, the
signal attenuation ``E`` (N,) of every measurement, and when ``want_jac`` its derivatives
``dE[j]`` with respect to its local scalar parameters (in the order of the compartment's
``parameters``, orientation left out) and ``dEdc`` with respect to c = g·μ for an
oriented compartment. Pieces read per-acquisition tables prepared once by
:mod:`microlearn.compartments.kernel_tables` (per shell: b, G², δ, Δ, TE; per kind: series
and restriction tables) and never allocate. The fitting core
(:mod:`microlearn.fitting.compiled.assembly`) composes them into any model.

All pieces share one signature so that the assembly dispatches on an integer kind::

    piece(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc, work, scr)

``v`` local parameter values (SI); ``c`` (N,) cosines g·μ (unused by isotropic kinds);
``shell`` (5, U) rows b (s/m²), G² (T²/m²), δ, Δ (s), TE (s); ``start`` (U + 1,) the
measurements of shell u are ``start[u]:start[u + 1]`` (measurements sorted by shell);
``timing`` (U,) index of the shell's distinct (δ, Δ); ``ftab``/``itab`` the model's float
and int tables with this compartment's ``off``/``ioff``; ``work`` (W, N) scratch rows whose
row 0 holds every measurement's b (read-only); ``scr`` a scratch vector.
"""

from __future__ import annotations

import math

from numba import njit

#: LLVM fast-math flags that allow vectorised reductions but keep NaN/inf semantics.
FAST = {"contract", "reassoc", "nsz", "arcp"}

# Kind codes (the assembly dispatches on them; kernel_tables maps classes to them).
BALL, STICK, ZEPPELIN, DOT, WATSON_STICK, WATSON_ZEPPELIN = 0, 1, 2, 3, 4, 5
CYLINDER, SPHERE, SM_STICK, SM_ZEPPELIN, SM_TENSOR = 6, 7, 8, 9, 10
#: Scratch rows a piece may use.
WORK_ROWS = 6
#: Row of ``work`` that holds the b-value (s/m²) of every measurement.
B_ROW = 0
#: Largest reduced argument of :func:`exp_neg` (relative error < 1e-14 there).
EXP_REDUCED_MAX = 0.35
#: Below this |x| the spherical mean F(x) uses its Taylor series.
SERIES_LIMIT = 1e-3


@njit(cache=True, fastmath=FAST, inline="always", error_model="numpy")
def exp_neg(x, out, n):
    """``out[i] = exp(-x[i])`` for i < n and x ≥ 0, vectorisable (no libm call).

    exp(-x) = (exp(-x / 2^m))^(2^m) with a degree-12 Taylor polynomial of the reduced
    argument, m chosen from the largest x; relative error below ~1e-13 · 2^m / 2^10.
    """
    top = 0.0
    for i in range(n):
        top = max(top, x[i])
    m = 0
    while top > EXP_REDUCED_MAX and m < 60:
        top *= 0.5
        m += 1
    scale = 0.5 ** m
    for i in range(n):
        t = -x[i] * scale
        p = 1.0 / 479001600.0
        p = p * t + 1.0 / 39916800.0
        p = p * t + 1.0 / 3628800.0
        p = p * t + 1.0 / 362880.0
        p = p * t + 1.0 / 40320.0
        p = p * t + 1.0 / 5040.0
        p = p * t + 1.0 / 720.0
        p = p * t + 1.0 / 120.0
        p = p * t + 1.0 / 24.0
        p = p * t + 1.0 / 6.0
        p = p * t + 0.5
        p = p * t + 1.0
        out[i] = p * t + 1.0
    for _ in range(m):
        for i in range(n):
            out[i] = out[i] * out[i]


@njit(cache=True, inline="always", error_model="numpy")
def _grid_position(lo, step, n, value):
    """Cell ``i`` and weight ``w`` of ``value`` on a uniform grid of ``n`` nodes."""
    pos = (value - lo) / step
    if pos < 0.0:
        pos = 0.0
    i = int(pos)
    if i > n - 2:
        i = n - 2
    return i, pos - i


# ------------------------------------------------------------------ Gaussian kinds
@njit(cache=True, fastmath=FAST, error_model="numpy")
def ball(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
         work, scr):
    """Ball: E = exp(-b d_iso) (isotropic, one exponential per shell)."""
    d = v[0]
    for u in range(start.shape[0] - 1):
        b = shell[0, u]
        e = math.exp(-b * d)
        for n in range(start[u], start[u + 1]):
            E[n] = e
            if want_jac:
                dE[0, n] = -b * e


@njit(cache=True, fastmath=FAST, error_model="numpy")
def dot(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
        work, scr):
    """Dot: E = 1 (stationary water)."""
    for n in range(E.shape[0]):
        E[n] = 1.0


@njit(cache=True, fastmath=FAST, error_model="numpy")
def stick(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
          work, scr):
    """Stick: E = exp(-b d∥ c²)."""
    d = v[0]
    N = E.shape[0]
    bb, arg = work[0], work[1]  # row 0 holds b of every measurement (never written)
    for n in range(N):
        arg[n] = bb[n] * d * c[n] * c[n]
    exp_neg(arg, E, N)
    if want_jac:
        d0 = dE[0]
        for n in range(N):
            d0[n] = -bb[n] * c[n] * c[n] * E[n]
            dEdc[n] = -2.0 * bb[n] * d * c[n] * E[n]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def zeppelin(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
             work, scr):
    """Zeppelin: E = exp(-b (d⊥ + (d∥ - d⊥) c²))."""
    dpar, dperp = v[0], v[1]
    N = E.shape[0]
    bb, arg = work[0], work[1]  # row 0 holds b of every measurement (never written)
    for n in range(N):
        arg[n] = bb[n] * (dperp + (dpar - dperp) * c[n] * c[n])
    exp_neg(arg, E, N)
    if want_jac:
        d0, d1 = dE[0], dE[1]
        for n in range(N):
            c2 = c[n] * c[n]
            d0[n] = -bb[n] * c2 * E[n]
            d1[n] = -bb[n] * (1.0 - c2) * E[n]
            dEdc[n] = -2.0 * bb[n] * (dpar - dperp) * c[n] * E[n]


# ------------------------------------------------------------------ Watson kinds
@njit(cache=True, fastmath=FAST, error_model="numpy")
def watson_zeppelin(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE,
                    dEdc, work, scr):
    """Zeppelin with the Watson-averaged tensor: exp(-b (d⊥ + (d∥ - d⊥)(a0 + a1 c²))),
    a0 = (1 - τ)/2, a1 = (3τ - 1)/2, τ(ODI) = E_W[(μ·n)²] from a table.

    Tables: itab[ioff] = nodes; ftab[off:] = lo, step, τ (nodes), dτ/dODI (nodes).
    """
    dpar, dperp, odi = v[0], v[1], v[2]
    nodes = itab[ioff]
    lo, step = ftab[off], ftab[off + 1]
    tau_t = ftab[off + 2:off + 2 + nodes]
    dtau_t = ftab[off + 2 + nodes:off + 2 + 2 * nodes]
    i, w = _grid_position(lo, step, nodes, odi)
    tau = (1 - w) * tau_t[i] + w * tau_t[i + 1]
    dtau = (1 - w) * dtau_t[i] + w * dtau_t[i + 1]
    a0 = 0.5 * (1 - tau)
    a1 = 0.5 * (3 * tau - 1)
    diff = dpar - dperp
    N = E.shape[0]
    bb, arg = work[0], work[1]  # row 0 holds b of every measurement (never written)
    for n in range(N):
        arg[n] = bb[n] * (dperp + diff * (a0 + a1 * c[n] * c[n]))
    exp_neg(arg, E, N)
    if want_jac:
        d0, d1, d2 = dE[0], dE[1], dE[2]
        for n in range(N):
            c2 = c[n] * c[n]
            h = a0 + a1 * c2
            be = bb[n] * E[n]
            d0[n] = -be * h
            d1[n] = -be * (1.0 - h)
            d2[n] = -be * diff * (-0.5 + 1.5 * c2) * dtau
            dEdc[n] = -2.0 * be * diff * a1 * c[n]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def watson_stick(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
                 work, scr):
    """Watson-dispersed stick by its even Legendre series Σ_k a_2k(b d∥) w_2k(κ) P_2k(c).

    ``mode`` 0 (fixed d∥): the series coefficients of every shell are tabulated on a fine
    ODI grid (with their ODI slopes), read by linear interpolation. ``mode`` 1 (free d∥):
    the stick coefficients a_l(x) come from a uniform x = b d∥ grid (cubic Hermite) and
    the Watson moments w_l(ODI) from an ODI grid; their products are the coefficients.
    Short series (K ≤ ``HORNER_K``) are in the power basis of c² (Horner's rule), long
    ones in Chebyshev polynomials of 2c² - 1 (Clenshaw's recurrence, stable at any order).

    Tables: itab[ioff:] = mode, K, ODI nodes, U (mode 0) or x nodes (mode 1), power (0/1);
    mode 0: ftab[off:] = odi lo, odi step, Q (nodes, U, K), dQ/dODI (nodes, U, K);
    mode 1: ftab[off:] = odi lo, odi step, x lo, x step, W (nodes, K), dW (nodes, K),
    A (x nodes, K), dA/dx (x nodes, K), Legendre -> power or Chebyshev basis C (K, K).
    """
    dpar, odi = v[0], v[1]
    mode, K, n_odi, n_x, power = (itab[ioff], itab[ioff + 1], itab[ioff + 2],
                                  itab[ioff + 3], itab[ioff + 4])
    odi_lo, odi_step = ftab[off], ftab[off + 1]
    i, w = _grid_position(odi_lo, odi_step, n_odi, odi)
    q, qo, qx = scr[0:K], scr[K:2 * K], scr[2 * K:3 * K]
    U = start.shape[0] - 1
    if mode == 0:
        Q = ftab[off + 2:off + 2 + n_odi * U * K]
        dQ = ftab[off + 2 + n_odi * U * K:off + 2 + 2 * n_odi * U * K]
        for u in range(U):
            b0 = (i * U + u) * K
            b1 = ((i + 1) * U + u) * K
            for k in range(K):
                q[k] = (1 - w) * Q[b0 + k] + w * Q[b1 + k]
                qo[k] = (1 - w) * dQ[b0 + k] + w * dQ[b1 + k]
            a, z = start[u], start[u + 1]
            if power == 1:
                _horner_shell(q, qo, qx, c, a, z, want_jac, False, E, dE, dEdc)
            else:
                _clenshaw_shell(q, qo, qx, c, a, z, want_jac, False, E, dE, dEdc, work)
        return
    x_lo, x_step = ftab[off + 2], ftab[off + 3]
    p0 = off + 4
    W = ftab[p0:p0 + n_odi * K]
    dW = ftab[p0 + n_odi * K:p0 + 2 * n_odi * K]
    p1 = p0 + 2 * n_odi * K
    A = ftab[p1:p1 + n_x * K]
    dA = ftab[p1 + n_x * K:p1 + 2 * n_x * K]
    Cp = ftab[p1 + 2 * n_x * K:p1 + 2 * n_x * K + K * K]
    wk, dwk, ak, dak = scr[3 * K:4 * K], scr[4 * K:5 * K], scr[5 * K:6 * K], scr[6 * K:7 * K]
    lq, lqo, lqx = scr[7 * K:8 * K], scr[8 * K:9 * K], scr[9 * K:10 * K]
    for k in range(K):
        wk[k] = (1 - w) * W[i * K + k] + w * W[(i + 1) * K + k]
        dwk[k] = (1 - w) * dW[i * K + k] + w * dW[(i + 1) * K + k]
    for u in range(U):
        b = shell[0, u]
        j, t = _grid_position(x_lo, x_step, n_x, b * dpar)
        for k in range(K):
            ak[k], dak[k] = _hermite_flat(A, dA, j, t, x_step, K, k)
            lq[k] = ak[k] * wk[k]
            lqo[k] = ak[k] * dwk[k]
            lqx[k] = dak[k] * wk[k] * b  # d/d(d∥) = b d/dx
        a, z = start[u], start[u + 1]
        for k in range(K):  # Legendre -> power (short) or Chebyshev (long) basis of c²
            q[k] = 0.0
            qo[k] = 0.0
            qx[k] = 0.0
        for jj in range(K):
            for k in range(jj + 1):
                cjk = Cp[jj * K + k]
                q[k] += lq[jj] * cjk
                qo[k] += lqo[jj] * cjk
                qx[k] += lqx[jj] * cjk
        if power == 1:
            _horner_shell(q, qo, qx, c, a, z, want_jac, True, E, dE, dEdc)
        else:
            _clenshaw_shell(q, qo, qx, c, a, z, want_jac, True, E, dE, dEdc, work)


@njit(cache=True, inline="always", error_model="numpy")
def _hermite_flat(f, df, i, u, step, K, k):
    """:func:`_hermite` of column ``k`` of row-major (nodes, K) tables."""
    u2 = u * u
    u3 = u2 * u
    f0, f1 = f[i * K + k], f[(i + 1) * K + k]
    m0, m1 = df[i * K + k] * step, df[(i + 1) * K + k] * step
    val = (2 * u3 - 3 * u2 + 1) * f0 + (u3 - 2 * u2 + u) * m0 + (3 * u2 - 2 * u3) * f1 + (
        u3 - u2) * m1
    der = ((6 * u2 - 6 * u) * f0 + (3 * u2 - 4 * u + 1) * m0 + (6 * u - 6 * u2) * f1
           + (3 * u2 - 2 * u) * m1) / step
    return val, der


@njit(cache=True, fastmath=FAST, inline="always", error_model="numpy")
def _horner_shell(p, po, px, c, a, z, want_jac, free_d, E, dE, dEdc):
    """Series of one shell by Horner's rule in c², power-basis coefficients (short series)."""
    K = p.shape[0]
    o = E[a:z]
    cc = c[a:z]
    m = z - a
    if not want_jac:
        for n in range(m):
            o[n] = p[K - 1]
        for k in range(K - 2, -1, -1):
            pk = p[k]
            for n in range(m):
                o[n] = o[n] * (cc[n] * cc[n]) + pk
        return
    d1 = dEdc[a:z]
    do = dE[1, a:z]
    dx = dE[0, a:z]
    for n in range(m):
        o[n] = 0.0
        d1[n] = 0.0
        do[n] = 0.0
    for k in range(K - 1, -1, -1):
        pk, pok = p[k], po[k]
        for n in range(m):
            zz = cc[n] * cc[n]
            d1[n] = d1[n] * zz + o[n]
            o[n] = o[n] * zz + pk
            do[n] = do[n] * zz + pok
    for n in range(m):
        d1[n] = 2.0 * cc[n] * d1[n]  # d/dc = 2c d/dc²
    if free_d:  # d/d(d∥): one more chain (a fixed d∥'s row is never read)
        for n in range(m):
            dx[n] = px[K - 1]
        for k in range(K - 2, -1, -1):
            pxk = px[k]
            for n in range(m):
                dx[n] = dx[n] * (cc[n] * cc[n]) + pxk


@njit(cache=True, fastmath=FAST, inline="always", error_model="numpy")
def _clenshaw_shell(q, qo, qx, c, a, z, want_jac, free_d, E, dE, dEdc, work):
    """Series of one shell in Chebyshev polynomials of t = 2c² - 1 by Clenshaw's
    recurrence (long series: stable for any order, unlike the power basis of c²).

    f(t) = Σ_k q_k T_k(t): b_k = q_k + 2t b_{k+1} - b_{k+2}, f = q_0 + t b_1 - b_2, and
    f'(t) from the differentiated recurrence; d/dc = 4c d/dt.
    """
    K = q.shape[0]
    m = z - a
    cc = c[a:z]
    o = E[a:z]
    b2 = work[2, a:z]
    for n in range(m):
        o[n] = 0.0
        b2[n] = 0.0
    if not want_jac:
        for k in range(K - 1, 0, -1):
            qk = q[k]
            for n in range(m):
                t2 = 4.0 * cc[n] * cc[n] - 2.0
                nb = qk + t2 * o[n] - b2[n]
                b2[n] = o[n]
                o[n] = nb
        q0 = q[0]
        for n in range(m):
            t = 2.0 * cc[n] * cc[n] - 1.0
            o[n] = q0 + t * o[n] - b2[n]
        return
    d1, do, dx = dEdc[a:z], dE[1, a:z], dE[0, a:z]
    db2, o2, x2 = work[3, a:z], work[4, a:z], work[5, a:z]
    for n in range(m):
        d1[n] = 0.0
        do[n] = 0.0
        db2[n] = 0.0
        o2[n] = 0.0
    for k in range(K - 1, 0, -1):
        qk, qok = q[k], qo[k]
        for n in range(m):
            t2 = 4.0 * cc[n] * cc[n] - 2.0
            nb = qk + t2 * o[n] - b2[n]
            nd = 2.0 * o[n] + t2 * d1[n] - db2[n]
            no = qok + t2 * do[n] - o2[n]
            b2[n] = o[n]
            o[n] = nb
            db2[n] = d1[n]
            d1[n] = nd
            o2[n] = do[n]
            do[n] = no
    q0, qo0 = q[0], qo[0]
    for n in range(m):
        t = 2.0 * cc[n] * cc[n] - 1.0
        der = o[n] + t * d1[n] - db2[n]
        o[n] = q0 + t * o[n] - b2[n]
        d1[n] = 4.0 * cc[n] * der
        do[n] = qo0 + t * do[n] - o2[n]
    if free_d:  # d/d(d∥): one more chain (a fixed d∥'s row is never read)
        for n in range(m):
            dx[n] = 0.0
            x2[n] = 0.0
        for k in range(K - 1, 0, -1):
            qxk = qx[k]
            for n in range(m):
                t2 = 4.0 * cc[n] * cc[n] - 2.0
                nx = qxk + t2 * dx[n] - x2[n]
                x2[n] = dx[n]
                dx[n] = nx
        qx0 = qx[0]
        for n in range(m):
            t = 2.0 * cc[n] * cc[n] - 1.0
            dx[n] = qx0 + t * dx[n] - x2[n]


# ------------------------------------------------------------------ restricted kinds
@njit(cache=True, inline="always", error_model="numpy")
def _restriction(D, diameter, t, ftab, itab, off, ioff):
    """C = D H_t(D/R²) of timing ``t`` and its derivatives dC/dD, dC/d(diameter).

    H_t is tabulated against s = ln(D/R²) (cubic Hermite, slope dH/ds):
    itab[ioff:] = timings, nodes; ftab[off:] = s lo, s step, H (nodes, T), dH/ds (nodes, T).
    """
    T, nodes = itab[ioff], itab[ioff + 1]
    lo, step = ftab[off], ftab[off + 1]
    H = ftab[off + 2:off + 2 + nodes * T]
    dH = ftab[off + 2 + nodes * T:off + 2 + 2 * nodes * T]
    radius = max(0.5 * diameter, 1e-12)
    s = math.log(max(D, 1e-30) / (radius * radius))
    i, u = _grid_position(lo, step, nodes, s)
    h, dh_ds = _hermite_flat(H, dH, i, u, step, T, t)
    # s = ln D - 2 ln R: ds/dD = 1/D, ds/d(diameter) = -2/diameter
    return D * h, h + dh_ds, -2.0 * D * dh_ds / max(diameter, 1e-12)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def cylinder(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
             work, scr):
    """CylinderGPD: E = exp(-b d∥ c² + C(d∥, diameter) G² (1 - c²)) (Van Gelderen)."""
    dpar, diam = v[0], v[1]
    for u in range(start.shape[0] - 1):
        b, G2 = shell[0, u], shell[1, u]
        C, dC_dD, dC_ddiam = _restriction(dpar, diam, timing[u], ftab, itab, off, ioff)
        kg = C * G2
        for n in range(start[u], start[u + 1]):
            c2 = c[n] * c[n]
            e = math.exp(-b * dpar * c2 + kg * (1.0 - c2))
            E[n] = e
            if want_jac:
                dE[0, n] = e * (-b * c2 + dC_dD * G2 * (1.0 - c2))
                dE[1, n] = e * dC_ddiam * G2 * (1.0 - c2)
                dEdc[n] = e * 2.0 * c[n] * (-b * dpar - kg)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sphere(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
           work, scr):
    """SphereGPD: E = exp(C(d_intra, diameter) G²) (Murday–Cotts), isotropic."""
    diam, D = v[0], v[1]
    for u in range(start.shape[0] - 1):
        G2 = shell[1, u]
        if G2 > 0:
            C, dC_dD, dC_ddiam = _restriction(D, diam, timing[u], ftab, itab, off, ioff)
        else:
            C, dC_dD, dC_ddiam = 0.0, 0.0, 0.0
        e = math.exp(C * G2)
        for n in range(start[u], start[u + 1]):
            E[n] = e
            if want_jac:
                dE[0, n] = e * dC_ddiam * G2
                dE[1, n] = e * dC_dD * G2


# ------------------------------------------------------------------ spherical means
@njit(cache=True, inline="always", error_model="numpy")
def erf_mean(x):
    """F(x) = √(π/4x) erf(√x) and dF/dx = (e^{-x} - F)/(2x), any sign of x."""
    if abs(x) < SERIES_LIMIT:
        f = 1.0 - x / 3.0 + x * x / 10.0 - x * x * x / 42.0
        return f, -1.0 / 3.0 + x / 5.0 - x * x / 14.0 + x * x * x / 54.0
    if x > 0:
        r = math.sqrt(x)
        f = 0.5 * math.sqrt(math.pi) * math.erf(r) / r
    else:
        r = math.sqrt(-x)
        f = dawson(r) / r * math.exp(-x)
    return f, (math.exp(-x) - f) / (2.0 * x)


@njit(cache=True, error_model="numpy")
def dawson(x):
    """Dawson's integral D(x) = e^{-x²} ∫₀ˣ e^{t²} dt (Rybicki's method, ~1e-12)."""
    h = 0.4
    a1, a2, a3 = 2.0 / 3.0, 0.4, 2.0 / 7.0
    if abs(x) < 0.2:
        x2 = x * x
        return x * (1.0 - a1 * x2 * (1.0 - a2 * x2 * (1.0 - a3 * x2)))
    xx = abs(x)
    n0 = 2 * int(0.5 * xx / h + 0.5)
    xp = xx - n0 * h
    e1 = math.exp(2.0 * xp * h)
    e2 = e1 * e1
    d1 = n0 + 1.0
    d2 = d1 - 2.0
    total = 0.0
    for i in range(1, 30):
        c = math.exp(-((2.0 * i - 1.0) * h) ** 2)
        total += c * (e1 / d1 + 1.0 / (d2 * e1))
        d1 += 2.0
        d2 -= 2.0
        e1 *= e2
    out = 0.5641895835 * math.copysign(math.exp(-xp * xp), x) * total
    return out


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sm_zeppelin(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
                work, scr):
    """Spherical-mean zeppelin: exp(-b d⊥) F(b (d∥ - d⊥))."""
    dpar, dperp = v[0], v[1]
    for u in range(start.shape[0] - 1):
        b = shell[0, u]
        g = math.exp(-b * dperp)
        f, df = erf_mean(b * (dpar - dperp))
        for n in range(start[u], start[u + 1]):
            E[n] = g * f
            if want_jac:
                dE[0, n] = g * b * df
                dE[1, n] = -b * g * f - g * b * df


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sm_stick(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
             work, scr):
    """Spherical-mean stick: F(b d∥)."""
    d = v[0]
    for u in range(start.shape[0] - 1):
        b = shell[0, u]
        f, df = erf_mean(b * d)
        for n in range(start[u], start[u + 1]):
            E[n] = f
            if want_jac:
                dE[0, n] = b * df


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sm_tensor(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
              work, scr):
    """Spherical-mean tensor: the zeppelin's with d⊥ = ratio · d∥."""
    d, r = v[0], v[1]
    for u in range(start.shape[0] - 1):
        b = shell[0, u]
        g = math.exp(-b * r * d)
        f, df = erf_mean(b * d * (1.0 - r))
        for n in range(start[u], start[u + 1]):
            E[n] = g * f
            if want_jac:
                dE[0, n] = -b * r * g * f + g * b * (1.0 - r) * df
                dE[1, n] = -b * d * g * f - g * b * d * df


#: Scratch floats a piece may use (10 K for the longest Watson series, K ≤ 31).
SCRATCH = 512


@njit(cache=True, error_model="numpy")
def evaluate_piece(kind, v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE,
                   dEdc, work, scr):
    """Run the piece of ``kind`` (see the module docstring for the arguments)."""
    if kind == BALL:
        ball(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc, work,
             scr)
    elif kind == STICK:
        stick(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc, work,
              scr)
    elif kind == ZEPPELIN:
        zeppelin(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
                 work, scr)
    elif kind == DOT:
        dot(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc, work,
            scr)
    elif kind == WATSON_STICK:
        watson_stick(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE,
                     dEdc, work, scr)
    elif kind == WATSON_ZEPPELIN:
        watson_zeppelin(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE,
                        dEdc, work, scr)
    elif kind == CYLINDER:
        cylinder(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
                 work, scr)
    elif kind == SPHERE:
        sphere(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
               work, scr)
    elif kind == SM_STICK:
        sm_stick(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
                 work, scr)
    elif kind == SM_ZEPPELIN:
        sm_zeppelin(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE,
                    dEdc, work, scr)
    elif kind == SM_TENSOR:
        sm_tensor(v, c, shell, start, timing, ftab, itab, off, ioff, want_jac, E, dE, dEdc,
                  work, scr)
