"""Every predict checks its maps against a fit of sampled voxels; refusals name the flag."""

from __future__ import annotations

import json

import numpy as np

from microlearn.cli import main
from microlearn.data.phantom import make_phantom
from microlearn.learning import train


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_predict_reports_agreement_and_warns_when_the_prior_is_wrong(tmp_path, capsys):
    ph = make_phantom(shape=(10, 10, 3), seed=3).save(tmp_path / "ph")
    from microlearn.data.dataset import load_dataset

    acq = load_dataset(ph).acq
    good = train("noddi", acq, estimator="polynomial", n_samples=6000, n_fibres=1)
    good.save(tmp_path / "good")
    code, out, err = run_cli(capsys, "predict", tmp_path / "good", ph, "--out",
                             tmp_path / "m1", "--check-voxels", 150)
    assert code == 0, err
    info = json.loads((tmp_path / "m1" / "predict.json").read_text())
    check = info["agreement"]
    assert check["n_voxels"] == 150 and check["fit_n_fibres"] == 1
    assert set(check["maps"]) == {"odi", "icvf", "fiso"}
    assert "agreement with a fit of 150 sampled voxels" in out
    assert info["check_seconds"] > 0
    # trained on a prior that misses the tissue (ODI 0.7-0.98 only): the check says so
    bad = train("noddi", acq, estimator="polynomial", n_samples=6000, n_fibres=1,
                ranges={"odi": (0.7, 0.98)})
    bad.save(tmp_path / "bad")
    code, out, err = run_cli(capsys, "predict", tmp_path / "bad", ph, "--out",
                             tmp_path / "m2", "--check-voxels", 150)
    assert code == 0, err
    check = json.loads((tmp_path / "m2" / "predict.json").read_text())["agreement"]
    assert not check["agree"] and "odi" in check["disagreeing"]
    assert "learned maps disagree with a fit" in err and "odi" in err
    # --check-voxels 0 skips it
    code, out, err = run_cli(capsys, "predict", tmp_path / "good", ph, "--out",
                             tmp_path / "m3", "--check-voxels", 0)
    assert code == 0, err
    assert json.loads((tmp_path / "m3" / "predict.json").read_text())["agreement"] is None


def test_too_few_voxels_for_a_data_prior_names_prior_model(tmp_path, capsys):
    ph = make_phantom(shape=(4, 4, 2), seed=1).save(tmp_path / "ph")
    code, out, err = run_cli(capsys, "learn", "--acquisition", ph, "--prior", "data",
                             "--estimator", "polynomial", "--n-samples", 500,
                             "--out", tmp_path / "e")
    assert code == 2 and "--prior model" in err and len(err.strip().splitlines()) == 1
    # auto falls back to the model's priors, trained at the data's noise
    code, out, err = run_cli(capsys, "learn", "--acquisition", ph, "--estimator",
                             "polynomial", "--n-samples", 2000, "--out", tmp_path / "e")
    assert code == 0, err
    assert "too few for a data prior" in out
    meta = json.loads((tmp_path / "e" / "estimator.json").read_text())
    assert meta["info"]["prior"] == "model"
    assert meta["info"]["noise"]["source"] == "b0 repeats"
    assert np.isfinite(meta["info"]["noise"]["sigma"])
