"""Real browser tests: Voila serves the dashboards, headless Debian chromium drives them."""

from __future__ import annotations

import pytest
from voila_server import ROOT, serve_voila

pytestmark = pytest.mark.browser
DASHBOARDS = ("model_composer", "signal_simulator", "fit_or_learn", "compare", "workshop")
voila_pids: dict = {}


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    for url, proc in serve_voila(ROOT / "widgets", tmp_path_factory):
        voila_pids[url] = proc.pid
        yield url


def _open(browser, url, name):
    """Open a dashboard with every non-local request blocked; collect page errors."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.continue_()
               if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:"))
               else route.abort())
    page.goto(f"{url}/voila/render/{name}.ipynb", timeout=180_000)
    page.wait_for_selector(".jupyter-widgets", state="attached", timeout=180_000)
    page.wait_for_timeout(1500)
    return page, errors


def _error_text(page):
    return " ".join(t for t in page.locator(".ml-error").all_inner_texts() if t.strip())


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_renders(voila, browser, name):
    page, errors = _open(browser, voila, name)
    try:
        assert page.locator(".jupyter-widgets").count() > 0
        assert "Traceback" not in page.content()
        assert not _error_text(page)
        assert not [e for e in errors if "Kernel" in e or "Error" in e]
    finally:
        page.close()


def _img_sources(page):
    return page.eval_on_selector_all("img", "els => els.map(e => e.src)")


def test_slider_changes_the_plot(voila, browser):
    page, errors = _open(browser, voila, "model_composer")
    try:
        page.wait_for_function("document.querySelectorAll('img[src^=\"blob:\"], "
                               "img[src^=\"data:\"]').length >= 2", timeout=120_000)
        before = _img_sources(page)
        page.evaluate("window.__before = JSON.stringify(Array.from("
                      "document.querySelectorAll('img')).map(e => e.src))")
        slider = page.locator(".widget-slider", has_text="odi").first
        readout = slider.locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("0.85")
        page.keyboard.press("Enter")
        page.wait_for_function("JSON.stringify(Array.from(document.querySelectorAll('img'))"
                               ".map(e => e.src)) !== window.__before", timeout=60_000)
        assert _img_sources(page) != before
        assert not _error_text(page)
    finally:
        page.close()


def test_fit_on_the_phantom_shows_maps(voila, browser):
    page, errors = _open(browser, voila, "fit_or_learn")
    try:
        page.get_by_role("button", name="run").click()
        page.wait_for_function("document.querySelector('.ml-fit-or-learn') && "
                               "document.querySelector('.ml-fit-or-learn').innerText"
                               ".includes('vox/s')", timeout=240_000)
        assert page.locator(".ml-fit-or-learn img").count() >= 1
        assert not _error_text(page)
    finally:
        page.close()


def test_learn_shows_std_maps_coverage_and_plan(voila, browser):
    """Learning (data prior, std on by default) fills the std & coverage tab; the plan tab
    tabulates the acquisition's support for the model."""
    page, errors = _open(browser, voila, "fit_or_learn")
    root = page.locator(".ml-fit-or-learn")
    try:
        root.get_by_role("button", name="learn", exact=True).click()
        root.locator(".widget-hslider", has_text="training").locator(
            ".widget-readout").click()
        page.keyboard.press("Control+A")
        page.keyboard.type("5000")
        page.keyboard.press("Enter")
        root.get_by_role("button", name="run", exact=True).click()
        page.wait_for_function("document.querySelector('.ml-fit-or-learn').innerText"
                               ".includes('training') && document.querySelector("
                               "'.ml-fit-or-learn').innerText.includes('done')",
                               timeout=300_000)
        root.locator(".lm-TabBar-tabLabel", has_text="std & coverage").click()
        page.wait_for_function("document.querySelector('.ml-fit-or-learn').innerText"
                               ".includes('90 % intervals hold the truth')", timeout=60_000)
        assert root.locator("img:visible").count() >= 2  # std maps and the coverage plot
        root.locator(".lm-TabBar-tabLabel", has_text="plan").click()
        root.get_by_role("button", name="plan", exact=True).click()
        page.wait_for_selector(".ml-fit-or-learn table.ml-plan", timeout=300_000)
        assert "supported" in root.locator("table.ml-plan").inner_text()
        assert not _error_text(page)
    finally:
        page.close()


def test_voila_binds_to_localhost_only(voila):
    import psutil

    listening = [c.laddr for c in psutil.Process(voila_pids[voila]).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip in ("127.0.0.1", "::1") for addr in listening), listening


def test_three_sessions_at_once(voila, browser):
    """Three users run a fit at the same time; every page gets its maps, none errors."""
    pages = [_open(browser, voila, "fit_or_learn")[0] for _ in range(3)]
    try:
        for page in pages:
            page.get_by_role("button", name="run").click()
        for page in pages:
            page.wait_for_function("document.querySelector('.ml-fit-or-learn').innerText"
                                   ".includes('vox/s') && document.querySelector("
                                   "'.ml-fit-or-learn').innerText.includes('done')",
                                   timeout=300_000)
            assert page.locator(".ml-fit-or-learn img").count() >= 1
            assert not _error_text(page)
    finally:
        for page in pages:
            page.close()


EXPLAINED = {"model_composer": "01_signal_and_compartments", "signal_simulator":
             "02_noise_snr_rician", "fit_or_learn": "03_fitting", "compare":
             "07_fitting_vs_learning", "workshop": "01_signal_and_compartments"}


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_explains_itself_and_links_its_lesson(voila, browser, name):
    page, errors = _open(browser, voila, name)
    try:
        explain = page.locator(".ml-explain")
        assert explain.count() == 1
        text = explain.inner_text()
        assert "What this" in text and len(text.split()) > 40, text
        links = explain.locator("a").evaluate_all("els => els.map(e => e.href)")
        assert any(EXPLAINED[name] in href for href in links), links
    finally:
        page.close()
