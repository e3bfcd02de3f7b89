"""The ``histo-renn`` command: the same core code as the assets, for single items and offline use.

Every command prints JSON lines (one object per item) on stdout and, on failure, exits non-zero
with a one-line message on stderr that names the item and the problem.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from histo_renn_dagster.commands import cohort, demo, embed, fit, gdc_emulator, publish, tile
from histo_renn_dagster.core.errors import HistoRennError

log = logging.getLogger("histo_renn_dagster.cli")

Handler = Callable[[argparse.Namespace], int]


COMMANDS = (gdc_emulator, publish, demo, tile, embed, cohort, fit)
"""Each command module has ``add_parser(subparsers)``, which sets ``handler`` on its parser."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="histo-renn",
        description="histo-renn-dagster: GDC emulator, demo pipeline and single-item tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except HistoRennError as exc:
        print(f"histo-renn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
