import csv

import numpy as np

from microlearn import Acquisition, noddi
from microlearn.cli import main
from microlearn.viz.signals import plot_signal_vs_angle, plot_signal_vs_b


def test_signal_figures_match_model(hcp):
    m = noddi()
    p = m.parameters.pack({"mu": np.array([0, 0, 1.0]), "odi": 0.1, "icvf": 0.7, "fiso": 0.0})
    fig = plot_signal_vs_angle(m, hcp, p)
    line = fig.axes[0].lines[-1]  # b = 3000 shell
    y = line.get_ydata()
    assert y[0] < y[-1]  # attenuation strongest along the fibre
    along = m.signal(Acquisition(np.array([0, 3e9]), np.array([[0, 0, 0], [0, 0, 1.0]]),
                                 10.6e-3, 43.1e-3), p[None])[0, 1]
    assert np.isclose(y[0], along)
    assert len(plot_signal_vs_b(m, hcp, p).axes[0].lines) == 2


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--shape", "10", "10", "3",
                 "--methods", "mix,dictionary", "--estimator", "polynomial",
                 "--n-samples", "5000"]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed
    for f in ("phantom/data.nii.gz", "fit_mix/odi.nii.gz", "fit_mix/fit.json",
              "estimator/estimator.json", "predict/odi.nii.gz", "report/index.html",
              "report/table.csv", "report/scatter.png", "report/runtime.png",
              "report/slices.png", "report/errors.png", "report/signals.png"):
        assert (out / f).exists(), f
    rows = list(csv.DictReader(open(out / "report" / "table.csv")))
    assert [r["method"] for r in rows] == ["mix", "dictionary", "polynomial (learned)"]
    assert float(rows[0]["rmse_icvf"]) < 0.06 and float(rows[2]["rmse_icvf"]) < 0.06
    html = (out / "report" / "index.html").read_text()
    for fig in ("scatter", "runtime", "slices", "errors", "signals"):
        assert f"{fig}.png" in html
