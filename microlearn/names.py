"""Names that become file names: one check for every one of them.

A map, target, compartment, parameter, slab key or spec name ends up as part of a file name
(``<name>.nii.gz``, ``models/<name>.json``). Such a name must be 1 to :data:`MAX_LENGTH`
characters of ``[A-Za-z0-9_]`` (a spec name may also hold ``-``): no path separator, no
``..``, no leading dot, nothing a shell or another file system reads differently. A name
read from a file (a model spec, ``estimator.json``, a slab of a work folder) is checked
where it enters, so a crafted file never chooses where microlearn writes.
"""

from __future__ import annotations

import re

#: Longest name accepted (a map file name stays well below the 255-byte limit of most
#: file systems once a BIDS prefix and ``.nii.gz`` are added).
MAX_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9_]+")
_SPEC_NAME = re.compile(r"[A-Za-z0-9_-]+")


def is_safe_name(name, *, dash: bool = False) -> bool:
    """True when ``name`` is a string of 1..:data:`MAX_LENGTH` ``[A-Za-z0-9_]`` (and ``-``
    with ``dash``)."""
    pattern = _SPEC_NAME if dash else _NAME
    return (isinstance(name, str) and 0 < len(name) <= MAX_LENGTH
            and pattern.fullmatch(name) is not None)


def check_name(name, *, field: str, source: str = "", dash: bool = False) -> str:
    """``name`` itself when it may become (part of) a file name, else ``ValueError``.

    Parameters
    ----------
    name : object
        The name as read (anything: a crafted file may hold a number or a list).
    field : str
        What the name is, as the user would look for it (``"target"``,
        ``"compose[0].name"``, ``"slab key"``).
    source : str
        The file or argument it came from (named first in the message).
    dash : bool
        Also allow ``-`` (spec names).

    Returns
    -------
    str
    """
    if is_safe_name(name, dash=dash):
        return name
    allowed = "letters, digits, '_'" + (" or '-'" if dash else "")
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    where = f"{source}: " if source else ""
    raise ValueError(f"{where}{field} {shown} is not a valid name: use 1-{MAX_LENGTH} "
                     f"{allowed} (names become file names); fix or rewrite the file.")


def check_names(names, *, field: str, source: str = "", dash: bool = False) -> list[str]:
    """:func:`check_name` on each of ``names`` (which must be a list or tuple), and no
    name twice."""
    if not isinstance(names, (list, tuple)):
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}{field} must be a list of names, not "
                         f"{type(names).__name__}; fix or rewrite the file.")
    out = [check_name(n, field=field, source=source, dash=dash) for n in names]
    seen = set()
    for n in out:
        if n in seen:
            where = f"{source}: " if source else ""
            raise ValueError(f"{where}{field} {n!r} appears twice; names must be unique.")
        seen.add(n)
    return out


__all__ = ["MAX_LENGTH", "check_name", "check_names", "is_safe_name"]
