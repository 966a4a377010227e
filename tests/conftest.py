"""Shared, seeded fixtures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from microlearn import Acquisition


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def hcp():
    return Acquisition.scheme("hcp")


@pytest.fixture(scope="session")
def activeax_acq():
    return Acquisition.scheme("activeax")


@pytest.fixture(scope="session")
def ivim_acq():
    return Acquisition.scheme("ivim")


@pytest.fixture
def unit_vectors(rng):
    v = rng.normal(size=(50, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1.

    Yields ``(address, processes)`` with the scheduler first.
    """
    pytest.importorskip("distributed")
    bindir = Path(sys.executable).parent
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", address, "--nthreads", "1",
                 "--no-dashboard", "--local-directory", str(tmp_path / "dask")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

