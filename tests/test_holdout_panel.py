"""The compare panel's hold-out mode ranks the chosen fitting methods without truth."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")


def test_compare_panel_holdout(tmp_path):
    from microlearn.panels import ComparePanel

    p = ComparePanel(data_root=tmp_path, phantom_shape=(8, 8, 2))
    p.methods.value = ("mix", "polynomial")  # learned methods are left out of a hold-out
    p.holdout.value = 3
    p.run(wait=True)
    assert not p.errors.value, p.errors.value
    assert "npe" in p.table.value and len(p.runtime.value) > 1000
    assert [r["method"] for r in p.result.rows] == ["mix"]
    p.holdout.value = 1
    p.run(wait=True)
    assert "at least 2 folds" in p.errors.value
