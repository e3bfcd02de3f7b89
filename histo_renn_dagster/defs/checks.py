"""Asset checks of the per-slide assets: their specs and the functions that compute them.

The ``slide_tiles`` checks run inside the ``slide_tiles`` step (``check_specs`` on the asset,
results from ``slide_tiles_check_results``) rather than as separate ``@asset_check`` steps: under
a distributed executor every step is one more task on a worker, and a slide run is the unit that
repeats 1133 times. Each check stays a plain function of the tile store's path.
"""

# No `from __future__ import annotations` here, like the asset modules that import this one.

import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from histo_renn_dagster.core.errors import TileStoreError
from histo_renn_dagster.core.wsi.store import verify_tile_store
from histo_renn_dagster.defs.partitions import slides_partitions

# --- slide_tiles --------------------------------------------------------------------------------

SLIDE_TILES = dg.AssetKey("slide_tiles")


def _per_slide_spec(name: str, **kwargs) -> dg.AssetCheckSpec:
    """A check spec on slide_tiles, partitioned by slide so each slide has its own check status.

    Partitioned check specs are a preview API in Dagster 1.13 (it warns at definition time); the
    warning is silenced here only, on purpose: without a partitions_def every slide's result
    would land on one unpartitioned check status.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=SLIDE_TILES, partitions_def=slides_partitions, **kwargs
        )


def slide_tiles_store_readable(path: Path) -> dg.AssetCheckResult:
    try:
        summary = verify_tile_store(path, sample=5)
    except TileStoreError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    return dg.AssetCheckResult(
        passed=True,
        metadata={"tiles": summary.tiles, "tile_px": summary.tile_px, "bytes": summary.file_bytes},
    )


def slide_tiles_nonempty_or_flagged(path: Path) -> dg.AssetCheckResult:
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


SLIDE_TILES_CHECK_SPECS: list[dg.AssetCheckSpec] = [
    _per_slide_spec(
        "slide_tiles_store_readable",
        blocking=True,  # embeddings must not read a store that fails this
        description="The tile store opens, its datasets have consistent shapes and attributes, "
        "and tiles sampled across it decode to tile_px x tile_px RGB.",
    ),
    _per_slide_spec(
        "slide_tiles_nonempty_or_flagged",
        description="The store has at least one tile, or is explicitly flagged no_tissue by the "
        "tiler (a well-formed empty store, reported as a warning).",
    ),
]
"""``check_specs`` of the ``slide_tiles`` asset."""

_SLIDE_TILES_CHECK_FNS: dict[str, Callable[[Path], dg.AssetCheckResult]] = {
    "slide_tiles_store_readable": slide_tiles_store_readable,
    "slide_tiles_nonempty_or_flagged": slide_tiles_nonempty_or_flagged,
}


def slide_tiles_check_results(store: Path) -> list[dg.AssetCheckResult]:
    """Every ``slide_tiles`` check on one slide's tile store (an ``@asset`` with check specs
    cannot be subset, so all of them are always selected)."""
    return [
        fn(store)._replace(asset_key=SLIDE_TILES, check_name=name)
        for name, fn in _SLIDE_TILES_CHECK_FNS.items()
    ]
