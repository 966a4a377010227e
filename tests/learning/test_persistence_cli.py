"""Saving/loading estimators safely, acquisition checks, and the learn/predict CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.cli import main
from microlearn.data.dataset import load_maps
from microlearn.data.phantom import make_phantom
from microlearn.learning import load_estimator, train


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def signals(hcp):
    from microlearn.learning import make_training_set

    return make_training_set("noddi", hcp, 300, random_state=5).signal * 700.0


@pytest.mark.parametrize("estimator, options", [
    ("boosted-trees", {"max_iter": 30}),
    ("bayesian", {}),
    ("dnn", {"epochs": 3}),
    ("bayesian-dnn", {"epochs": 3}),
    ("deep-ensemble", {"epochs": 3, "n_members": 3}),
])
def test_round_trip_gives_identical_predictions(estimator, options, hcp, signals, tmp_path):
    est = train("noddi", hcp, estimator=estimator, n_samples=2000, **options)
    est.save(tmp_path / "est")
    again = load_estimator(tmp_path / "est")
    a, b = est.predict_maps(signals, acq=hcp), again.predict_maps(signals, acq=hcp)
    assert sorted(a) == sorted(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert again.describe() == est.describe()


def test_acquisition_mismatch_is_refused(poly, signals):
    est, _ = poly
    other = Acquisition.scheme("hcp").subset(np.arange(287))
    with pytest.raises(ValueError, match="does not match the one this estimator was trained"):
        est.predict_maps(signals[:, :287], acq=other)
    with pytest.raises(ValueError, match="288"):
        est.predict_maps(signals[:, :287])


def test_tampered_files_are_refused(poly, tmp_path):
    import shutil

    _, path = poly
    # an acquisition edited by hand no longer matches its fingerprint
    bad = tmp_path / "edited"
    shutil.copytree(path, bad)
    meta = json.loads((bad / "estimator.json").read_text())
    meta["acquisition"]["bvals"][5] *= 2
    (bad / "estimator.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fingerprint"):
        load_estimator(bad)
    # a skops file smuggling a type from outside the allow-list is refused before loading
    evil = tmp_path / "evil"
    shutil.copytree(path, evil)
    with zipfile.ZipFile(evil / "estimator.skops") as z:
        schema = json.loads(z.read("schema.json"))
        members = {n: z.read(n) for n in z.namelist() if n != "schema.json"}
    schema["__module__"], schema["__class__"] = "os", "system"
    with zipfile.ZipFile(evil / "estimator.skops", "w") as z:
        z.writestr("schema.json", json.dumps(schema))
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="refusing to load"):
        load_estimator(evil)
    # a truncated file gives a clear error
    trunc = tmp_path / "trunc"
    shutil.copytree(path, trunc)
    raw = (trunc / "estimator.skops").read_bytes()
    (trunc / "estimator.skops").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="train the estimator again"):
        load_estimator(trunc)
    with pytest.raises(FileNotFoundError, match="estimator.json"):
        load_estimator(tmp_path)


def test_bad_names(hcp):
    with pytest.raises(ValueError, match="estimator: unknown"):
        train("noddi", hcp, estimator="forest", n_samples=10)
    with pytest.raises(ValueError, match="optimizer: unknown"):
        train("noddi", hcp, estimator="dnn", optimizer="sgd2", n_samples=10)
    with pytest.raises(ValueError, match="SDCA trains linear models|linear models only"):
        train("noddi", hcp, estimator="dnn", optimizer="sdca", n_samples=10)
    with pytest.raises(ValueError, match="optimizer applies"):
        train("noddi", hcp, estimator="polynomial", optimizer="adam", n_samples=10)


@pytest.mark.parametrize("model, estimator, targets, limits", [
    ("noddi", "polynomial", ("odi", "icvf", "fiso"), (0.09, 0.03, 0.045)),
    ("ivim", "polynomial", ("f", "d", "d_star"), (0.07, 0.2e-9, 4e-9)),
    ("activeax", "boosted-trees", ("diameter", "icvf", "fiso"), (1.2e-6, 0.05, 0.06)),
])
def test_learn_and_predict_cli_on_phantom(model, estimator, targets, limits, tmp_path, capsys):
    ph = make_phantom(model=model, shape=(10, 10, 3), seed=2).save(tmp_path / "ph")
    code, out, err = run_cli(capsys, "learn", "--model", model, "--acquisition", ph,
                             "--estimator", estimator, "--n-samples", 20000,
                             "--out", tmp_path / "est")
    assert code == 0, err
    code, out, err = run_cli(capsys, "predict", tmp_path / "est", ph, "--out", tmp_path / "maps")
    assert code == 0, err
    assert "predicted" in out
    maps, truth = load_maps(tmp_path / "maps"), load_maps(ph / "truth")
    info = json.loads((tmp_path / "maps" / "predict.json").read_text())
    assert info["n_voxels"] > 0 and set(targets) <= set(info["maps"])
    # the predict stage (features + estimator, in memory) is reported apart from I/O
    assert 0 < info["predict_seconds"] < info["chunked_seconds"] < info["seconds"]
    assert info["predict_vox_per_s"] == pytest.approx(info["n_voxels"] / info["predict_seconds"])
    assert "predict stage" in out
    # single-fibre and grey-matter voxels (crossings depend on the training prior; see bench)
    fibres = truth["n_fibres"] == (0 if model == "ivim" else 1)
    for name, limit in zip(targets, limits):
        ok = fibres & np.isfinite(truth[name])
        err_ = np.sqrt(np.mean((maps[name][ok] - truth[name][ok]) ** 2))
        assert err_ < limit, (name, err_)
    if model == "noddi":
        # free water (CSF, 0 fibres, fiso = 1) lies outside the fiso prior; the default
        # training mixture includes it, so it is predicted as free water
        csf = (truth["n_fibres"] == 0) & (truth["fiso"] > 0.99) & np.isfinite(maps["fiso"])
        assert csf.sum() >= 3
        assert np.sqrt(np.mean((maps["fiso"][csf] - 1.0) ** 2)) < 0.1
        assert np.sqrt(np.mean(maps["icvf"][csf] ** 2)) < 0.1


def test_predict_cli_refuses_other_acquisition(poly, tmp_path, capsys):
    _, path = poly
    ph = make_phantom(model="ivim", shape=(4, 4, 2), seed=0).save(tmp_path / "ph")
    code, out, err = run_cli(capsys, "predict", path, ph, "--out", tmp_path / "maps")
    assert code == 2
    assert "does not match" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "maps").exists()


def test_learn_uncertainty_trains_a_deep_ensemble(hcp, tmp_path, capsys):
    """`learn --uncertainty` with the default dnn trains the best-ranking std (a deep
    ensemble); predict writes its std maps."""
    phantom = make_phantom(shape=(6, 6, 2), seed=4)
    ph = phantom.save(tmp_path / "ph")
    code, out, err = run_cli(capsys, "learn", "--scheme", "hcp", "--uncertainty",
                             "--n-samples", 3000, "--epochs", 2, "--out", tmp_path / "est")
    assert code == 0, err
    meta = json.loads((tmp_path / "est" / "estimator.json").read_text())
    assert meta["estimator"] == "deep-ensemble" and "deep-ensemble" in out
    code, out, err = run_cli(capsys, "predict", tmp_path / "est", ph, "--out", tmp_path / "m")
    assert code == 0, err
    maps = load_maps(tmp_path / "m")
    for name in ("odi", "icvf", "fiso"):
        assert np.all(maps[f"{name}_std"][phantom.mask] > 0), name
