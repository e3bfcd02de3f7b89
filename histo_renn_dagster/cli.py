"""The ``histo-renn`` command: the same core code as the assets, for single items and offline use.

Every command prints JSON lines (one object per item) on stdout and, on failure, exits non-zero
with a one-line message on stderr that names the item and the problem.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from histo_renn_dagster.core.errors import HistoRennError

log = logging.getLogger("histo_renn_dagster.cli")

Handler = Callable[[argparse.Namespace], int]


def emit(record: dict) -> None:
    """One JSON object per line on stdout, flushed so pipes and tests see it at once."""
    print(json.dumps(record, sort_keys=True, default=str), flush=True)


def _cmd_gdc_emulator(args: argparse.Namespace) -> int:
    from histo_renn_dagster.emulator.server import serve_forever

    serve_forever(
        args.cohort,
        host=args.host,
        port=args.port,
        faults=args.faults,
        cache_dir=Path(args.cache_dir),
    )
    return 0


def _add_gdc_emulator(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gdc-emulator",
        help="serve a GDC-compatible API on 127.0.0.1 (first stdout line: its base URL)",
        description="Serve the offline GDC emulator until interrupted. The fault grammar is "
        "documented in histo_renn_dagster/emulator/faults.py and the README.",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = a free port)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--cohort", default="demo", help="fixture | demo | full (default demo)")
    p.add_argument("--faults", default=None, help="fault-injection SPEC, e.g. '429:1@/files*2'")
    p.add_argument(
        "--cache-dir",
        default="storage/emulator",
        help="where generated slide and expression files are cached (default storage/emulator)",
    )
    p.set_defaults(handler=_cmd_gdc_emulator)


def _cmd_demo(args: argparse.Namespace) -> int:
    from histo_renn_dagster.demo import run_demo

    summary = run_demo(
        cohort=args.cohort,
        storage=Path(args.storage),
        refresh_manifests=args.refresh_manifests,
        echo=emit,
    )
    emit({"event": "summary", **summary.as_record()})
    print(
        f"demo finished in {summary.seconds:.0f} s: {len(summary.ran)} runs, "
        f"{len(summary.skipped)} already materialized, {len(summary.failed)} failed. "
        "Browse the runs and lineage with `make dev` (http://127.0.0.1:3000).",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="materialize the pipeline on the offline demo cohort into storage/",
        description="Start the GDC emulator, then materialize every asset on the demo cohort "
        "through the Dagster Python API into the storage/ instance (DAGSTER_HOME).",
    )
    p.add_argument("--cohort", default="demo", help="fixture | demo | full (default demo)")
    p.add_argument("--storage", default="storage", help="DAGSTER_HOME when it is unset")
    p.add_argument(
        "--refresh-manifests",
        action="store_true",
        help="list the GDC again even when the manifests are already materialized",
    )
    p.set_defaults(handler=_cmd_demo)


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_gdc_emulator,
    _add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="histo-renn",
        description="histo-renn-dagster: GDC emulator, demo pipeline and single-item tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
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
