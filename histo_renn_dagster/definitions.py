"""The one place the Dagster ``Definitions`` are built: read this to see the whole platform."""

from __future__ import annotations

import warnings

import dagster as dg

from histo_renn_dagster.defs.assets.cohort import cohort_checks, cohort_table, expression_table
from histo_renn_dagster.defs.assets.features import slide_embedding
from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.assets.renn import renn_model, renn_model_checks
from histo_renn_dagster.defs.assets.reports import renn_report, renn_results
from histo_renn_dagster.defs.assets.slides import slide_file, slide_tiles
from histo_renn_dagster.defs.automation import automation_sensor
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.jobs import JOBS
from histo_renn_dagster.defs.resources import ComputeResource, GDCResource, LayoutResource
from histo_renn_dagster.defs.schedules import manifest_refresh_schedule
from histo_renn_dagster.defs.sensors import manifest_refresh_job, new_slides_sensor, slide_run_job

ASSETS: list[dg.AssetsDefinition] = [
    # ingest: what the GDC lists for the cohort
    gdc_slide_manifest,
    gdc_expression_manifest,
    # slides: one `slides` partition per GDC slide file
    slide_file,
    slide_tiles,
    # features: frozen-CNN embeddings of sampled tiles (pool `gpu`)
    slide_embedding,
    # cohort: matched tumour expression + sites + embeddings
    expression_table,
    cohort_table,
    # renn: the minibatch-size study, one partition per m, and its flat results
    renn_model,
    renn_results,
    # reports: every figure and report.html
    renn_report,
]

# slide_tiles and slide_embedding check themselves in their own step (check_specs).
ASSET_CHECKS: list[dg.AssetChecksDefinition] = [*cohort_checks, *renn_model_checks]


def build_resources(
    gdc: GDCResource | None = None, layout: LayoutResource | None = None
) -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManager]:
    """The platform's resources; ``gdc``/``layout`` override the defaults (demo, tests)."""
    layout = layout or LayoutResource()
    return {
        "gdc": gdc or GDCResource(),
        "layout": layout,
        "compute": ComputeResource(),
        "io_manager": ParquetIOManager(layout=layout),
    }


# `slide_run` runs one slide per run (the sensor asks for single partitions), so the mixed
# backfill policies inside it (slide_embedding batches up to 64 slides in its own backfills)
# never meet; Dagster would warn about the mix on every load.
warnings.filterwarnings(
    "ignore", message="Asset job slide_run materializes assets with varying BackfillPolicies"
)

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[*JOBS, slide_run_job, manifest_refresh_job],
    # New slides at the GDC -> partitions + slide runs; downstream assets follow on a settled cron.
    sensors=[new_slides_sensor, automation_sensor],
    schedules=[manifest_refresh_schedule],
    resources=build_resources(),
)
