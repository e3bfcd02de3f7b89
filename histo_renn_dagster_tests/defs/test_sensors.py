"""new_slides_sensor against the emulator: registration, manifest first, bounded runs, no reruns.

Each tick is evaluated with ``build_sensor_context`` on a persistent test instance; what the
daemon would do with the result (add partitions, launch runs) is done here with
``instance.add_dynamic_partitions`` and ``dg.materialize``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.sensor_definition import SensorExecutionData

from histo_renn_dagster.core.gdc.discovery import DiscoverySpec, decode_cursor
from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.assets.slides import slide_file
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION, slides_partitions
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
from histo_renn_dagster.defs.sensors import (
    build_new_slides_sensor,
    build_slide_run_job,
    new_slides_sensor,
)
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.publishing import hold_back_slides
from histo_renn_dagster.emulator.server import GDCEmulator

ASSETS = [gdc_slide_manifest, gdc_expression_manifest, slide_file]
MANIFESTS = {dg.AssetKey("gdc_slide_manifest"), dg.AssetKey("gdc_expression_manifest")}


class Harness:
    """One emulator, one instance, one lake; ``tick()`` evaluates the sensor like the daemon."""

    def __init__(self, emulator: GDCEmulator, instance: dg.DagsterInstance, lake: Path) -> None:
        self.emulator = emulator
        self.instance = instance
        layout = LayoutResource(root=str(lake))
        self.resources = {
            "gdc": GDCResource(base_url=emulator.url, max_attempts=2),
            "layout": layout,
            "io_manager": ParquetIOManager(layout=layout),
        }
        self.sensor = build_new_slides_sensor(
            slide_assets=("slide_file",), spec=DiscoverySpec(max_runs_per_tick=2)
        )
        self.defs = dg.Definitions(assets=ASSETS, sensors=[self.sensor], resources=self.resources)
        self.cursor: str | None = None
        self.used_run_keys: set[str] = set()

    def tick(self) -> SensorExecutionData:
        # evaluate_tick, inside the partition context the daemon sets up, is what the daemon
        # calls: it also checks the requests against the sensor's jobs and the partitions.
        with (
            dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursor,
                resources=self.resources,
                definitions=self.defs,
            ) as context,
            partition_loading_context(dynamic_partitions_store=self.instance),
        ):
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            assert isinstance(request, dg.AddDynamicPartitionsRequest)
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, request.partition_keys
            )
        return result

    def launch(self, result: SensorExecutionData) -> None:
        for run in result.run_requests or []:
            if run.run_key is not None:  # the daemon drops a run key it has seen before
                if run.run_key in self.used_run_keys:
                    continue
                self.used_run_keys.add(run.run_key)
            job = self.defs.resolve_job_def(run.job_name or "")
            outcome = job.execute_in_process(
                instance=self.instance, partition_key=run.partition_key, tags=run.tags
            )
            assert outcome.success

    def materialized_slides(self) -> set[str]:
        return set(self.instance.get_materialized_partitions(dg.AssetKey("slide_file")))


def _slide_runs(result: SensorExecutionData) -> list[str]:
    return [r.partition_key for r in result.run_requests or [] if r.job_name == "slide_run"]


def _manifest_runs(result: SensorExecutionData) -> int:
    return sum(r.job_name == "manifest_refresh" for r in result.run_requests or [])


@pytest.fixture
def harness(fixture_catalogue: Catalogue, tmp_path: Path) -> Iterator[Harness]:
    served, reserve = hold_back_slides(fixture_catalogue, 3)
    with GDCEmulator(served, reserve=reserve) as emulator, dg.instance_for_test() as instance:
        yield Harness(emulator, instance, tmp_path / "lake")


@pytest.mark.slow
def test_new_slides_are_registered_then_run_in_bounded_ticks(
    harness: Harness, fixture_catalogue: Catalogue
) -> None:
    slides = sorted(d["file_id"] for d in fixture_catalogue.files if d["data_format"] == "SVS")
    first = harness.tick()
    # Fresh instance: every listed slide is registered, the manifest comes first.
    assert set(harness.instance.get_dynamic_partitions(SLIDES_PARTITION)) == set(slides[:3])
    assert _manifest_runs(first) == 1 and _slide_runs(first) == []
    harness.launch(first)

    second = harness.tick()
    assert _slide_runs(second) == slides[:2]  # max_runs_per_tick=2
    assert _manifest_runs(second) == 0
    harness.launch(second)
    third = harness.tick()
    assert _slide_runs(third) == slides[2:3]
    harness.launch(third)
    assert harness.materialized_slides() == set(slides[:3])

    settled = harness.tick()
    assert settled.run_requests == [] and "no new slides" in (settled.skip_message or "")
    cursor = decode_cursor(harness.cursor)
    assert cursor is not None and cursor.pending == 0 and cursor.listed == 3

    # Two slides appear in the GDC: registered, manifest refreshed, then only they run.
    published = requests.post(
        f"{harness.emulator.url}/_emulator/publish", json={"count": 2}, timeout=10
    ).json()["data"]["published"]
    new = sorted(r["file_id"] for r in published)
    assert new == slides[3:5]
    found = harness.tick()
    assert set(harness.instance.get_dynamic_partitions(SLIDES_PARTITION)) == set(slides[:5])
    assert _manifest_runs(found) == 1 and _slide_runs(found) == []
    harness.launch(found)
    again = harness.tick()
    assert _slide_runs(again) == new
    harness.launch(again)
    assert harness.materialized_slides() == set(slides[:5])
    assert harness.tick().run_requests == []


def test_a_repeated_tick_while_the_manifest_refresh_is_pending_asks_only_once(
    harness: Harness,
) -> None:
    first = harness.tick()
    second = harness.tick()  # the refresh has not run yet
    keys = [r.run_key for r in [*first.run_requests, *second.run_requests] if r.run_key]
    assert len(keys) == 2 and len(set(keys)) == 1  # same key: the daemon launches it once
    assert second.dynamic_partitions_requests == []


def test_an_unreadable_cursor_starts_over_safely(harness: Harness) -> None:
    harness.launch(harness.tick())
    harness.launch(harness.tick())
    harness.launch(harness.tick())
    harness.cursor = "garbage"
    result = harness.tick()
    assert _slide_runs(result) == [] and _manifest_runs(result) == 0
    assert decode_cursor(harness.cursor) is not None


def test_the_default_sensor_is_stopped_and_targets_the_slide_run() -> None:
    assert new_slides_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert new_slides_sensor.minimum_interval_seconds == 30
    layout = LayoutResource(root="unused")
    defs = dg.Definitions(
        assets=ASSETS,
        sensors=[build_new_slides_sensor(slide_assets=("slide_file",))],
        resources={
            "gdc": GDCResource(),
            "layout": layout,
            "io_manager": ParquetIOManager(layout=layout),
        },
    )
    slide_run = defs.resolve_job_def("slide_run")
    assert slide_run.partitions_def == slides_partitions
    assert set(slide_run.asset_layer.executable_asset_keys) == {dg.AssetKey("slide_file")}
    manifests = defs.resolve_job_def("manifest_refresh")
    assert set(manifests.asset_layer.executable_asset_keys) == MANIFESTS


def test_a_location_can_give_the_sensor_its_own_slide_job() -> None:
    # What the Celery location (defs/executors.py) does with slide_run_celery.
    job = build_slide_run_job(
        ("slide_file",), name="slide_run_elsewhere", executor_def=dg.multiprocess_executor
    )
    sensor = build_new_slides_sensor(slide_assets=("slide_file",), slide_job=job)
    assert [t.job_name for t in sensor.targets] == ["slide_run_elsewhere", "manifest_refresh"]
    layout = LayoutResource(root="unused")
    defs = dg.Definitions(
        assets=ASSETS,
        sensors=[sensor],
        resources={
            "gdc": GDCResource(),
            "layout": layout,
            "io_manager": ParquetIOManager(layout=layout),
        },
    )
    assert defs.resolve_job_def("slide_run_elsewhere").executor_def is dg.multiprocess_executor
