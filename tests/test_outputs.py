"""Outputs never touch a user's files, honour the umask and say honestly what they are."""

from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_maps
from microlearn.data.phantom import make_phantom
from microlearn.data.writers import staged_output


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(shape=(8, 8, 2), seed=3).save(tmp_path_factory.mktemp("o") / "ph")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_fit_into_a_folder_with_other_files_keeps_them(phantom, tmp_path):
    out = tmp_path / "maps"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "sub").mkdir()
    (out / "sub" / "odi.nii.gz").write_text("not ours")
    assert main(["fit", str(phantom), "--out", str(out)]) == 0
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "sub" / "odi.nii.gz").read_text() == "not ours"
    assert {"odi.nii.gz", "fit.json", "success.nii.gz"} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".*staging*")) and not list(out.glob(".*"))


def test_existing_maps_are_replaced_only_with_force(phantom, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["fit", str(phantom), "--out", str(out)]) == 0
    (out / "mine.txt").write_text("keep")
    first = (out / "fit.json").read_bytes()
    assert main(["fit", str(phantom), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "fit.json").read_bytes() == first
    assert main(["fit", str(phantom), "--out", str(out), "--force", "--method",
                 "dictionary"]) == 0
    assert json.loads((out / "fit.json").read_text())["method"] == "dictionary"
    assert (out / "mine.txt").read_text() == "keep"


def test_input_folder_is_never_written(phantom, tmp_path):
    d = shutil.copytree(phantom, tmp_path / "d")
    before = sorted(p.name for p in d.rglob("*"))
    assert main(["fit", str(d), "--out", str(d)]) == 2
    assert main(["fit", str(d), "--out", str(tmp_path)]) == 2
    assert sorted(p.name for p in d.rglob("*")) == before


def test_staged_output_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.txt").write_text("old b")
    with pytest.raises(RuntimeError):
        with staged_output(out, force=True) as st:
            (st / "a.txt").write_text("new a")
            raise RuntimeError("crash while writing")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    # a move that fails half-way is undone: the earlier file goes back, the old one returns
    (out / "d").write_text("a file where the run writes a folder: the last move fails")
    with pytest.raises(OSError):
        with staged_output(out, force=True) as st:
            for name in ("a.txt", "b.txt"):
                (st / name).write_text(f"new {name}")
            (st / "d").mkdir()
            (st / "d" / "x.txt").write_text("new x")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt", "d"]
    assert (out / "b.txt").read_text() == "old b"
    # a folder is never replaced, even with force
    (out / "c.txt").mkdir()
    with pytest.raises(ValueError, match="never replaces folders"):
        with staged_output(out, force=True) as st:
            (st / "c.txt").write_text("new c")
    assert (out / "c.txt").is_dir()
    assert not list(tmp_path.glob(".*")) and not list(out.glob(".*"))


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755),
                                                        (0o027, 0o640, 0o750)])
def test_outputs_honour_the_umask(umask, file_mode, dir_mode, tmp_path):
    old = os.umask(umask)
    try:
        assert main(["phantom", "--out", str(tmp_path / "ph"), "--shape", "6", "6", "2"]) == 0
        assert main(["fit", str(tmp_path / "ph"), "--out", str(tmp_path / "new")]) == 0
        (tmp_path / "old").mkdir(mode=0o777)
        assert main(["fit", str(tmp_path / "ph"), "--out", str(tmp_path / "old")]) == 0
    finally:
        os.umask(old)
    for folder in ("ph", "new", "old"):
        root = tmp_path / folder
        files = [p for p in root.rglob("*") if p.is_file()]
        assert files and all(_mode(p) == file_mode for p in files), folder
        dirs = [p for p in root.rglob("*") if p.is_dir()] + ([root] if folder != "old" else [])
        assert all(_mode(p) == dir_mode for p in dirs), folder


