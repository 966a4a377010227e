"""Compiled (numba) kernels and the accelerated engines built on them."""
