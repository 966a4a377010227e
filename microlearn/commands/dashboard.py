"""``microlearn dashboard``: serve the Voila dashboards on this machine only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..cli import echo


def add_parser(sub) -> None:
    p = sub.add_parser("dashboard", help="serve the widget dashboards with Voila (127.0.0.1)")
    p.add_argument("folder", nargs="?", type=Path, default=Path("widgets"),
                   help="folder of dashboard notebooks (default: widgets/)")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--data", type=Path, default=Path("data"),
                   help="the only folder the dashboards may read data from")
    p.set_defaults(run=run)


def voila_command(folder: Path, port: int) -> list[str]:
    """The Voila command line: bound to 127.0.0.1, no browser, no CDN theme download."""
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
    return [voila, "--no-browser", "--Voila.ip=127.0.0.1", f"--port={int(port)}",
            "--Voila.tornado_settings={'allow_origin': ''}", str(folder)]


def run(args) -> int:
    folder = Path(args.folder)
    if not folder.is_dir() or not list(folder.glob("*.ipynb")):
        raise FileNotFoundError(f"{folder}: no dashboard notebooks; run from the project "
                                "folder or give the widgets/ folder.")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port}: give a port between 1 and 65535.")
    env = {**os.environ, "MICROLEARN_DATA": str(Path(args.data).resolve())}
    echo(f"dashboards on http://127.0.0.1:{args.port}/ (data folder {env['MICROLEARN_DATA']});"
         " Ctrl-C stops")
    return subprocess.call(voila_command(folder, args.port), env=env)
