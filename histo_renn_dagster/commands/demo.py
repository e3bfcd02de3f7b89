"""`histo-renn demo`: the pipeline on the offline demo cohort, into the storage/ instance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from histo_renn_dagster.commands.output import emit


def run(args: argparse.Namespace) -> int:
    from histo_renn_dagster.demo import run_demo

    summary = run_demo(
        cohort=args.cohort,
        storage=Path(args.storage),
        refresh_manifests=args.refresh_manifests,
        echo=emit,
    )
    emit({"event": "summary", **summary.as_record()})
    print(
        f"\ndemo finished in {summary.seconds:.0f} s wall time: {len(summary.ran)} runs, "
        f"{len(summary.skipped)} already up to date, {len(summary.failed)} failed.\n"
        f"report: {summary.report}\n"
        "runs, assets and lineage in the UI: make dev  (then open http://127.0.0.1:3000)",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(handler=run)
