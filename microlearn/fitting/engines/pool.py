"""Process-pool plumbing for the generic engines (must be importable by workers).

Workers are started with ``forkserver``: the parent may already run numba's OpenMP
threads (compiled signal kernels), and forking such a process is unsafe. Each worker
uses one numba thread so that ``workers`` processes share the cores without
oversubscription.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os


def init_worker() -> None:
    """Give each worker process a single numba thread."""
    from numba import set_num_threads

    set_num_threads(1)


_POOLS: dict = {}


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` forkserver processes, kept for reuse.

    Starting the processes (imports included) costs ~0.5 s, more than a whole fit of a
    few thousand voxels with the cheaper engines; the pool is therefore created once per
    process and size and reused by later fits. :func:`discard_pool` drops a broken one.
    """
    from concurrent.futures import ProcessPoolExecutor

    key = (os.getpid(), workers)
    pool = _POOLS.get(key)
    if pool is None:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=init_worker,
                                   mp_context=multiprocessing.get_context("forkserver"))
        _POOLS[key] = pool
        if len(_POOLS) == 1:
            atexit.register(_shutdown_pools)
    return pool


def discard_pool(workers: int) -> None:
    """Shut down and forget the pool of ``workers`` processes (after a failure)."""
    pool = _POOLS.pop((os.getpid(), workers), None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _shutdown_pools() -> None:
    for key in list(_POOLS):
        if key[0] == os.getpid():
            _POOLS.pop(key).shutdown(wait=False, cancel_futures=True)


def fit_block_job(engine, y, sigma, directions, start):
    """Run ``engine.fit_block`` on one block and return it with its start index."""
    return start, engine.fit_block(y, sigma, directions)
