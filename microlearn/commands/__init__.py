"""CLI subcommands: each module has ``add_parser(subparsers)``; the parser sets ``run``."""
