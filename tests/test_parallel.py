"""Chunked whole-brain execution: slabs, resume after interruption, Dask equals local."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_dataset, load_maps
from microlearn.data.phantom import make_phantom
from microlearn.run.chunked import FitBlock, PredictBlock, plan_slabs, run_chunked


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(shape=(10, 10, 6), seed=3).save(tmp_path_factory.mktemp("ph") / "ph")


@pytest.fixture(scope="module")
def block(phantom):
    ds = load_dataset(phantom)
    return FitBlock(model="noddi", n_fibres=1, method="mix", acq=ds.acq.to_dict(), sigma=20.0)


def test_plan_slabs_cover_the_volume():
    mask = np.zeros((4, 4, 10), bool)
    mask[:, :, 2:9] = True
    slabs = plan_slabs(mask, 30)
    assert slabs[0][0] == 0 and slabs[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(slabs, slabs[1:]))
    assert all(mask[..., z0:z1].sum() >= 30 for z0, z1 in slabs[:-1])


class Interrupting:
    """Wraps a block function and raises KeyboardInterrupt on its ``stop_at``-th call."""

    def __init__(self, inner, stop_at):
        self.inner, self.stop_at, self.calls = inner, stop_at, 0

    def __call__(self, signal):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner(signal)

    def key(self):
        return self.inner.key()


def test_resume_after_interruption_gives_identical_maps(phantom, block, tmp_path):
    ds = load_dataset(phantom)
    whole = run_chunked(block, ds, tmp_path / "whole", chunk_voxels=80, progress=False)
    assert whole["slabs"] >= 3
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_chunked(Interrupting(block, 3), ds, out, chunk_voxels=80, progress=False)
    assert not list(out.glob("*.nii.gz"))  # no map before the run is complete
    kept = sorted((tmp_path / "out.work").glob("slab_*.npz"))
    assert len(kept) == 2
    counted = Interrupting(block, stop_at=0)
    again = run_chunked(counted, ds, out, chunk_voxels=80, resume=True, progress=False)
    assert again["resumed"] == 2 and counted.calls == whole["slabs"] - 2
    a, b = load_maps(tmp_path / "whole"), load_maps(out)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not (tmp_path / "out.work").exists()


def test_resume_refuses_another_job(phantom, block, tmp_path):
    ds = load_dataset(phantom)
    with pytest.raises(KeyboardInterrupt):
        run_chunked(Interrupting(block, 2), ds, tmp_path / "o", chunk_voxels=80,
                    progress=False)
    other = FitBlock(**{**block.__dict__, "method": "dictionary"})
    with pytest.raises(ValueError, match="belongs to another job"):
        run_chunked(other, ds, tmp_path / "o", chunk_voxels=80, resume=True, progress=False)


def test_cli_resume(phantom, tmp_path, capsys):
    args = ["fit", str(phantom), "--chunk-voxels", "80", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    ref = load_maps(tmp_path / "o")
    shutil.rmtree(tmp_path / "o")
    # a work folder left by an interrupted run with one slab done
    ds = load_dataset(phantom)
    with pytest.raises(KeyboardInterrupt):
        from microlearn.run.chunked import sample_sigma

        blk = FitBlock(model="noddi", n_fibres=1, method="mix", acq=ds.acq.to_dict(),
                       sigma=sample_sigma(ds))
        run_chunked(Interrupting(blk, 2), ds, tmp_path / "o", chunk_voxels=80, progress=False)
    assert main(args + ["--resume"]) == 0
    got = load_maps(tmp_path / "o")
    for k in ref:
        np.testing.assert_array_equal(ref[k], got[k])


def test_dask_equals_local(phantom, block, tmp_path, dask_cluster):
    address, _ = dask_cluster
    from microlearn.learning import train

    ds = load_dataset(phantom)
    local = run_chunked(block, ds, tmp_path / "local", chunk_voxels=80, progress=False)
    remote = run_chunked(block, ds, tmp_path / "dask", chunk_voxels=80, progress=False,
                         scheduler=address)
    # voxels without tissue (FISO ~ 1, the phantom's CSF) are ill-conditioned fits (their
    # orientation is undefined): a last-bit difference between the compiled code of two
    # processes moves them slightly (seen: FISO by 3e-5, mu by 1e-3 in one voxel); every
    # tissue voxel must be bit-identical
    tissue = local["maps"]["fiso"] < 0.95
    free = ~tissue & np.isfinite(local["maps"]["fiso"])
    for k in local["maps"]:
        a, b = local["maps"][k], remote["maps"][k]
        np.testing.assert_array_equal(a[tissue], b[tissue], err_msg=k)
        if not k.startswith("mu") and k != "kappa" and not k.endswith("_std"):
            # kappa = 1/tan(π odi/2) multiplies an odi difference near its 0.02 bound by
            # ~1600, and the tissue parameters' bounds of a voxel without tissue come from a
            # near-singular Fisher matrix: free water's odi is noise anyway
            np.testing.assert_allclose(a[free], b[free], rtol=1e-3, atol=1e-3, err_msg=k)
    est = train("noddi", ds.acq, estimator="polynomial", n_samples=3000)
    est.save(tmp_path / "est")
    pb = PredictBlock(str(tmp_path / "est"))
    a = run_chunked(pb, ds, tmp_path / "p_local", chunk_voxels=80, progress=False)
    b = run_chunked(pb, ds, tmp_path / "p_dask", chunk_voxels=80, progress=False,
                    scheduler=address)
    for k in a["maps"]:
        np.testing.assert_array_equal(a["maps"][k], b["maps"][k])
