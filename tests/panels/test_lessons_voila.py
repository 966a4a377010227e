"""Every workshop lesson opens as a Voila page without errors (real headless chromium)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from test_browser import CHROMIUM, _free_port, browser  # noqa: F401  (browser is a fixture)

from microlearn.commands.dashboard import voila_command

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")
                 if p.stem != "06_real_scan")


@pytest.fixture(scope="module")
def lessons_server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run `make system-deps` first.")
    port = _free_port()
    env = {**os.environ, "MICROLEARN_DATA": str(tmp_path_factory.mktemp("data")),
           "MPLBACKEND": "Agg"}
    log = open(tmp_path_factory.mktemp("log") / "voila.log", "w")
    proc = subprocess.Popen(voila_command(ROOT / "notebooks", port), env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"voila exited: {open(log.name).read()[-2000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_opens_in_voila(lessons_server, browser, name):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.continue_()
               if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:"))
               else route.abort())
    try:
        page.goto(f"{lessons_server}/voila/render/{name}", timeout=300_000)
        # the hidden solutions run too: one green check per solution, the last near the end
        nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        n_solutions = sum("solution" in c.metadata.get("tags", []) for c in nb.cells)
        deadline = time.monotonic() + 300
        while page.get_by_text("✔ correct").count() < n_solutions:
            assert time.monotonic() < deadline, f"{name}: the solutions' checks never appeared"
            page.wait_for_timeout(1000)
        html = page.content()
        assert "Traceback" not in html and "output_error" not in html
        assert page.locator("img").count() > 0
        assert not [e for e in errors if "Kernel" in e or "Error" in e]
    finally:
        page.close()
