"""New slides published in the emulator are found by the sensor, registered and materialized."""

from __future__ import annotations

import pytest

from histo_renn_dagster.commands.publish import publish_slides
from histo_renn_dagster.emulator.server import GDCEmulator
from histo_renn_dagster_tests.e2e.support import DagsterDev, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SENSOR_STATE = (
    "mutation($s: SensorSelector!) { %s(sensorSelector: $s) { __typename "
    "... on Sensor { sensorState { status } } ... on PythonError { message } } }"
)


def test_the_sensor_registers_and_materializes_published_slides(
    dagster_dev: DagsterDev, e2e_emulator: GDCEmulator
) -> None:
    published = publish_slides(e2e_emulator.url, count=1)
    new = {record["file_id"] for record in published}
    assert len(new) == 1 and not new & set(dagster_dev.partition_keys("slide_file"))
    selector = {
        "repositoryLocationName": dagster_dev.location(),
        "repositoryName": "__repository__",
        "sensorName": "new_slides_sensor",
    }
    started = dagster_dev.graphql(SENSOR_STATE % "startSensor", {"s": selector})["startSensor"]
    assert started["__typename"] == "Sensor", started
    try:
        wait_for(
            "the sensor to register the published slide",
            lambda: new <= set(dagster_dev.partition_keys("slide_file")),
            timeout=180,
            every=3,
        )
        # First the manifest refresh, then (a later tick) the slide's own run.
        wait_for(
            "the published slide's slide_file to be materialized",
            lambda: new <= dagster_dev.materialized_partitions("slide_file"),
            timeout=420,
            every=5,
        )
    finally:
        # Back to its default status (stopped), so the server stops ticking it.
        dagster_dev.graphql(SENSOR_STATE % "resetSensor", {"s": selector})
