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


def passive_openmp() -> None:
    """Ask OpenMP threads to wait passively (``OMP_WAIT_POLICY=PASSIVE``) unless the user
    chose a policy; effective because numba starts its OpenMP layer only at the first
    parallel kernel, after this import.

    GNU OpenMP threads (numba's threading layer here) otherwise spin after every parallel
    loop: between the kernels and the numpy steps of a fit, and on a shared machine, they
    take the cores the next loop and the main thread need. Measured on the 2000-voxel
    ``fit --n-fibres auto`` case under load (2 cores, load ~7): CPU 0.50 -> 0.33 s, wall
    1.1 -> 0.40 s (with one BLAS thread in ``fit_auto``); the kernels' loops are long, so
    the wake-up of a passive wait (~0.1 ms a loop) does not show.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


#: Modules whose compiled kernels call each other: numba keys each cached kernel on its own
#: file only, so a change in a callee's file leaves its callers' caches stale.
KERNEL_MODULES = ("compartments/kernels.py", "fitting/compiled/*.py")
STAMP = "microlearn-kernels.stamp"


def _cache_folders(source_dir: Path) -> list[Path]:
    """Where numba keeps the caches of the sources in ``source_dir``."""
    folders = [source_dir / "__pycache__"]
    custom = os.environ.get("NUMBA_CACHE_DIR")
    if custom:  # numba mirrors the source path under it
        folders.append(Path(custom) / str(source_dir.resolve()).lstrip(os.sep))
    return folders


def refresh_stale_kernels(package_dir: Path) -> bool:
    """Delete the cached kernels of :data:`KERNEL_MODULES` when any of their sources changed
    since the caches were written (a hash of all of them is kept in a stamp file).

    Returns True when caches were deleted. Never raises: a cache that cannot be cleaned
    is only slower or, at worst, what numba itself would load.
    """
    import hashlib

    try:
        files = sorted(f for pattern in KERNEL_MODULES for f in package_dir.glob(pattern))
        digest = hashlib.sha1(b"".join(f.read_bytes() for f in files)).hexdigest()
        folders = {d for f in files for d in _cache_folders(f.parent)}
        stamp = _cache_folders(package_dir / "fitting" / "compiled")[-1] / STAMP
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return False
        stems = {f.stem for f in files}
        for folder in folders:
            if folder.is_dir():
                for cached in folder.glob("*.nb[ic]"):
                    if cached.name.split(".", 1)[0] in stems:
                        cached.unlink(missing_ok=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest + "\n")
        return True
    except OSError:
        return False


configure(Path(__file__).parent)
passive_openmp()
