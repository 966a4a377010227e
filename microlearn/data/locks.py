"""One run per folder: lock files that name their owner and are recognised when stale.

A lock is a small JSON file (``pid``, ``host``, the process start time, the command line,
the time it was taken) created atomically: written under a temporary name, then
hard-linked to the lock name, which fails when a lock is already there. A second run
finds it and stops with one line naming the run that holds it. A lock whose process is
gone (same host, and no process with that id, or one started at another time: the id was
reused) is stale — left by a crash or ``kill -9`` — and is taken over. A lock of another
host is never taken over (its process cannot be checked from here): the message says how
to remove it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _alive(pid: int, ticks) -> bool:
    """Whether process ``pid`` (started at ``ticks``, when known) still runs here."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    now = _start_ticks(pid)
    return ticks is None or now is None or now == ticks


def owner_record() -> dict:
    """What a lock says about the run that holds it."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "start_ticks": _start_ticks(os.getpid()),
            "command": " ".join(sys.argv)[:300], "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def describe(owner: dict) -> str:
    """``pid 123 on host h since ...`` (``microlearn fit ...``) for a message."""
    cmd = owner.get("command") or "?"
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')} since "
            f"{owner.get('since', '?')} ({cmd})")


def read_owner(lock: Path) -> dict | None:
    """The record of an existing lock; ``{}`` when unreadable; None when there is none."""
    try:
        text = Path(lock).read_text()
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # unreadable, or not text
        return {}
    try:
        owner = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return owner if isinstance(owner, dict) else {}


def is_stale(owner: dict) -> bool:
    """A lock of a process that no longer runs on this host (or an unreadable one)."""
    if not owner:
        return True  # not written by microlearn's atomic create: nothing holds it
    if owner.get("host") != socket.gethostname():
        return False
    return not _alive(owner.get("pid"), owner.get("start_ticks"))


def _in_use(what: str, owner: dict, lock: Path) -> ValueError:
    return ValueError(f"{what} is in use by another microlearn run: {describe(owner)}; wait "
                      f"for it to finish (or stop it), or give another folder. If that run is "
                      f"gone, remove {lock}.")


def check_free(lock, *, what: str) -> None:
    """``ValueError`` when a live run holds ``lock`` now (checked before long work that
    would otherwise end at a locked folder)."""
    owner = read_owner(Path(lock))
    if owner is not None and not is_stale(owner):
        raise _in_use(what, owner, Path(lock))


def _create(tmp: str, lock: Path, record: dict) -> None:
    """Create ``lock`` holding ``record`` or raise ``FileExistsError``: a hard link of the
    complete ``tmp`` (never seen half-written), or an exclusive create where the file
    system has no hard links."""
    try:
        os.link(tmp, lock)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here (some network and FUSE file systems)
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)


def acquire(lock, *, what: str) -> dict:
    """Create the lock file ``lock``; ``ValueError`` when a live run holds it.

    Parameters
    ----------
    lock : Path
        The lock file (its folder must exist).
    what : str
        The folder it guards, for the message (``"output folder out"``).

    Returns
    -------
    dict
        The record written (pass it to :func:`release`).
    """
    lock = Path(lock)
    record = owner_record()
    fd, tmp = tempfile.mkstemp(prefix=".lock-", dir=lock.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        for _ in range(3):
            try:
                _create(tmp, lock, record)
                return record
            except FileExistsError:
                pass
            owner = read_owner(lock)
            if owner is None:
                continue  # released in between: try again
            if not is_stale(owner):
                raise _in_use(what, owner, lock)
            log.warning("%s: taking over a stale lock of %s", lock, describe(owner))
            stale = lock.with_name(f"{lock.name}.stale-{os.getpid()}")
            try:
                os.replace(lock, stale)  # one run takes it over; the others retry
            except FileNotFoundError:
                continue
            if read_owner(stale) != owner:  # a fresh lock taken meanwhile: put it back
                try:
                    os.link(stale, lock)
                except OSError:  # taken again meanwhile, or no hard links here
                    pass
            stale.unlink(missing_ok=True)
        raise ValueError(f"{what}: could not take the lock {lock} (another run keeps taking "
                         "it); try again.")
    finally:
        Path(tmp).unlink(missing_ok=True)


def still_held(lock, record: dict) -> bool:
    """Whether ``lock`` still holds ``record`` (nobody took it over)."""
    owner = read_owner(Path(lock))
    return bool(owner) and all(owner.get(k) == record.get(k) for k in ("pid", "host",
                                                                         "start_ticks", "since"))


def release(lock, record: dict) -> None:
    """Remove ``lock`` if it is still this run's."""
    if still_held(lock, record):
        Path(lock).unlink(missing_ok=True)


@contextmanager
def holding(lock, *, what: str):
    """``with holding(path, what=...)``: the lock for the duration of the block."""
    record = acquire(lock, what=what)
    try:
        yield record
    finally:
        release(lock, record)


__all__ = ["acquire", "check_free", "describe", "holding", "is_stale", "read_owner", "release",
           "still_held"]
