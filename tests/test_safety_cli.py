"""Issue 23 through the CLI: full disks and read-only folders end in one line with nothing
half-written, one run per output folder (live and stale locks), honest throughput, strict
JSON, links and folders the user owns, the composer's save, BIDS inheritance, slab-wise
``info``. The crafted-file cases are rows of ``test_bad_input_matrix.py``."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from microlearn.cli import main
from microlearn.data.dataset import load_dataset, load_maps
from microlearn.data.phantom import make_phantom

FIT = ["--method", "dictionary", "--sigma", "30", "--chunk-voxels", "40"]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(shape=(8, 8, 3), seed=1).save(tmp_path_factory.mktemp("s") / "ph")


def _strict(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _leftovers(root):
    """Temporary and staging files microlearn writes on the way (must not outlive a run)."""
    return [p for p in root.rglob("*") if p.name.startswith((".tmp-", ".slab_", ".lock-"))
            or "staging" in p.name or p.name.endswith(".lock")]


def _said(err):
    """stderr without tqdm's progress lines: a traceback, if any, stays."""
    assert "Traceback" not in err, err
    return [line for line in err.strip().splitlines() if "(slabs)" not in line]


def _partial_then(code):
    """A writer that writes half its bytes and then fails like the OS would."""
    def write(*args, **kwargs):
        target = args[1] if len(args) > 1 else args[0]
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as fh:
                fh.write(b"half")
        raise OSError(code, os.strerror(code))
    return write


@pytest.mark.parametrize("code, fix", [(errno.ENOSPC, "the disk is full"),
                                       (errno.EROFS, "read-only"),
                                       (errno.EACCES, "permission denied")])
@pytest.mark.parametrize("where", ["slab", "map"])
def test_os_errors_end_in_one_line_and_leave_nothing(where, code, fix, phantom, tmp_path,
                                                     monkeypatch, capsys):
    out = tmp_path / "out"
    if where == "slab":  # the work folder's disk (np.savez of a slab)
        monkeypatch.setattr("microlearn.run.workdir.np.savez", _partial_then(code))
    else:  # the output folder's disk (the NIfTI writer)
        monkeypatch.setattr("microlearn.data.writers.nib.save",
                            lambda img, path: _partial_then(code)(img, path))
    assert main(["fit", str(phantom), *FIT, "--out", str(out)]) == 2
    err = [line for line in _said(capsys.readouterr().err)
           if line.strip() and not line.startswith("warning:")]  # input warnings come first
    assert len(err) == 1, err
    assert os.strerror(code) in err[0] and fix in err[0] and str(tmp_path) in err[0], err[0]
    assert not out.exists(), "a failed run leaves no (empty) --out"
    assert not _leftovers(tmp_path), _leftovers(tmp_path)
    work = tmp_path / "out.work"
    if where == "slab":  # nothing worth resuming: no work folder either
        assert not work.exists()
    else:  # every slab was computed: kept for --resume, which then finishes the job
        assert len(list(work.glob("slab_*.npz"))) > 0
        monkeypatch.undo()
        assert main(["fit", str(phantom), *FIT, "--resume", "--out", str(out)]) == 0
        assert not work.exists() and (out / "odi.nii.gz").is_file()


