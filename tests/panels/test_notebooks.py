"""Every tutorial and dashboard notebook runs top to bottom (small sizes)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "widgets").glob(
    "*.ipynb"))


def test_every_folder_has_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"workshop", "model_composer", "signal_simulator", "fit_or_learn", "compare"} <= names
    assert sum(p.parent.name == "notebooks" for p in NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLEARN_DATA", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_dashboards_hold_no_logic():
    for path in (ROOT / "widgets").glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert len(code) == 1 and code[0].count("\n") <= 3, path.name
