"""Top-level job function for process pools (must be importable by workers)."""

from __future__ import annotations


def fit_block_job(engine, y, sigma, directions, start):
    """Run ``engine.fit_block`` on one block and return it with its start index."""
    return start, engine.fit_block(y, sigma, directions)
