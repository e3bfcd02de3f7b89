"""`histo-renn gdc-emulator`: serve the offline GDC emulator on 127.0.0.1."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from histo_renn_dagster.emulator.server import serve_forever

    serve_forever(
        args.cohort,
        host=args.host,
        port=args.port,
        faults=args.faults,
        cache_dir=Path(args.cache_dir),
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(handler=run)