def _hold_lock(path):
    """Another process that takes the lock ``path`` and keeps it."""
    code = ("import sys, time; from pathlib import Path; from microlearn.data import locks; "
            "locks.acquire(Path(sys.argv[1]), what='x'); print('held', flush=True); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("lock", ["out.work/run.lock", "out/.microlearn.lock"])
def test_second_run_is_refused_and_a_crashed_runs_lock_is_stale(lock, phantom, tmp_path,
                                                                capsys):
    path = tmp_path / lock
    path.parent.mkdir()
    holder = _hold_lock(path)
    try:
        assert main(["fit", str(phantom), *FIT, "--out", str(tmp_path / "out")]) == 2
        err = _said(capsys.readouterr().err)
        assert len(err) == 1 and f"pid {holder.pid}" in err[0], err
        assert "in use by another microlearn run" in err[0]
        assert not (tmp_path / "out" / "odi.nii.gz").exists()
    finally:
        holder.kill()  # a crash: the lock stays behind, its process is gone
        holder.wait()
    assert path.exists()
    assert main(["fit", str(phantom), *FIT, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "odi.nii.gz").is_file()
    assert not _leftovers(tmp_path) and not (tmp_path / "out.work").exists()


def test_live_lock_of_this_process_is_not_taken_over(tmp_path):
    from microlearn.data import locks

    record = locks.acquire(tmp_path / "l", what="folder f")
    with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
        locks.acquire(tmp_path / "l", what="folder f")
    locks.release(tmp_path / "l", record)
    assert not (tmp_path / "l").exists()


def test_lock_of_a_reused_pid_is_stale(tmp_path):
    """A pid that runs again, but started at another time, no longer holds the lock."""
    from microlearn.data import locks

    owner = {**locks.owner_record(), "start_ticks": -1}
    assert locks.is_stale(owner)
    assert not locks.is_stale(locks.owner_record())
    assert not locks.is_stale({**owner, "host": "another-host"})  # cannot be checked
    assert locks.is_stale({})  # unreadable


def test_killed_runs_staging_and_lock_are_cleaned(phantom, tmp_path):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from microlearn.data import locks

    (out / ".microlearn-staging-abc123").mkdir(parents=True)
    (out / ".microlearn-staging-abc123" / "odi.nii.gz").write_text("half")
    (out / ".microlearn.lock").write_text(json.dumps({**locks.owner_record(),
                                                      "pid": dead.pid}))
    (out / "notes.txt").write_text("mine")
    assert main(["fit", str(phantom), *FIT, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert (out / "notes.txt").read_text() == "mine"


def test_empty_work_dir_of_the_user_is_kept(phantom, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    assert main(["fit", str(phantom), *FIT, "--work-dir", str(wd),
                 "--out", str(tmp_path / "out")]) == 0
    assert wd.is_dir() and not any(wd.iterdir())


def test_dangling_link_is_replaced_only_with_force_and_never_followed(phantom, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "odi.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    assert main(["fit", str(phantom), *FIT, "--out", str(out)]) == 2
    assert "already holds odi.nii.gz" in capsys.readouterr().err
    assert main(["fit", str(phantom), *FIT, "--out", str(out), "--force"]) == 0
    assert not (out / "odi.nii.gz").is_symlink() and not (tmp_path / "nowhere.nii.gz").exists()


def test_resume_counts_only_the_voxels_this_run_fitted(phantom, tmp_path, monkeypatch,
                                                       capsys):
    import microlearn.run.chunked as chunked

    real, calls = chunked.save_slab, []

    fit = ["--method", "dictionary", "--sigma", "30", "--chunk-voxels", "20"]  # 3 slabs

    def interrupt_after_two(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[1])
        real(*args)

    out = tmp_path / "out"
    monkeypatch.setattr(chunked, "save_slab", interrupt_after_two)
    assert main(["fit", str(phantom), *fit, "--out", str(out)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["fit", str(phantom), *fit, "--resume", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    info = _strict((out / "fit.json").read_text())
    mask = load_dataset(phantom).mask
    slabs = chunked.plan_slabs(mask, 20)
    kept = sum(int(mask[..., z0:z1].sum()) for i, (z0, z1) in enumerate(slabs) if i in calls)
    assert info["n_voxels"] == int(mask.sum())
    assert info["n_fitted"] == int(mask.sum()) - kept > 0
    steady = info["fit_seconds"] - info["setup_seconds"]
    assert info["vox_per_s"] == pytest.approx(info["n_usable_fitted"] / steady)
    assert f"({kept} resumed from the work folder)" in said


def test_volume_without_usable_signal_says_so_and_fit_json_is_strict(phantom, tmp_path,
                                                                    capsys):
    d = shutil.copytree(phantom, tmp_path / "d")
    img = nib.load(d / "data.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.float32), img.affine), d / "data.nii.gz")
    with pytest.warns(RuntimeWarning, match="no voxel has a usable signal"):
        assert main(["fit", str(d), *FIT, "--out", str(tmp_path / "o")]) == 0
    said = capsys.readouterr().out
    assert "has a usable signal" in said and "vox/s" not in said
    info = _strict((tmp_path / "o" / "fit.json").read_text())
    assert info["vox_per_s"] is None and info["n_usable"] == 0


def test_write_json_writes_null_for_nan(tmp_path):
    from microlearn.data.writers import write_json

    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.inf, np.float32(2)],
                                     "c": np.array([np.nan, 1.0])})
    assert _strict((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 2.0],
                                                          "c": [None, 1.0]}


def test_sigma_map_with_some_bad_voxels_fits_them_without_the_floor(phantom, tmp_path):
    d = shutil.copytree(phantom, tmp_path / "d")
    img = nib.load(d / "data.nii.gz")
    sigma = np.full(img.shape[:3], 30.0, np.float32)
    mask = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj) > 0
    sigma[tuple(np.argwhere(mask)[0])] = np.nan
    nib.save(nib.Nifti1Image(sigma, img.affine), d / "sigma.nii.gz")
    with pytest.warns(RuntimeWarning, match="not positive and finite"):
        assert main(["fit", str(d), "--method", "dictionary", "--sigma-map",
                     str(d / "sigma.nii.gz"), "--out", str(tmp_path / "o")]) == 0


def test_names_are_checked_where_they_enter():
    from microlearn.models.spec import load_model
    from microlearn.names import MAX_LENGTH, check_name

    for bad in ("", "..", "a/b", "/abs", "a b", "x" * (MAX_LENGTH + 1), "é", ".hidden", 3,
                None, "a\x00b", "odi.nii"):
        with pytest.raises(ValueError, match="not a valid name"):
            check_name(bad, field="map name", source="f.json")
    assert check_name("odi_1", field="x") == "odi_1"
    spec = {"format": "microlearn-model", "compose": [{"compartment": "Stick",
                                                       "name": "a\\b"}]}
    with pytest.raises(ValueError, match="compartment name"):
        load_model(spec)
    with pytest.raises(ValueError, match="each entry"):
        load_model({"format": "microlearn-model", "compose": ["Stick"]})


def test_write_maps_refuses_a_name_that_is_a_path(tmp_path):
    from microlearn.data.writers import write_maps

    with pytest.raises(ValueError, match="map name '../x'"):
        write_maps(tmp_path / "o", {"../x": np.zeros((2, 2, 2))}, np.eye(4))
    assert not (tmp_path / "x.nii.gz").exists()


def test_composer_save_refuses_to_replace_silently(tmp_path):
    from microlearn.panels.model_composer import ModelComposer

    composer = ModelComposer(glyphs=False, data_root=tmp_path)
    composer.spec_name.value = "mine"
    path = composer.save()
    path.write_text(path.read_text())  # the user's copy
    before = path.read_bytes()
    composer.kind.value = "ivim"
    with pytest.raises(ValueError, match="already exists"):
        composer.save()
    assert path.read_bytes() == before
    composer.replace.value = True
    assert composer.save() == path and path.read_bytes() != before
    assert composer.replace.value is False  # one replacement per tick
    composer.spec_name.value = "../escape"
    with pytest.raises(ValueError, match="not a valid name"):
        composer.save()


def test_bids_inheritance_stops_at_the_data_root(phantom, tmp_path):
    top = tmp_path / "study"
    dwi = top / "sub-01" / "dwi"
    dwi.mkdir(parents=True)
    (top / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    (top / "dwi.json").write_text('{"EchoTime": 0.2}')  # above the dashboard's root
    for src, ext in (("data.nii.gz", ".nii.gz"), ("bvals", ".bval"), ("bvecs", ".bvec")):
        shutil.copy(phantom / src, dwi / f"sub-01_dwi{ext}")
    assert np.allclose(load_dataset(dwi).acq.TE, 0.2)  # the CLI reads the whole dataset
    root = top / "sub-01"
    assert not np.allclose(load_dataset(dwi, within=root).acq.TE, 0.2)
    from microlearn.panels.fit_or_learn import DataSource

    ds, _ = DataSource(root).load("folder", "dwi")
    assert not np.allclose(ds.acq.TE, 0.2)


def test_info_reads_slab_wise(phantom, tmp_path, monkeypatch, capsys):
    from microlearn.commands.info import bad_voxels
    from microlearn.data.dataset import Dataset

    d = shutil.copytree(phantom, tmp_path / "d")
    img = nib.load(d / "data.nii.gz")
    data = np.asarray(img.dataobj).copy()
    mask = np.asarray(nib.load(d / "nodif_brain_mask.nii.gz").dataobj) > 0
    idx = tuple(np.argwhere(mask)[[0, -1]].T)  # one voxel in the first slab, one in the last
    data[idx] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), d / "data.nii.gz")

    def whole(*args, **kwargs):
        raise AssertionError("info read the whole volume")

    monkeypatch.setattr(Dataset, "load_data", whole)
    assert bad_voxels(load_dataset(d), chunk_voxels=10).startswith("2 voxel(s)")
    assert main(["info", str(d)]) == 0
    assert "2 voxel(s) have NaN" in capsys.readouterr().out


def test_failed_run_after_the_fit_leaves_no_out_and_resumes(phantom, tmp_path, monkeypatch,
                                                           capsys):
    """An error while the maps are written (here a crafted map name from a block) leaves no
    --out; the kept slabs let --resume finish."""
    out = tmp_path / "out"
    monkeypatch.setattr("microlearn.run.chunked.assemble",
                        lambda *a: {"../x": np.zeros((8, 8, 3), np.float32)})
    assert main(["fit", str(phantom), *FIT, "--out", str(out)]) == 2
    assert "map name '../x'" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "x.nii.gz").exists()
    monkeypatch.undo()
    assert main(["fit", str(phantom), *FIT, "--out", str(out), "--resume"]) == 0
    assert "odi" in load_maps(out)


def test_predict_after_resume_counts_only_this_runs_voxels(phantom, tmp_path, monkeypatch,
                                                          capsys):
    import microlearn.run.chunked as chunked
    from microlearn.learning import train

    est = tmp_path / "est"
    train("noddi", load_dataset(phantom).acq, estimator="polynomial", n_samples=500).save(est)
    real, calls = chunked.save_slab, []

    def interrupt_after_one(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(args[1])
        real(*args)

    out = tmp_path / "out"
    argv = ["predict", str(est), str(phantom), "--chunk-voxels", "20", "--out", str(out)]
    monkeypatch.setattr(chunked, "save_slab", interrupt_after_one)
    assert main(argv) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    info = _strict((out / "predict.json").read_text())
    mask = load_dataset(phantom).mask
    z0, z1 = chunked.plan_slabs(mask, 20)[calls[0]]
    kept = int(mask[..., z0:z1].sum())
    assert info["n_predicted"] == info["n_voxels"] - kept
    assert info["vox_per_s"] == pytest.approx(info["n_predicted"] / info["chunked_seconds"])
    assert f"({kept} resumed from the work folder)" in capsys.readouterr().out


def test_lock_without_hard_links(tmp_path, monkeypatch):
    """File systems without hard links get an exclusive create instead."""
    from microlearn.data import locks

    def no_links(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(locks.os, "link", no_links)
    record = locks.acquire(tmp_path / "l", what="f")
    assert locks.read_owner(tmp_path / "l")["pid"] == os.getpid()
    with pytest.raises(ValueError, match="in use"):
        locks.acquire(tmp_path / "l", what="f")
    locks.release(tmp_path / "l", record)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_read_only_work_folder_disk_ends_in_one_line(phantom, tmp_path, monkeypatch, capsys):
    from pathlib import Path

    real = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.name.endswith(".work"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["fit", str(phantom), *FIT, "--out", str(tmp_path / "out")]) == 2
    err = _said(capsys.readouterr().err)
    assert len(err) == 1 and "cannot create the work folder" in err[0], err
    assert "Read-only file system" in err[0] and "--work-dir" in err[0]
    assert sorted(tmp_path.iterdir()) == []