def test_learn_keeps_other_files_and_needs_force(tmp_path, capsys, umask_022):
    out = tmp_path / "est"
    out.mkdir()
    (out / "README").write_text("ours")
    argv = ["learn", "--scheme", "hcp", "--estimator", "polynomial", "--n-samples", "500",
            "--out", str(out)]
    assert main(argv) == 0
    assert (out / "README").read_text() == "ours" and (out / "estimator.json").is_file()
    assert _mode(out / "estimator.skops") == 0o644
    assert main(argv) == 2 and "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0 and (out / "README").is_file()


def test_resume_records_the_version_and_options(phantom, tmp_path, capsys, monkeypatch):
    import microlearn

    out = tmp_path / "maps"
    argv = ["fit", str(phantom), "--out", str(out), "--chunk-voxels", "20"]
    assert main(argv + ["--work-dir", str(tmp_path / "wd")]) == 0
    assert not (tmp_path / "wd").exists()  # removed after success
    from microlearn.run.chunked import MANIFEST

    work = tmp_path / "kept"
    from microlearn.data.dataset import load_dataset
    from microlearn.run.chunked import FitBlock, run_chunked

    ds = load_dataset(phantom)
    block = FitBlock(model="noddi", n_fibres=1, method="mix", acq=ds.acq.to_dict(), sigma=30.0)
    run_chunked(block, ds, tmp_path / "m2", work_dir=work, keep_work=True, chunk_voxels=20,
                progress=False)
    manifest = json.loads((work / MANIFEST).read_text())
    assert manifest["microlearn"] == microlearn.__version__
    assert manifest["job"]["method"] == "mix" and manifest["job"]["sigma"] == 30.0
    monkeypatch.setattr(microlearn, "__version__", "99.0")
    with pytest.raises(ValueError, match="written by microlearn"):
        run_chunked(block, ds, tmp_path / "m3", work_dir=work, resume=True, chunk_voxels=20,
                    progress=False)


def test_unconverged_fits_are_counted_in_fit_json(phantom, tmp_path, monkeypatch):
    from microlearn.fitting.compiled.noddi_fast import NoddiMixEngine

    out = tmp_path / "maps"
    assert main(["fit", str(phantom), "--out", str(out)]) == 0
    conv = json.loads((out / "fit.json").read_text())["convergence"]
    n = json.loads((out / "fit.json").read_text())["n_voxels"]
    assert conv["engine"] == "NoddiMixEngine" and "max_iter" in conv["criterion"]
    assert conv["n_not_converged"] <= 0.02 * n
    # one LM iteration cannot converge: the engine must say so, voxel by voxel
    monkeypatch.setitem(NoddiMixEngine.__init__.__kwdefaults__, "max_iter", 1)
    out1 = tmp_path / "maps1"
    assert main(["fit", str(phantom), "--out", str(out1)]) == 0
    info = json.loads((out1 / "fit.json").read_text())
    assert info["convergence"]["n_not_converged"] >= 0.5 * n
    success = load_maps(out1, names=("success",))["success"]
    assert info["success_fraction"] == pytest.approx(
        1 - info["convergence"]["n_not_converged"] / n)
    assert (success[np.isfinite(success)] == 0).sum() >= 0.5 * n


@pytest.mark.parametrize("method", ["mix", "interior-point"])
def test_generic_engines_report_convergence(method, hcp):
    import microlearn as ml
    from microlearn.fitting import fit

    model = ml.zcd()
    _, _, noisy = ml.simulate_dataset(model, hcp, 60, snr=30, random_state=1)
    ok = fit(model, hcp, 1000 * noisy, method=method, sigma=30.0).success
    starved = fit(model, hcp, 1000 * noisy, method=method, sigma=30.0,
                  **({"max_iter": 1} if method == "mix" else {})).success
    assert ok.mean() > 0.5
    if method == "mix":
        assert starved.mean() < ok.mean()


