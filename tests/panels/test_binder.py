"""Binder installs the run-time part of the project lock: no test, docs or browser packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_EXTRAS = ("tf", "dask", "app", "viz3d")
NOT_AT_RUNTIME = {"pytest", "pytest-timeout", "nbmake", "playwright", "ruff", "sphinx", "furo",
                  "myst-nb", "numpydoc", "sphinx-argparse", "dmri-amico", "cvxpy",
                  "jupyter-server-mathjax"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned() -> set[tuple[str, str]]:
    pinned = set()
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split(";")[0].strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned.add((_norm(name), version))
    return pinned


def _runtime_closure(lock: dict) -> set[str]:
    """Names of the locked packages the library and its run-time extras need."""
    by_name = {_norm(p["name"]): p for p in lock["package"]}
    me = by_name["microlearn"]
    todo = [_norm(d["name"]) for d in me.get("dependencies", [])]
    for extra in RUNTIME_EXTRAS:
        todo += [_norm(d["name"]) for d in me.get("optional-dependencies", {}).get(extra, [])]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        pkg = by_name[name]
        todo += [_norm(d["name"]) for d in pkg.get("dependencies", [])]
        for dep in pkg.get("dependencies", []):  # extras of an edge (dask[distributed])
            for extra in dep.get("extra", []):
                todo += [_norm(d["name"]) for d in
                         by_name.get(_norm(dep["name"]), {}).get("optional-dependencies",
                                                                  {}).get(extra, [])]
    return seen


def test_binder_requirements_are_the_runtime_part_of_the_lock():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {(_norm(p["name"]), p["version"]) for p in lock["package"]
              if p["name"] != "microlearn"}
    pinned = _pinned()
    assert pinned <= locked, sorted(pinned - locked)[:10]
    names = {n for n, _ in pinned}
    assert not names & NOT_AT_RUNTIME, sorted(names & NOT_AT_RUNTIME)
    needed = {"numpy", "scipy", "dipy", "numba", "scikit-learn", "voila", "ipywidgets",
              "distributed", "keras", "fury"}
    assert needed <= names, sorted(needed - names)
    assert _runtime_closure(lock) - {"microlearn"} <= names | {"tensorflow", "tensorflow-cpu"}


def test_binder_opens_the_workshop_and_each_lesson():
    readme = (ROOT / "README.md").read_text()
    assert "urlpath=voila/render/widgets/workshop.ipynb" in readme
    assert (ROOT / "widgets" / "workshop.ipynb").exists()
    assert "pip install --no-deps ." in (ROOT / "binder" / "postBuild").read_text()
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    import site_build

    assert "labpath=notebooks/" in (site_build.BINDER + "?labpath=notebooks/")
    assert site_build.BINDER in readme
