"""Process-pool plumbing for the generic engines (must be importable by workers).

Workers are started with ``forkserver``: the parent may already run numba's OpenMP
threads (compiled signal kernels), and forking such a process is unsafe. Each worker
uses one numba thread so that ``workers`` processes share the cores without
oversubscription.
"""

from __future__ import annotations

import multiprocessing


def init_worker() -> None:
    """Give each worker process a single numba thread."""
    from numba import set_num_threads

    set_num_threads(1)


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` forkserver processes."""
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, initializer=init_worker,
                               mp_context=multiprocessing.get_context("forkserver"))


def fit_block_job(engine, y, sigma, directions, start):
    """Run ``engine.fit_block`` on one block and return it with its start index."""
    return start, engine.fit_block(y, sigma, directions)
