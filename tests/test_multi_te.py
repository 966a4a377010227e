"""Multi-echo-time data: each TE normalised by its own b0s fits like single-TE data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from microlearn import Acquisition
from microlearn.cli import main
from microlearn.data.phantom import make_phantom
from microlearn.fitting import fit
from microlearn.models import get_model
from microlearn.schemes import with_echo_times
from microlearn.simulate import simulate

TES = (0.06, 0.1)


def _rmse(res, ph, tissue):
    return {k: float(np.sqrt(np.mean((res[k][tissue] - ph.truth[k][tissue]) ** 2)))
            for k in ("odi", "icvf", "fiso")}


@pytest.fixture(scope="module")
def phantoms():
    hcp = Acquisition.scheme("hcp")
    multi = make_phantom(shape=(8, 8, 3), seed=4, acq=with_echo_times(hcp, TES), t2="tissue",
                         snr=40)
    single = make_phantom(shape=(8, 8, 3), seed=4, acq=with_echo_times(hcp, TES[:1]),
                          t2="tissue", snr=40)  # the same tissue at the first TE only
    return multi, single


def test_multi_te_phantom_fits_as_accurately_as_one_te(phantoms):
    multi, single = phantoms
    assert multi.acq.n_te == 2 and multi.truth["t2"][multi.labels == 3].max() < 0.08
    tissue = multi.mask & np.isin(multi.labels, [2, 3])  # single-fibre GM and WM
    model = get_model("noddi")
    r_multi = fit(model, multi.acq, multi.data, mask=multi.mask, workers=1)
    r_single = fit(model, single.acq, single.data, mask=single.mask, workers=1)
    e_multi, e_single = _rmse(r_multi, multi, tissue), _rmse(r_single, single, tissue)
    for k in e_multi:
        assert e_multi[k] <= 1.1 * e_single[k] + 0.002, (k, e_multi, e_single)
    # the per-TE S0s follow the T2 decay of the truth
    wm = multi.labels == 3
    ratio = r_multi.s0_te[wm][:, 1] / r_multi.s0_te[wm][:, 0]
    expect = np.exp(-(TES[1] - TES[0]) / multi.truth["t2"][wm])
    assert np.median(np.abs(ratio / expect - 1)) < 0.03
    # predictions include each TE's own S0
    assert np.nanmedian(np.abs(r_multi.residuals(multi.data)[wm])) < 0.05 * 1000
    # control: dividing every TE by the mean of all b0s (TE ignored) gives wrong maps
    blind = Acquisition(multi.acq.bvals, multi.acq.bvecs, multi.acq.delta, multi.acq.Delta)
    r_blind = fit(model, blind, multi.data, mask=multi.mask, workers=1)
    assert _rmse(r_blind, multi, tissue)["icvf"] > 2 * e_multi["icvf"]


def test_t2_per_compartment_changes_the_apparent_fractions():
    acq = with_echo_times(Acquisition.scheme("hcp"), TES)
    model = get_model("noddi")
    p = model.parameters.pack({"mu": np.array([0.0, 0.0, 1.0]), "odi": np.array(0.2),
                               "icvf": np.array(0.6), "fiso": np.array(0.2)})[None]
    same = simulate(model, acq, p, t2={n: 0.07 for n in model.compartment_names})
    one = simulate(model, acq, p, t2=0.07)
    np.testing.assert_allclose(same, one, rtol=1e-12)
    free_water_slow = simulate(model, acq, p, t2={"ball": 1.0, "stick": 0.07,
                                                  "zeppelin": 0.07})
    b0 = acq.b0_mask
    late, early = b0 & (acq.TE > 0.09), b0 & (acq.TE < 0.07)
    # with slower-decaying free water, the b0 fraction of water rises with TE
    assert free_water_slow[0, late].mean() / free_water_slow[0, early].mean() > \
        one[0, late].mean() / one[0, early].mean()
    with pytest.raises(ValueError, match="unknown compartments"):
        simulate(model, acq, p, t2={"csf": 1.0})


def test_cli_multi_te_phantom_info_and_fit(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantom", "--out", str(out), "--shape", "6", "6", "2",
                 "--echo-times", "70", "100"]) == 0
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "TE groups : 2" in text and "70.0 ms" in text and "100.0 ms" in text
    assert main(["fit", str(out), "--out", str(tmp_path / "fit")]) == 0
    info = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert info["noise"]["source"] == "b0 repeats of each echo time, pooled"
    assert 0.5 < info["quality"]["residual_rms_median"] < 2.0


def test_learning_features_normalise_each_echo_time():
    from microlearn.learning.features import normalise_by_b0

    acq = with_echo_times(Acquisition.scheme("hcp"), TES)
    model = get_model("noddi")
    rng = np.random.default_rng(0)
    p = model.parameters.pack({"mu": rng.normal(size=(5, 3)), "odi": rng.uniform(.1, .6, 5),
                               "icvf": rng.uniform(.3, .8, 5), "fiso": rng.uniform(0, .3, 5)})
    t2 = rng.uniform(0.06, 0.09, 5)
    raw = 800 * simulate(model, acq, p, t2=t2)
    norm, bad = normalise_by_b0(raw, acq)
    np.testing.assert_allclose(norm, simulate(model, acq, p), rtol=1e-12)
    assert not bad.any()


def test_auto_fibre_count_refuses_several_echo_times(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantom", "--out", str(out), "--shape", "6", "6", "2",
                 "--echo-times", "70", "100"]) == 0
    assert main(["fit", str(out), "--n-fibres", "auto", "--out", str(tmp_path / "f")]) == 2
    assert "echo times" in capsys.readouterr().err
