"""compare --holdout: folds, ranking and ties on data from an independent simulator, CLI.

The simulator below is written here, not with microlearn: ball and stick, each with its own
T2, on a multi-echo protocol, with Rician noise. The model that generated the data must
rank first when the protocol can tell (several TEs), and tie where it cannot (one TE).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from microlearn.acquisition import Acquisition
from microlearn.cli import main
from microlearn.compartments import Ball, Stick
from microlearn.models.core import compose
from microlearn.run.holdout import holdout_compare, holdout_folds, paired_bootstrap

TE_SHORT = 0.06


def protocol(tes=(0.06, 0.1), shells=(1000, 2500), ndir=16, nb0=3):
    """b0s and two shells at each echo time (s/mm², s), interleaved directions."""
    rng = np.random.default_rng(7)
    bv, vec, te = [], [], []
    for TE in tes:
        bv += [0] * nb0
        vec += [[0, 0, 0]] * nb0
        te += [TE] * nb0
        for b in shells:
            d = rng.normal(size=(ndir, 3))
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            bv += [b] * ndir
            vec += d.tolist()
            te += [TE] * ndir
    return Acquisition.from_bvals_bvecs(np.array(bv, float), np.array(vec),
                                        bvals_unit="s/mm^2", delta=0.0106, Delta=0.0431,
                                        TE=np.array(te))


def ball_stick_t2(acq, n, snr, seed, *, truth=False):
    """S = S0 [f e^(−TE/T2s) e^(−b d (g·μ)²) + (1 − f) e^(−TE/T2b) e^(−b D)], Rician.

    ``snr`` is the b0 SNR at the shortest TE. Returns (signals (n, N), σ) and, with
    ``truth``, a dict of the true f, d, T2s.
    """
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n, 3))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    f = rng.uniform(0.3, 0.7, n)
    d = rng.uniform(1.5e-9, 2.2e-9, n)
    t2s, t2b = rng.uniform(0.07, 0.09, n), rng.uniform(0.04, 0.05, n)
    b, g, te = acq.bvals, acq.bvecs, acq.TE
    S = 1000.0 * (f[:, None] * np.exp(-te / t2s[:, None]) * np.exp(-b * d[:, None]
                                                                     * (mu @ g.T) ** 2)
                  + (1 - f[:, None]) * np.exp(-te / t2b[:, None]) * np.exp(-b * 1.0e-9))
    sigma = 1000.0 * np.exp(-TE_SHORT / 0.065) / snr
    noise = rng.normal(size=(2,) + S.shape) * sigma
    out = np.hypot(S + noise[0], noise[1]), sigma
    return out + ({"f": f, "d": d, "t2_stick": t2s, "t2_ball": t2b},) if truth else out


@pytest.fixture(scope="module")
def models():
    base = compose([Stick(), Ball()], name="ballstick").fix("ball_d_iso", 1.0e-9)
    return base, base.free("t2_stick").free("t2_ball")


def test_folds_split_within_every_shell_and_echo_time():
    acq = protocol()
    folds = holdout_folds(acq, 4, random_state=1)
    group = acq.shell_index * acq.n_te + acq.te_index
    assert set(folds) == {0, 1, 2, 3}
    for f in range(4):
        train = folds != f
        assert set(group[train]) == set(group)  # every shell and TE stays in training
        assert acq.subset(np.flatnonzero(train)).n_te == acq.n_te
    one = acq.subset(np.r_[0:3, 3])  # a shell with a single measurement is never held out
    assert holdout_folds(one, 2)[-1] == -1
    with pytest.raises(ValueError, match="at least 2"):
        holdout_folds(acq, 1)


def test_relaxed_signal_matches_the_independent_simulator(models):
    acq = protocol()
    _, t2 = models
    mu = np.array([0.6, 0.0, 0.8])
    p = {"stick_mu": np.array([[np.arccos(0.8), 0.0]]), "stick_d_par": np.array([1.8e-9]),
         "t2_stick": np.array([0.08]), "t2_ball": np.array([0.045]),
         "f_stick": np.array([0.4]), "f_ball": np.array([0.6])}
    cos2 = (acq.bvecs @ mu) ** 2
    expect = (0.4 * np.exp(-acq.TE / 0.08) * np.exp(-acq.bvals * 1.8e-9 * cos2)
              + 0.6 * np.exp(-acq.TE / 0.045) * np.exp(-acq.bvals * 1.0e-9))
    assert np.allclose(t2.signal(acq, p)[0], expect, atol=1e-12)
    comp = t2.compartment_signals(acq, t2.parameters.pack(p))
    assert np.allclose(np.einsum("c,vcn->vn", [0.4, 0.6], comp)[0], expect)


def test_fit_recovers_compartment_t2_jointly_over_echo_times(models):
    from microlearn.fitting import fit

    acq = protocol(tes=(0.06, 0.1, 0.14))
    y, _, true = ball_stick_t2(acq, 12, np.inf, seed=6, truth=True)
    _, t2 = models
    res = fit(t2, acq, y, method="mix", sigma=0)
    assert res.s0_te is None  # one S0 at TE = 0: the echo-time decay is the model's
    for name in ("t2_stick", "t2_ball"):
        assert np.allclose(res[name], true[name], rtol=0.03), name
    assert np.allclose(res["stick_d_par"], true["d"], rtol=0.03)
    assert np.allclose(res.predict(), y, rtol=1e-3)
    assert np.allclose(res.s0, 1000.0, rtol=0.02)


def test_t2_settings_round_trip_and_leave_other_models_unchanged(models):
    from microlearn.models.builtin import noddi
    from microlearn.models.spec import load_model

    plain = noddi()
    assert plain.relaxation == {} and plain.parameter_names == ["mu", "odi", "icvf", "fiso"]
    m = plain.free("t2_stick").free("t2_zeppelin").set("t2_ball", 2.0)
    assert m.parameter_names == ["mu", "odi", "t2_stick", "t2_zeppelin", "icvf", "fiso"]
    back = load_model(json.loads(m.to_json()))
    assert back.relaxation == m.relaxation and back.parameter_names == m.parameter_names
    tied = m.tie("t2_zeppelin", "t2_stick")
    assert load_model(tied.to_json()).relaxation["zeppelin"].source == "t2_stick"
    two = m.with_fibres(2)  # per-fibre instances share one T2 per compartment kind
    assert {two.relaxation[i].source for i in ("stick_1", "stick_2")} == {"t2_stick"}
    with pytest.raises(ValueError, match="t2_stick"):
        plain.set("t2_nope", 0.05)


def test_generating_model_ranks_first_with_several_echo_times(models):
    acq = protocol()
    y, sigma = ball_stick_t2(acq, 60, 30, seed=3)
    base, t2 = models
    res = holdout_compare(y, [base, t2], k=4, acq=acq, sigma=sigma, n_boot=300)
    assert res.best == [res.rows[0]["candidate"]] and res.rows[0]["model"] == "ballstick"
    assert "+t2_stick" in res.rows[0]["candidate"] and res.rows[1]["rank"] == 2
    assert res.rows[1]["diff_low"] > 0  # the per-TE-normalised model is worse beyond noise
    assert 0.9 < res.rows[0]["npe"] < 1.15  # the true model predicts down to the noise
    assert res.rows[0]["aic"] < res.rows[1]["aic"]


def test_models_the_protocol_cannot_tell_apart_tie(models):
    acq = protocol(tes=(0.08,))
    y, sigma = ball_stick_t2(acq, 60, 30, seed=4)
    base, t2 = models  # one TE: the T2s are absorbed by S0 and the fractions
    res = holdout_compare(y, [base, t2], k=4, acq=acq, sigma=sigma, n_boot=300)
    assert res.rows[0]["rank"] == res.rows[1]["rank"] == 1
    assert all(r["tie"] for r in res.rows) and len(res.best) == 2


def test_paired_bootstrap_separates_beyond_noise_only():
    rng = np.random.default_rng(0)
    base = 1 + 0.1 * rng.random(400)
    errors = np.stack([base, base + 0.05, base + 1e-4 * rng.normal(size=400)])
    rank, diff, low, high = paired_bootstrap(errors, n_boot=200)
    assert list(rank) == [1, 3, 1]  # competition ranking: ties share, the next skips
    assert low[1] > 0 and np.isclose(diff[1], 0.05)


def test_cli_holdout_report(models, tmp_path, capsys):
    from microlearn.data.writers import save_nifti_atomic, write_hcp_folder

    acq = protocol(ndir=10)
    y, sigma = ball_stick_t2(acq, 24, 30, seed=5)
    data = y.reshape(4, 3, 2, -1)
    mask = np.ones((4, 3, 2), bool)
    folder = write_hcp_folder(tmp_path / "scan", data, acq, mask)
    labels = np.ones((4, 3, 2))
    labels[2:] = 2
    save_nifti_atomic(labels.astype(np.int16), np.eye(4), tmp_path / "labels.nii.gz")
    base, _ = models
    spec = tmp_path / "ballstick.json"
    spec.write_text(base.to_json())
    out = tmp_path / "rep"
    code = main(["compare", str(folder), "--holdout", "3", "--model", str(spec),
                 "--model", str(spec), "--free", "t2_stick", "--set", "t2_ball=45",
                 "--labels", str(tmp_path / "labels.nii.gz"), "--sigma", str(sigma),
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "best:" in text
    for name in ("index.html", "table.csv", "labels.csv", "prediction_error.png",
                 "npe_maps.png"):
        assert (out / name).exists(), name
    assert len(list(out.glob("npe_*.nii.gz"))) == 2
    import csv

    per_label = list(csv.DictReader(open(out / "labels.csv")))
    assert [r["label"] for r in per_label] == ["1", "2"]
    assert sum(int(r["voxels"]) for r in per_label) == 24 and all(r["best"] for r in per_label)
    page = (out / "index.html").read_text()
    assert "t2_ball=45ms" in page and "src='prediction_error.png'" in page
    assert main(["compare", str(folder), "--holdout", "1", "--out", str(tmp_path / "x")]) == 2
    assert main(["compare", str(folder), "--holdout", "3", "--truth", str(folder),
                 "--out", str(tmp_path / "y")]) == 2
    assert main(["compare", str(folder), "--model", "noddi", "--model", "noddi",
                 "--out", str(tmp_path / "z")]) == 2