@pytest.mark.parametrize("n_b0", [2, 3, 5, 10, 20])
def test_sigma_from_b0_repeats_is_unbiased(n_b0):
    from microlearn.acquisition import Acquisition
    from microlearn.data.noise import estimate_sigma

    rng = np.random.default_rng(n_b0)
    bvals = np.r_[np.zeros(n_b0), np.full(6, 1000.0)]
    bvecs = np.r_[np.tile([1.0, 0, 0], (n_b0, 1)), np.eye(3), np.eye(3)]
    acq = Acquisition.from_bvals_bvecs(bvals, bvecs, bvals_unit="s/mm^2")
    sigma = 25.0
    estimates = []
    for _ in range(40):  # repeated simulations of a 500-voxel brain
        s0 = rng.uniform(500, 3000, (500, 1))
        data = s0 + rng.normal(0, sigma, (500, acq.n_measurements))
        estimates.append(estimate_sigma(data, acq))
    assert abs(np.mean(estimates) / sigma - 1) < 0.02


def test_sigma_method_is_recorded(phantom, tmp_path):
    assert main(["fit", str(phantom), "--out", str(tmp_path / "a")]) == 0
    noise = json.loads((tmp_path / "a" / "fit.json").read_text())["noise"]
    assert noise["source"] == "b0 repeats" and "unbiased" in noise["estimator"]
    assert main(["fit", str(phantom), "--out", str(tmp_path / "b"), "--sigma", "20"]) == 0
    info = json.loads((tmp_path / "b" / "fit.json").read_text())
    assert info["sigma"] == 20 and info["noise"]["source"] == "--sigma"


class _Gappy:
    """A stand-in estimator that answers the truth but leaves some voxels NaN."""

    def __init__(self, truth, holes):
        self.truth, self.holes, self.info = truth, holes, {}

    def check_acquisition(self, acq):
        pass

    def predict_maps(self, data, mask, acq=None):
        maps = {k: np.where(self.holes, np.nan, v) for k, v in self.truth.items()
                if np.ndim(v) == 3}
        return maps


def test_compare_counts_no_answer_and_scores_common_voxels(phantom):
    from microlearn.data.dataset import load_dataset
    from microlearn.run.compare import compare

    ds = load_dataset(phantom)
    truth = load_maps(phantom / "truth")
    scored = ds.mask & (truth["n_fibres"] == 1)  # single-fibre voxels are compared
    holes = np.zeros(ds.mask.shape, bool)
    holes[tuple(np.argwhere(scored)[:7].T)] = True  # 7 of them without an answer
    res = compare(ds, "noddi", ["mix", ("gappy", _Gappy(truth, holes))], truth=truth)
    rows = {r["method"]: r for r in res.rows}
    n = int(scored.sum())
    assert rows["gappy"]["no_answer"] == 7 and rows["mix"]["no_answer"] == 0
    assert rows["mix"]["scored_voxels"] == rows["gappy"]["scored_voxels"] == n - 7
    assert rows["gappy"]["rmse_odi"] == 0.0  # exact where it answers
    html = res._repr_html_()
    assert "no_answer" in html and "scored_voxels" in html


def test_numba_cache_moves_when_the_install_is_read_only(tmp_path, monkeypatch):
    from microlearn import _numba_cache

    install = tmp_path / "site" / "microlearn"
    install.mkdir(parents=True)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert _numba_cache.configure(install) is None  # writable install: numba's default
    install.chmod(0o555)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(install)
                        else real_access(p, m))  # root ignores modes: ask as a user would
    try:
        chosen = _numba_cache.configure(install)
    finally:
        install.chmod(0o755)
    assert chosen == str(tmp_path / "cache" / "microlearn" / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == chosen
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/elsewhere")
    assert _numba_cache.configure(install) is None  # the user's own setting wins


def test_unwritable_output_folder_is_one_clear_line(phantom, tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # tests run as root, which ignores folder modes: deny as the kernel would for a user
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(locked)
                        else real_access(p, m))
    assert main(["fit", str(phantom), "--out", str(locked)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0] and not any(locked.iterdir())
