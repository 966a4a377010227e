"""The documentation site builds, works offline and teaches: typeset equations and rendered
widgets without a network, no CDN, solutions behind a toggle, a gallery, copyable CLI
options and a complete API reference (one page per public module, no empty entries)."""

from __future__ import annotations

import json
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
# in any file of the site (MathJax's "about" links to www.mathjax.org are not loads)
CDN_HOST = re.compile(rb"(cdn\.|jsdelivr|unpkg|cdnjs|googleapis|polyfill\.io)", re.I)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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
    assert (site / "_static" / "html-manager" / "embed.js").exists()
    # nor a CDN address inside a bundled script, style or page (a fallback loader)
    for path in site.rglob("*"):
        if path.suffix in (".html", ".js", ".css", ".json", ".txt"):
            hit = CDN_HOST.search(path.read_bytes())
            assert not hit, (str(path.relative_to(site)), hit.group(0))


def _widget_lessons():
    """Lessons with stored widget outputs, and how many each has."""
    counts = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        n = sum(WIDGET_VIEW in out.get("data", {}) for cell in nb["cells"]
                for out in cell.get("outputs", []))
        if n:
            state = nb["metadata"].get("widgets", {}).get(
                "application/vnd.jupyter.widget-state+json", {}).get("state", {})
            assert state, f"{path.name} has widget outputs but no saved widget state"
            counts[path.stem] = n
    return counts


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


@pytest.mark.slow
@pytest.mark.browser
def test_stored_widgets_render_offline(site, browser):
    """Every request but file:// is refused: the bundled widget manager still draws each
    lesson's stored panels (controls and figures) from the saved widget state."""
    lessons = _widget_lessons()
    assert "01_signal_and_compartments" in lessons  # the model composer
    blocked, errors = [], []
    for stem, n_views in lessons.items():
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith(("file://", "data:", "blob:"))
                   else (blocked.append(route.request.url), route.abort()))
        try:
            page.goto((site / "lessons" / f"{stem}.html").as_uri())
            page.wait_for_function(
                "document.querySelectorAll('.widget-subarea > .jupyter-widgets').length "
                f">= {n_views}", timeout=120_000)
            drawn = page.evaluate("""() => ({
                sliders: document.querySelectorAll('.widget-subarea .widget-slider').length,
                dropdowns: document.querySelectorAll('.widget-subarea .widget-dropdown')
                    .length,
                figures: Array.from(document.querySelectorAll(
                    '.widget-subarea img.widget-image')).filter(
                    i => i.complete && i.naturalWidth > 100).length,
                text: document.querySelector('.widget-subarea').innerText})""")
            assert drawn["sliders"] >= 1 and drawn["dropdowns"] >= 1, (stem, drawn)
            assert drawn["figures"] >= 1, (stem, drawn)  # a stored PNG figure, decoded
            assert "snapshot of its stored state" in page.content(), stem
            if stem.startswith("01_"):
                assert "Model composer" in drawn["text"], drawn["text"][:200]
        finally:
            page.close()
    assert not errors and not blocked, (errors[:3], blocked[:3])


def test_lessons_keep_widget_state_or_get_a_note(tmp_path):
    """With a bundled widget manager the copies keep the stored views and state (and say
    the controls need a kernel); without one each view becomes a note, no state left."""
    stem = "01_signal_and_compartments"
    site_build.copy_lessons(ROOT / "notebooks", tmp_path / "kept")
    nb = json.loads((tmp_path / "kept" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    assert nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outs = [out for cell in nb["cells"] for out in cell.get("outputs", [])]
    i = next(i for i, out in enumerate(outs) if WIDGET_VIEW in out.get("data", {}))
    assert "snapshot of its stored state" in "".join(outs[i + 1]["data"]["text/html"])

    site_build.copy_lessons(ROOT / "notebooks", tmp_path / "noted", keep_widgets=False)
    text = (tmp_path / "noted" / f"{stem}.ipynb").read_text(encoding="utf-8")
    assert WIDGET_VIEW not in text and "widget-state" not in text
    assert "dashboards/index.html" in text


def test_widget_manager_copy_loses_its_cdn_addresses(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "font.woff2").write_bytes(b"\0font")
    (src / "embed.js").write_text("".join(site_build._CDN_STRINGS) + ";let a=1;",
                                  encoding="utf-8")
    site_build.copy_widget_manager(src, tmp_path / "out")
    text = (tmp_path / "out" / "embed.js").read_bytes()
    assert not CDN_HOST.search(text) and b"let a=1;" in text
    assert (tmp_path / "out" / "font.woff2").exists()
    # a bundle without the expected strings (another version) is refused, not half-cleaned
    (src / "embed.js").write_text("let Ct='https://cdn.example/npm/';", encoding="utf-8")
    with pytest.raises(RuntimeError, match="another version"):
        site_build.copy_widget_manager(src, tmp_path / "out2")


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
