"""Faults: runs killed at random points resume to identical maps; no half-written map;
a Dask worker killed mid-run is survived."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from microlearn.data.dataset import load_dataset, load_maps
from microlearn.data.phantom import make_phantom
from microlearn.run.chunked import FitBlock, run_chunked

EXE = str(Path(sys.executable).parent / "microlearn")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(shape=(10, 10, 10), seed=5).save(tmp_path_factory.mktemp("f") / "ph")


@pytest.fixture(scope="module")
def reference(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "maps"
    args = [EXE, "fit", str(phantom), "--method", "dictionary", "--chunk-voxels", "40",
            "--out", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return load_maps(out)


@pytest.mark.parametrize("sig, delay", [(signal.SIGKILL, 2.5), (signal.SIGINT, 3.5),
                                        (signal.SIGKILL, 5.0)])
def test_killed_fit_resumes_to_identical_maps(sig, delay, phantom, reference, tmp_path):
    out = tmp_path / "maps"
    args = [EXE, "fit", str(phantom), "--method", "dictionary", "--chunk-voxels", "40",
            "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # count from the start of the run (its work-folder lock), not of the process: on a loaded
    # machine importing NumPy and SciPy alone can take longer than the delay
    lock, deadline = tmp_path / "maps.work" / "run.lock", time.monotonic() + 120
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay - 2.0 + np.random.default_rng(int(delay * 10)).uniform(0, 1))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    maps = sorted(out.glob("*.nii.gz")) if out.exists() else []
    if maps:  # finished, or interrupted after the maps were published: a complete set
        assert {p.name[: -len(".nii.gz")] for p in maps} == set(reference)
        assert (out / "fit.json").exists()
    else:  # interrupted before: nothing half-written, the finished slabs are kept
        assert proc.returncode != 0
        # a kill -9 while moving in may leave the run's lock and staging folder: the next
        # run recognises both (stale) and removes them
        own = (".microlearn-staging-", ".microlearn.lock")
        assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(own)]
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and b"interrupted" in err
    # a run that finished before the signal published its maps: replacing them needs --force
    resumed = subprocess.run(args + ["--resume"] + (["--force"] if maps else []),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(tmp_path.glob(".maps.*")), "no staging folder is left behind"
    assert not list(out.glob(".microlearn*")), "no staging folder or lock is left behind"
    got = load_maps(out)
    assert sorted(got) == sorted(reference)
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k])


def test_dask_survives_a_killed_worker(phantom, tmp_path, dask_cluster):
    address, procs = dask_cluster
    ds = load_dataset(phantom)
    block = FitBlock(model="noddi", n_fibres=1, method="dictionary", acq=ds.acq.to_dict(),
                     sigma=20.0, workers=1)
    local = run_chunked(block, ds, tmp_path / "local", chunk_voxels=40, progress=False)
    work = tmp_path / "dask.work"
    stop = threading.Event()

    def kill_after_first_slab():  # mid-run whatever the machine's speed
        while not stop.is_set():
            if len(list(work.glob("slab_*.npz"))) >= 1:
                procs[1].kill()
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_after_first_slab, daemon=True)
    killer.start()
    try:
        remote = run_chunked(block, ds, tmp_path / "dask", chunk_voxels=40, progress=False,
                             scheduler=address)
    finally:
        stop.set()
        killer.join(5)
    assert procs[1].poll() is not None, "the worker was not killed during the run"
    # the dictionary engine builds its Gram matrices for each call's batch of directions at
    # once (BLAS blocking): a voxel's answer can move in the last float32 bit with the slab
    # split, and slabs retried on another worker are split differently
    for k in local["maps"]:
        np.testing.assert_allclose(local["maps"][k], remote["maps"][k], rtol=1e-5, atol=1e-7)
