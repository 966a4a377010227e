"""The ``microlearn`` command: one subcommand per module in :mod:`microlearn.commands`.

Bad input ends with exit status 2 and one line naming the file or argument and the fix.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

#: Subcommand modules in :mod:`microlearn.commands`, in help order.
COMMANDS = ("phantom", "info", "fit", "learn", "predict", "plan", "compare", "demo",
            "dashboard")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="microlearn",
        description="Diffusion MRI microstructure: phantoms, model fitting and reports.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"microlearn.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"microlearn.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    try:  # Ctrl-C while the commands are imported (slow on a loaded machine) ends cleanly too
        parser = build_parser()
    except KeyboardInterrupt:
        print("microlearn: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        from .commands._common import check_number_arguments

        check_number_arguments(args)
        return int(args.run(args) or 0)
    except ValueError as err:
        print(f"microlearn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        print(f"microlearn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # full disk, read-only or forbidden folder: one line, the fix
        print(f"microlearn {args.command}: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"microlearn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


#: What to do about the OS errors a run meets when writing.
_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free space or write to another disk (--out, --work-dir)",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere (--out, "
                  "--work-dir)",
    errno.EROFS: "the file system is read-only: choose a writable folder (--out, --work-dir)",
    errno.EACCES: "permission denied: choose a folder you may write to (--out, --work-dir) "
                  "or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you may write to (--out, "
                 "--work-dir) or fix its permissions",
}


def os_error_line(err: OSError) -> str:
    """One line for an ``OSError``: the path, what happened and the fix."""
    where = err.filename if err.filename is not None else "?"
    what = err.strerror or type(err).__name__
    fix = _OS_FIXES.get(err.errno, "check the path and the disk, then run again")
    line = f"{where}: {what} (errno {err.errno}); {fix}."
    return " ".join(line.split())


def echo(*parts, **kwargs) -> None:
    """Write a line for the user: the one place the command line prints."""
    print(*parts, **kwargs)


def warn(line: str) -> None:
    """A warning for the user, on standard error (``warning: ...``)."""
    print(f"warning: {line}", file=sys.stderr)


def echo_table(rows, columns, width: int = 14) -> None:
    """Print rows (dicts) as an aligned table, numbers with 4 significant digits."""
    echo("  ".join(f"{c:>{width}}" for c in columns))
    for r in rows:
        echo("  ".join(f"{r[c]:>{width}.4g}" if isinstance(r[c], float) else f"{r[c]:>{width}}"
                       for c in columns))
