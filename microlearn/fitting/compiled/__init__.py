"""Compiled (numba) fitting: the one core and the assembly of any model's signal.

:mod:`.assembly` turns a model and an acquisition into a plan and evaluates any model's
signal and Jacobian for one voxel from its compartments' compiled pieces
(:mod:`microlearn.compartments.kernels`); :mod:`.core` holds each method once (grid + NNLS
start, Levenberg–Marquardt, interior point, quality); :mod:`.engines` wraps them as
fitting engines. Which engine runs is decided by :mod:`microlearn.fitting.registry`. Their
OpenMP threads wait passively (see :func:`microlearn._numba_cache.passive_openmp`).
"""

from pathlib import Path as _Path

from ..._numba_cache import refresh_stale_kernels

refresh_stale_kernels(_Path(__file__).resolve().parents[2])
