"""The CLI's argument parser with its help texts made safe for reStructuredText.

sphinx-argparse parses every help string as reST, where a bare ``*`` (``*.scheme``,
``sub-*``) opens an emphasis; those warnings bypass Sphinx's ``-W``, so escape them here.
"""

from __future__ import annotations

import argparse

from microlearn.cli import build_parser


def _escape(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.help:
            action.help = action.help.replace("*", r"\*")
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.help:
                    choice.help = choice.help.replace("*", r"\*")
            for sub in action.choices.values():
                _escape(sub)


def parser() -> argparse.ArgumentParser:
    """``microlearn``'s parser, help texts escaped."""
    p = build_parser()
    _escape(p)
    return p
