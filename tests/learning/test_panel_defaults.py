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


def test_learn_defaults_use_the_data_prior_and_show_std_and_coverage(tmp_path):
    p = FitOrLearn(data_root=tmp_path, phantom_shape=(12, 12, 3), prewarm=False)
    p.mode.value = "learn"
    assert p.prior.value == "data" and p.uncertainty.value
    p.n_samples.value = 5000
    p.run(wait=True)
    assert not p.errors.value, p.errors.value
    assert [p.tabs.get_title(i) for i in range(3)] == ["maps", "std & coverage", "plan"]
    maps, mask = p.maps, p.mask
    for key in ("odi", "icvf", "fiso"):
        assert np.all(maps[f"{key}_std"][mask] > 0), key
    assert len(p.std_image.value) > 1000 and len(p.coverage_image.value) > 1000
    assert "90 % intervals hold the truth in: odi" in p.std_note.value
    assert p.std_note.value.startswith("learned std (polynomial)")
    p.uncertainty.value = False
    p.prior.value = "model"
    p.run(wait=True)
    assert not p.errors.value and "odi_std" not in p.maps
    assert "no std maps" in p.std_note.value and p.std_image.value == b""


def test_plan_tab_reports_every_parameter(tmp_path):
    p = FitOrLearn(data_root=tmp_path, phantom_shape=(8, 8, 2), prewarm=False)
    p.plan.n_voxels.value = 50
    p.plan.run(wait=True)
    assert not p.errors.value, p.errors.value
    rows = {r["name"]: r for r in p.plan.report["rows"]}
    assert {"odi", "icvf", "fiso"} <= set(rows)
    assert p.plan.table.value.count("<tr>") == len(rows) + 1
    assert "supported" in p.plan.table.value and p.plan.status.value == "done"
