"""Where numba keeps compiled kernels when the installed package is read-only.

numba caches next to the sources (``__pycache__``); on a shared lab server microlearn is
often installed by an administrator, so a user cannot write there, and numba's own fallback
(the home folder's cache) fails for accounts without a home: every ``cache=True`` kernel
then refuses to load and ``import microlearn`` fails. This module, imported first by the
package, points ``NUMBA_CACHE_DIR`` at a writable per-user folder in that case. It never
overrides a ``NUMBA_CACHE_DIR`` the user set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def configure(package_dir: Path) -> str | None:
    """Set ``NUMBA_CACHE_DIR`` when ``package_dir`` is not writable; returns the folder set.

    Parameters
    ----------
    package_dir : Path
        The installed ``microlearn`` folder.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(package_dir, os.W_OK | os.X_OK):
        return None
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    for base in (Path(home_cache) / "microlearn" / "numba",
                 Path(tempfile.gettempdir()) / f"microlearn-numba-{os.getuid()}"):
        if _writable(base):
            os.environ["NUMBA_CACHE_DIR"] = str(base)
            return str(base)
    return None


configure(Path(__file__).parent)
