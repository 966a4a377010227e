"""Helpers of the browser tests: a Voila server on a folder; where chromium is."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from microlearn.commands.dashboard import voila_command

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_voila(folder, tmp_path_factory):
    """Start Voila on ``folder`` (127.0.0.1, data folder in a temporary place); yields
    ``(url, process)`` once it answers, and stops it afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run `make system-deps` (apt-get install "
                    "chromium) before the browser tests.")
    port = free_port()
    env = {**os.environ, "MICROLEARN_DATA": str(tmp_path_factory.mktemp("data")),
           "MPLBACKEND": "Agg"}
    log = open(tmp_path_factory.mktemp("log") / "voila.log", "w")
    proc = subprocess.Popen(voila_command(folder, port), env=env, stdout=log,
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
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
