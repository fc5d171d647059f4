"""The ``cortex-fa`` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``,
which adds a parser and sets ``func`` to a callable taking the parsed
arguments and returning an exit status. User errors (:class:`CortexFAError`)
become one line on stderr and exit status 2; argparse errors also exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cortex_fa import __version__
from cortex_fa.errors import CortexFAError

# Sub-command modules, in the order they appear in --help.
SUBCOMMANDS = ("data", "run", "sweep", "report", "reproduce", "protocol", "plot", "serve")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cortex-fa",
        description="Learning without weight transport in cortical columns.",
    )
    parser.add_argument("--version", action="version", version=f"cortex-fa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"cortex_fa.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cortex_fa.cli.{name}":
                continue  # sub-command not built yet
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.func(args)
    except CortexFAError as exc:
        print(f"cortex-fa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cortex-fa: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
