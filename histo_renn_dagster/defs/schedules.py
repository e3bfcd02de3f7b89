"""Schedules: the nightly refresh of the GDC manifests.

The refresh only lists the GDC (a few small requests) and registers new ``slides`` partitions;
what follows is automatic: new slides get their runs from ``new_slides_sensor`` and the cohort and
model assets refresh through their automation conditions (``defs/automation.py``) when, and only
when, their inputs changed.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from histo_renn_dagster.defs.sensors import manifest_refresh_job

MANIFEST_REFRESH_CRON = "0 3 * * *"
"""03:00 UTC daily: after the GDC's release windows (US daytime) and before a working day."""


def build_manifest_refresh_schedule(
    *,
    name: str = "nightly_manifest_refresh",
    cron_schedule: str = MANIFEST_REFRESH_CRON,
    timezone: str = "UTC",
    job: UnresolvedAssetJobDefinition = manifest_refresh_job,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A schedule that runs ``manifest_refresh`` (both manifests) on ``cron_schedule``.

    Stopped by default, like the sensor: a fresh checkout must not start talking to the real GDC
    on its own. Turn it on in the UI (Automation) or with ``dagster schedule start``.
    """
    return dg.ScheduleDefinition(
        name=name,
        target=job,
        cron_schedule=cron_schedule,
        execution_timezone=timezone,
        default_status=default_status,
        tags={"histo_renn/trigger": name},
        description="Lists the GDC again: new slides become partitions, changed manifests "
        "refresh the cohort and models downstream.",
    )


manifest_refresh_schedule = build_manifest_refresh_schedule()
