"""Screenshots of the dashboards for the documentation (docs/_static/dashboards/*.png).

Starts Voila on widgets/ (127.0.0.1, a temporary data folder), opens each dashboard in
headless Debian chromium (Playwright, no browser download) and saves a PNG. Run after
changing a dashboard: ``.venv/bin/python scripts/dashboard_screenshots.py``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_static" / "dashboards"
DASHBOARDS = ("workshop", "model_composer", "signal_simulator", "fit_or_learn", "compare")


def main() -> int:
    from playwright.sync_api import sync_playwright

    from microlearn.commands.dashboard import voila_command

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp()
    env = {**os.environ, "MICROLEARN_DATA": data, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(voila_command(ROOT / "widgets", port), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            for name in DASHBOARDS:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}/voila/render/{name}.ipynb", timeout=300_000)
                page.wait_for_selector(".jupyter-widgets", state="attached", timeout=300_000)
                page.wait_for_function("document.querySelectorAll('img').length > 0",
                                       timeout=300_000)
                page.wait_for_timeout(4000)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
                page.close()
                print("wrote", OUT / f"{name}.png", flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
