"""Jobs for launching backfills from the CLI (`dagster job backfill -j ...`).

Per-slide work runs one slide per run with the in-process executor: a failed slide never fails
another, and the multiprocess executor's extra process per step (asset + its checks) would cost
more than the step itself on small slides (benchmarks/orchestration.py).
"""

from __future__ import annotations

import dagster as dg

slide_tiles_job = dg.define_asset_job(
    "slide_tiles_job",
    selection=dg.AssetSelection.assets("slide_tiles"),
    executor_def=dg.in_process_executor,
)

JOBS = [slide_tiles_job]
