"""Binder installs the same package set as the project lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_binder_requirements_equal_the_lock():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {(_norm(p["name"]), p["version"]) for p in lock["package"]
              if p["name"] != "microlearn"}
    pinned = set()
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split(";")[0].strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned.add((_norm(name), version))
    # every pin is the locked version; every locked package Binder can use is pinned
    assert pinned <= locked, sorted(pinned - locked)[:10]
    missing = {n for n, _ in locked} - {n for n, _ in pinned}
    assert not missing, sorted(missing)[:20]


def test_binder_opens_the_workshop():
    readme = (ROOT / "README.md").read_text()
    assert "urlpath=voila/render/widgets/workshop.ipynb" in readme
    assert (ROOT / "widgets" / "workshop.ipynb").exists()
    assert "pip install --no-deps ." in (ROOT / "binder" / "postBuild").read_text()
