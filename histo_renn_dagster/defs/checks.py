"""Asset checks, one section per asset; ``ALL_CHECKS`` is what ``definitions.py`` registers.

Each section owns its checks and exports a list; add a section and extend ``ALL_CHECKS``.
"""

# No `from __future__ import annotations` here: Dagster reads the context annotations of check
# functions at definition time.

import warnings
from collections.abc import Callable

import dagster as dg

from histo_renn_dagster.core.errors import TileStoreError
from histo_renn_dagster.core.wsi.store import verify_tile_store
from histo_renn_dagster.defs.assets.slides import slide_tiles
from histo_renn_dagster.defs.partitions import slides_partitions
from histo_renn_dagster.defs.resources import LayoutResource

# --- slide_tiles --------------------------------------------------------------------------------


def _per_slide_check(
    **kwargs,
) -> Callable[[Callable[..., dg.AssetCheckResult]], dg.AssetChecksDefinition]:
    """``asset_check`` on slide_tiles, partitioned by slide so each slide has its own check status.

    Partitioned checks are a preview API in Dagster 1.13 (it warns at definition time); they are
    silenced here only, on purpose: without a partitions_def every slide's result would land on one
    unpartitioned check status.
    """

    def wrap(fn: Callable[..., dg.AssetCheckResult]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(asset=slide_tiles, partitions_def=slides_partitions, **kwargs)(fn)

    return wrap


@_per_slide_check(
    blocking=True,  # embeddings must not read a store that fails this
    description="The tile store opens, its datasets have consistent shapes and attributes, and "
    "tiles sampled across it decode to tile_px x tile_px RGB.",
)
def slide_tiles_store_readable(
    context: dg.AssetCheckExecutionContext, layout: LayoutResource
) -> dg.AssetCheckResult:
    path = layout.lake().tiles_path(context.partition_key)
    try:
        summary = verify_tile_store(path, sample=5)
    except TileStoreError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    return dg.AssetCheckResult(
        passed=True,
        metadata={"tiles": summary.tiles, "tile_px": summary.tile_px, "bytes": summary.file_bytes},
    )


@_per_slide_check(
    description="The store has at least one tile, or is explicitly flagged no_tissue by the tiler "
    "(a well-formed empty store, reported as a warning).",
)
def slide_tiles_nonempty_or_flagged(
    context: dg.AssetCheckExecutionContext, layout: LayoutResource
) -> dg.AssetCheckResult:
    path = layout.lake().tiles_path(context.partition_key)
    try:
        summary = verify_tile_store(path, sample=0)
    except TileStoreError as exc:  # includes "no tiles and not flagged no_tissue"
        return dg.AssetCheckResult(passed=False, description=str(exc))
    if summary.tiles == 0:
        return dg.AssetCheckResult(
            passed=True,
            description=f"{path}: no tile has enough tissue; flagged empty (no_tissue)",
            metadata={"tiles": 0, "flagged_empty": True},
        )
    return dg.AssetCheckResult(
        passed=True, metadata={"tiles": summary.tiles, "flagged_empty": False}
    )


SLIDE_TILES_CHECKS = [slide_tiles_store_readable, slide_tiles_nonempty_or_flagged]


# --- all checks ---------------------------------------------------------------------------------

ALL_CHECKS = [*SLIDE_TILES_CHECKS]
