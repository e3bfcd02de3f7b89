"""nightly_manifest_refresh: when it fires and what one tick asks for."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
from histo_renn_dagster.defs.schedules import (
    MANIFEST_REFRESH_CRON,
    build_manifest_refresh_schedule,
    manifest_refresh_schedule,
)


def test_nightly_at_three_utc_and_stopped_by_default() -> None:
    assert manifest_refresh_schedule.cron_schedule == MANIFEST_REFRESH_CRON == "0 3 * * *"
    assert manifest_refresh_schedule.execution_timezone == "UTC"
    assert manifest_refresh_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    ticks = cron_string_iterator(
        datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc).timestamp(),
        manifest_refresh_schedule.cron_schedule,
        manifest_refresh_schedule.execution_timezone,
    )
    assert [next(ticks).isoformat() for _ in range(2)] == [
        "2030-01-02T03:00:00+00:00",
        "2030-01-03T03:00:00+00:00",
    ]


def test_a_tick_requests_one_run_of_both_manifests() -> None:
    layout = LayoutResource(root="unused")
    defs = dg.Definitions(
        assets=[gdc_slide_manifest, gdc_expression_manifest],
        schedules=[manifest_refresh_schedule],
        resources={
            "gdc": GDCResource(),
            "layout": layout,
            "io_manager": ParquetIOManager(layout=layout),
        },
    )
    job = defs.resolve_job_def("manifest_refresh")
    assert set(job.asset_layer.executable_asset_keys) == {
        dg.AssetKey("gdc_slide_manifest"),
        dg.AssetKey("gdc_expression_manifest"),
    }
    schedule = defs.resolve_schedule_def("nightly_manifest_refresh")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2030, 1, 2, 3, 0, tzinfo=timezone.utc),
        )
        data = schedule.evaluate_tick(context)
    assert data.run_requests is not None and len(data.run_requests) == 1
    assert data.run_requests[0].tags["histo_renn/trigger"] == "nightly_manifest_refresh"


def test_the_builder_takes_another_cron() -> None:
    weekly = build_manifest_refresh_schedule(name="weekly", cron_schedule="0 4 * * 1")
    assert weekly.name == "weekly" and weekly.cron_schedule == "0 4 * * 1"
