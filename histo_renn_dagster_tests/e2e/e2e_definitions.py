"""The product's Definitions plus the operations objects it does not register yet.

``dagster dev`` in the e2e tests loads this module. Once ``histo_renn_dagster.definitions``
registers the sensor, the schedule and the automation sensor itself, this is a pass-through.
The slide run covers the per-slide assets the product defines today.
"""

from __future__ import annotations

import dagster as dg

from histo_renn_dagster import definitions as product_module
from histo_renn_dagster.defs.automation import automation_sensor
from histo_renn_dagster.defs.schedules import manifest_refresh_schedule
from histo_renn_dagster.defs.sensors import SLIDE_RUN_ASSETS, build_new_slides_sensor


def _extras(product: dg.Definitions) -> dg.Definitions:
    defined = {key.path[-1] for key in product.resolve_asset_graph().get_all_asset_keys()}
    materializable = {
        key.path[-1] for key in product.resolve_asset_graph().materializable_asset_keys
    }
    sensors = {s.name for s in product.sensors or []}
    schedules = {s.name for s in product.schedules or []}
    extra_sensors: list[dg.SensorDefinition] = []
    if "new_slides_sensor" not in sensors:
        slide_assets = [a for a in SLIDE_RUN_ASSETS if a in materializable]
        extra_sensors.append(build_new_slides_sensor(slide_assets=slide_assets))
    if automation_sensor.name not in sensors:
        extra_sensors.append(automation_sensor)
    extra_schedules = []
    if manifest_refresh_schedule.name not in schedules and "gdc_slide_manifest" in defined:
        extra_schedules.append(manifest_refresh_schedule)
    return dg.Definitions(sensors=extra_sensors, schedules=extra_schedules)


defs = dg.Definitions.merge(product_module.defs, _extras(product_module.defs))
