"""Fixture of the browser tests: headless Debian chromium driven by Playwright."""

from __future__ import annotations

import pytest
from voila_server import CHROMIUM


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu",
                                    "--disable-dev-shm-usage",
                                    "--disable-background-networking"])
        yield b
        b.close()
