"""The input checks and σ read the data once between them (no re-reading of slabs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from microlearn.data.dataset import load_dataset
from microlearn.data.qc import input_warnings
from microlearn.run import chunked

dipy = pytest.importorskip("dipy")
FILES = Path(dipy.__file__).parent / "data" / "files"


def test_checks_and_sigma_share_one_read(monkeypatch):
    calls = []
    real = chunked.read_slab

    def counting(*args, **kwargs):
        calls.append(args[1:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(chunked, "read_slab", counting)
    monkeypatch.setattr(chunked, "SMALL_VOLUME", 0)  # as a large volume: slabs, not whole
    ds = load_dataset(dwi=FILES / "small_101D.nii.gz", bvals=FILES / "small_101D.bval",
                      bvecs=FILES / "small_101D.bvec")
    lines = input_warnings(ds)
    assert any("gradient" in ln for ln in lines)  # the check ran (and said what it found)
    sigma = chunked.sample_sigma(ds)  # one b0: no σ, but the same block is used
    assert sigma is None
    chunked.sample_voxels(ds)
    assert len(calls) == 1, calls
