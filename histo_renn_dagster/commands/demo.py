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
        profile=args.profile,
        echo=emit,
    )
    emit({"event": "summary", **summary.as_record()})
    if summary.sigma2_b_by_m:
        print(sigma2_b_table(summary.sigma2_b_by_m, args.profile), file=sys.stderr)
    print(
        f"\ndemo finished in {summary.seconds:.0f} s wall time: {len(summary.ran)} runs, "
        f"{len(summary.skipped)} already up to date, {len(summary.failed)} failed.\n"
        f"report: {summary.report}\n"
        "runs, assets and lineage in the UI: make dev  (then open http://127.0.0.1:3000)",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


def sigma2_b_table(by_loss: dict[str, dict[str, float | None]], profile: str) -> str:
    """sigma2_b (mean over seeds) by loss and minibatch size m, as a small text table."""
    grid = list(dict.fromkeys(m for by_m in by_loss.values() for m in by_m))
    lines = [f"\nsigma2_b by minibatch size m (profile {profile}, mean over seeds):"]
    lines.append(f"{'':>14}" + "".join(f"{'m=' + m:>9}" for m in grid))
    for loss, by_m in by_loss.items():
        cells = (by_m.get(m) for m in grid)
        lines.append(
            f"{loss:>14}" + "".join(f"{'-' if v is None else f'{v:.3f}':>9}" for v in cells)
        )
    return "\n".join(lines)


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
    p.add_argument(
        "--profile",
        default="default",
        choices=("default", "reference"),
        help="renn_model's training profile: default (the fixed study) or reference (as the "
        "reference ran); switching re-trains the six minibatch-size partitions",
    )
    p.set_defaults(handler=run)
