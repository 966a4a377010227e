"""The documentation site builds, works offline and teaches: typeset equations without a
network, no CDN, solutions behind a toggle, a gallery, copyable CLI options and a complete
API reference (one page per public module, no empty entries)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from voila_server import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import site_build  # noqa: E402

EMPTY_ENTRY = re.compile(r'<dl class="py \w+">\s*<dt[^>]*>(?:(?!</dt>).)*</dt>\s*<dd>\s*</dd>',
                         re.S)
CDN = re.compile(r"(cdn\.|jsdelivr|unpkg|cdnjs|googleapis|mathjax\.org|polyfill\.io)", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built as `make docs` builds it (any Sphinx warning fails)."""
    out = tmp_path_factory.mktemp("site") / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                           "html", str(ROOT / "docs"), str(out)], capture_output=True,
                          text=True, cwd=ROOT, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not re.search(r"WARNING|ERROR", proc.stderr), proc.stderr[-3000:]
    return out


def _pages(site):
    return sorted(site.rglob("*.html"))


@pytest.mark.slow  # builds the site (a few minutes)
def test_no_cdn_and_mathjax_bundled(site):
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        srcs = re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"([^\"]+)\"", text)
        remote = [s for s in srcs if s.startswith(("http:", "https:", "//"))]
        assert not remote, (page.name, remote)
        assert not CDN.search(" ".join(srcs)), page.name
    assert (site / "_static" / "mathjax" / "MathJax.js").exists()


@pytest.mark.slow  # builds the site (a few minutes)
def test_lessons_gallery_and_solutions(site):
    lessons = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    gallery = (site / "lessons" / "gallery.html").read_text(encoding="utf-8")
    for nb in lessons:
        page = (site / "lessons" / f"{nb.stem}.html").read_text(encoding="utf-8")
        assert "✘" not in page and "not yet" not in page, nb.name
        assert "What to remember" in page, nb.name
        # solutions: the source sits in a closed <details> toggle, the green check shows
        assert re.search(r"<details class=\"[^\"]*hide above-input", page), nb.name
        assert "✔ correct" in page, nb.name
        assert f"labpath=notebooks/{nb.name}" in gallery and nb.name in gallery
    assert gallery.count("<img") >= len(lessons)


@pytest.mark.slow  # builds the site (a few minutes)
def test_cli_reference_keeps_double_dashes(site):
    text = (site / "cli.html").read_text(encoding="utf-8")
    assert "--model" in text and "--out" in text
    assert not re.search(r"–[a-z]", text), re.findall(r".{20}–[a-z].{10}", text)[:5]


@pytest.mark.slow  # builds the site (a few minutes)
def test_api_reference_is_complete_and_split(site):
    modules = site_build.public_modules()
    for name in ("microlearn.models.spherical", "microlearn.compartments.sphere",
                 "microlearn.fitting.uncertainty", "microlearn.teaching"):
        assert name in modules
    for name in modules:
        page = site / "api" / f"{name}.html"
        assert page.exists(), name
        text = page.read_text(encoding="utf-8")
        assert len(text) < 600_000, name
        # an object (attribute, function, class...) whose description is empty
        empty = EMPTY_ENTRY.search(text)
        assert not empty, (name, re.sub("<[^>]+>", "", empty.group(0))[:200])


@pytest.mark.slow  # builds the site (a few minutes)
def test_pages_exist(site):
    for page in ("install.html", "troubleshooting.html", "guide.html", "benchmarks.html",
                 "cite.html", "dashboards/index.html"):
        assert (site / page).exists(), page
    trouble = (site / "troubleshooting.html").read_text(encoding="utf-8")
    assert "exit status 2" in trouble and "Python" not in trouble.split("<h1")[1][:200]
    for name in ("workshop", "model_composer", "signal_simulator", "fit_or_learn", "compare"):
        dash = (site / "dashboards" / f"{name}.html").read_text(encoding="utf-8")
        assert "dashboard-shot" in dash and f"{name}.png" in dash, name
        assert "lessons/" in dash, name


@pytest.mark.slow
@pytest.mark.browser
def test_equations_typeset_offline(site, browser):
    """Every request but file:// is refused: MathJax still typesets the lesson."""
    page = browser.new_page()
    blocked = []
    page.route("**/*", lambda route: route.continue_()
               if route.request.url.startswith(("file://", "data:"))
               else (blocked.append(route.request.url), route.abort()))
    try:
        page.goto((site / "lessons" / "02_noise_snr_rician.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.MathJax, .MathJax_Display')"
                               ".length > 3", timeout=120_000)
        raw = page.evaluate("document.body.innerText")
        assert "\\mathbb E" not in raw and "\\frac" not in raw  # no raw LaTeX left
        assert not blocked, blocked[:5]
    finally:
        page.close()


def test_readme_is_short_and_lists_every_registered_model():
    from microlearn.models.registry import family_names

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.split()) < 900
    for name in family_names():
        assert f"| `{name}` |" in readme, name
    for needed in ("make demo", "make test", "How to cite", "docs/install.md", "![",
                   "mybinder.org"):
        assert needed in readme, needed
    for target in re.findall(r"\]\(((?:docs|notebooks)/[^)#]+)\)", readme):
        assert (ROOT / target).exists(), target


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Quick start.*?```python\n(.*?)```", readme, re.S).group(1)
    assert len(block.strip().splitlines()) + 2 <= 5  # with `make demo` and `make test`
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README quick start", "exec"), {})
