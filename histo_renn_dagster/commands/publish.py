"""`histo-renn publish-slides`: publish new slides in a running GDC emulator.

The emulator serving the ``demo`` cohort holds the rest of TCGA-BRCA in reserve; publishing moves
slides (and their cases' STAR-Counts files) into what it serves, as a new GDC data release would,
so ``new_slides_sensor`` finds them on its next tick.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from histo_renn_dagster.commands.output import emit
from histo_renn_dagster.core.errors import GDCResponseError

GDC_URL_ENV = "HISTO_RENN_GDC_URL"


def publish_slides(
    emulator_url: str, *, count: int | None = None, file_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """POST the request to the emulator's admin route; the published slides' records."""
    from histo_renn_dagster.core.gdc.http import RetryPolicy, Transport

    body: dict[str, Any] = {"file_ids": file_ids} if file_ids else {"count": count}
    # One attempt: publishing is not idempotent, so a retry after a lost answer could publish twice.
    transport = Transport(emulator_url, retry=RetryPolicy(attempts=1))
    try:
        payload = transport.request_json("POST", "_emulator/publish", body=body)
    finally:
        transport.close()
    try:
        return list(payload["data"]["published"])
    except (KeyError, TypeError):
        raise GDCResponseError(
            f"{emulator_url}/_emulator/publish answered without data.published: {payload!r:.200}"
        ) from None


def run(args: argparse.Namespace) -> int:
    url = args.emulator or os.environ.get(GDC_URL_ENV)
    if not url:
        raise GDCResponseError(f"give --emulator URL or set ${GDC_URL_ENV} to the emulator's URL")
    records = publish_slides(url, count=args.count, file_ids=args.file_id or None)
    for record in records:
        emit({"event": "published", **record})
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish-slides",
        help="publish new slides in a running GDC emulator (demo cohort) for the sensor to find",
        description="Move slides from the emulator's reserve (the rest of TCGA-BRCA) into the "
        "catalogue it serves; prints one JSON line per published slide.",
    )
    p.add_argument(
        "--emulator",
        default=None,
        metavar="URL",
        help=f"the emulator's base URL (default ${GDC_URL_ENV})",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--count", type=int, default=1, help="publish N slides (default 1)")
    which.add_argument(
        "--file-id",
        action="append",
        metavar="ID",
        help="publish this slide (repeatable)",
    )
    p.set_defaults(handler=run)
