"""Every workshop lesson opens as a Voila page without errors (real headless chromium)."""

from __future__ import annotations

import time

import nbformat
import pytest
from voila_server import ROOT, serve_voila

pytestmark = pytest.mark.browser
LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="module")
def lessons_server(tmp_path_factory):
    for url, _ in serve_voila(ROOT / "notebooks", tmp_path_factory):
        yield url


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_opens_in_voila(lessons_server, browser, name):
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
