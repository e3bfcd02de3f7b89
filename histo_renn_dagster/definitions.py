"""The one place the Dagster ``Definitions`` are built: read this to see the whole platform."""

from __future__ import annotations

import dagster as dg

from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.assets.slides import slide_file
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

layout = LayoutResource()

defs = dg.Definitions(
    assets=[gdc_slide_manifest, gdc_expression_manifest, slide_file],
    resources={
        "gdc": GDCResource(),
        "layout": layout,
        "io_manager": ParquetIOManager(layout=layout),
    },
)
