"""The one place the Dagster ``Definitions`` are built: read this to see the whole platform."""

from __future__ import annotations

import dagster as dg

from histo_renn_dagster.defs.assets.cohort import cohort_checks, cohort_table, expression_table
from histo_renn_dagster.defs.assets.features import slide_embedding
from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.assets.slides import slide_file
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.resources import ComputeResource, GDCResource, LayoutResource

ASSETS: list[dg.AssetsDefinition] = [
    # ingest: what the GDC lists for the cohort
    gdc_slide_manifest,
    gdc_expression_manifest,
    # slides: one `slides` partition per GDC slide file
    slide_file,
    # features: frozen-CNN embeddings of sampled tiles (pool `gpu`)
    slide_embedding,
    # cohort: matched tumour expression + sites + embeddings
    expression_table,
    cohort_table,
]

ASSET_CHECKS: list[dg.AssetChecksDefinition] = [*cohort_checks]


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


defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, resources=build_resources())
