"""A saved network loads and predicts without importing TensorFlow or Keras."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from microlearn.learning import load_estimator, make_training_set, train

CHECK = """
import sys, numpy as np
from microlearn.learning import load_estimator
est = load_estimator(sys.argv[1])
x = np.load(sys.argv[2])
maps = est.predict_maps(x)
np.savez(sys.argv[3], **maps)
print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))
"""


@pytest.mark.parametrize("estimator, options", [
    ("dnn", {"epochs": 2}),
    ("deep-ensemble", {"epochs": 2, "n_members": 2}),
    ("wide-deep", {"epochs": 2}),
])
def test_saved_network_predicts_without_tensorflow(estimator, options, hcp, tmp_path):
    est = train("noddi", hcp, estimator=estimator, n_samples=1500, **options)
    est.save(tmp_path / "est")
    assert (tmp_path / "est" / "network.npz").is_file()
    x = make_training_set("noddi", hcp, 12_000, random_state=3).signal * 500.0
    np.save(tmp_path / "x.npy", x)  # more rows than NUMPY_ROWS: NumPy at every size
    out = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "est"),
                          str(tmp_path / "x.npy"), str(tmp_path / "maps.npz")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    ref = est.predict_maps(x)
    got = np.load(tmp_path / "maps.npz")
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=2e-4, atol=2e-5)


def test_folder_without_graph_still_loads_with_keras(hcp, tmp_path):
    """An estimator saved before network.npz existed: Keras loads network.keras."""
    est = train("noddi", hcp, estimator="dnn", n_samples=1000, epochs=1)
    est.save(tmp_path / "est")
    (tmp_path / "est" / "network.npz").unlink()
    meta = json.loads((tmp_path / "est" / "estimator.json").read_text())
    meta.pop("numpy_graph")
    (tmp_path / "est" / "estimator.json").write_text(json.dumps(meta))
    again = load_estimator(tmp_path / "est")
    assert again.estimator.model_ is not None
    x = make_training_set("noddi", hcp, 200, random_state=4).signal
    np.testing.assert_array_equal(again.predict_maps(x)["odi"], est.predict_maps(x)["odi"])
