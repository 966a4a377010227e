"""The fit-or-learn dashboard's learning defaults give sane maps on the phantom."""

from __future__ import annotations

import numpy as np

from microlearn.panels import FitOrLearn


def test_learn_defaults_recover_csf_and_tissue(tmp_path):
    p = FitOrLearn(data_root=tmp_path, phantom_shape=(16, 16, 4))
    p.mode.value = "learn"
    assert p.estimator.value == "polynomial" and p.n_samples.value == 20_000
    p.run(wait=True)
    assert not p.errors.value, p.errors.value
    truth, maps, mask = p.result.truth, p.maps, p.mask
    csf = mask & (truth["fiso"] > 0.99)
    assert csf.sum() >= 20
    # trained on one fibre only, the polynomial gave FISO ~0 here (truth 1)
    assert np.median(maps["fiso"][csf]) > 0.9
    tissue = mask & (truth["fiso"] < 0.5)
    for key, limit in (("fiso", 0.06), ("icvf", 0.08)):
        err = maps[key][tissue] - truth[key][tissue]
        assert np.sqrt(np.mean(err ** 2)) < limit, key
