"""Per-slide assets, one ``slides`` partition (GDC file id) each."""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from histo_renn_dagster.core.errors import HistoRennError, InsufficientSpaceError
from histo_renn_dagster.core.wsi.disk import (
    bytes_still_needed,
    check_free_space,
    delete_slide_file,
    find_slide_file,
)
from histo_renn_dagster.core.wsi.images import image_data_uri
from histo_renn_dagster.core.wsi.mpp import load_mpp_overrides
from histo_renn_dagster.core.wsi.store import verify_tile_store
from histo_renn_dagster.core.wsi.tiling import TilingSpec, tile_slide
from histo_renn_dagster.defs.checks import SLIDE_TILES_CHECK_SPECS, slide_tiles_check_results
from histo_renn_dagster.defs.executors import CPU_STEP_TAGS
from histo_renn_dagster.defs.partitions import slides_partitions
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

# Downloads fail transiently (resets, 5xx bursts beyond the client's own retries); a later attempt
# resumes from the .partial file, so retrying the step is cheap.
DOWNLOAD_RETRY = dg.RetryPolicy(max_retries=2, delay=3, backoff=dg.Backoff.EXPONENTIAL)


def manifest_row(manifest: pd.DataFrame, file_id: str) -> dict[str, Any]:
    rows = manifest.loc[manifest["file_id"] == file_id]
    if rows.empty:
        raise dg.Failure(
            f"slide {file_id} is not in gdc_slide_manifest: rematerialize the manifest or drop "
            "the stale partition"
        )
    return {str(k): v for k, v in rows.iloc[0].items()}


class SlideFileConfig(dg.Config):
    reserve_gb: float = Field(
        default=2.0,
        description="Free space (GiB) to leave on the lake's disk besides the slide itself; a "
        "download that would not fit fails at once with the bytes needed and free.",
    )


@dg.asset(
    partitions_def=slides_partitions,
    op_tags=CPU_STEP_TAGS,
    group_name="slides",
    kinds={"svs"},
    retry_policy=DOWNLOAD_RETRY,
    ins={"gdc_slide_manifest": dg.AssetIn()},
)
def slide_file(
    context: dg.AssetExecutionContext,
    config: SlideFileConfig,
    gdc_slide_manifest: pd.DataFrame,
    gdc: GDCResource,
    layout: LayoutResource,
) -> dg.MaterializeResult:
    """The downloaded, md5-verified slide at ``lake/slides/<file_id>/<file_name>``."""
    file_id = context.partition_key
    row = manifest_row(gdc_slide_manifest, file_id)
    lake = layout.lake()
    needed = bytes_still_needed(lake.slide_dir(file_id), int(row["size"]))
    try:
        check_free_space(
            lake.slides_dir,
            needed,
            item=f"slide {file_id} ({row['file_name']})",
            reserve_bytes=int(config.reserve_gb * 2**30),
        )
    except InsufficientSpaceError as exc:  # retrying cannot make room
        raise dg.Failure(str(exc), allow_retries=False) from exc
    context.log.info(f"downloading {row['file_name']} ({int(row['size']) / 2**20:.1f} MiB)")
    with gdc.client() as client:
        result = client.download(file_id, lake.slides_dir, md5=row["md5"], size=int(row["size"]))
    context.log.info(
        f"{'already complete' if result.skipped else 'downloaded'}: {result.path} "
        f"({result.attempts} request(s))"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "file_name": str(row["file_name"]),
            "size_bytes": result.size,
            "md5": result.md5,
            "case": str(row["case_barcode"]),
            "site": str(row["site_code"]),
            "skipped_existing": result.skipped,
            "requests": result.attempts,
        }
    )


class SlideTilesConfig(dg.Config):
    drop_flagged: bool = Field(
        default=False,
        description="Drop tiles QC flags (pen ink, blur) instead of only recording the flags.",
    )
    delete_slide_after_verify: bool = Field(
        default=False,
        description="Delete the downloaded slide once its tile store is verified (disk budget). "
        "Tiling the slide again then needs slide_file to be materialized again.",
    )
    direct_jpeg: bool = Field(
        default=True,
        description="Decode tiled-JPEG slides directly (pixel-identical to OpenSlide, faster).",
    )


def _preview_markdown(thumbnail: Path, overlay: Path) -> str:
    return (
        f"![thumbnail]({image_data_uri(thumbnail)}) ![mask overlay]({image_data_uri(overlay)})"
        "\n\nOverlay: tissue tinted green, stored tiles outlined blue, QC-flagged tiles red."
    )


@dg.asset(
    partitions_def=slides_partitions,
    op_tags=CPU_STEP_TAGS,
    group_name="slides",
    kinds={"hdf5"},
    deps=[slide_file],
    # Checked in this step, not in separate check steps: one task per slide on a Celery worker.
    check_specs=SLIDE_TILES_CHECK_SPECS,
)
def slide_tiles(
    context: dg.AssetExecutionContext, config: SlideTilesConfig, layout: LayoutResource
) -> dg.MaterializeResult:
    """Per-slide HDF5 tile store at ``lake/tiles/<file_id>.h5``: 598-px tissue tiles at 0.5 um/px
    (JPEG q90), level-0 coords, tissue fractions, QC flags and provenance; thumbnail and tissue
    mask overlay PNGs beside it (shown here as images)."""
    file_id = context.partition_key
    lake = layout.lake()
    started = time.perf_counter()
    try:
        slide = find_slide_file(lake.slide_dir(file_id), item=f"slide {file_id}")
        overrides_csv = lake.mpp_overrides_path
        overrides = load_mpp_overrides(overrides_csv) if overrides_csv.is_file() else {}
        result = tile_slide(
            slide,
            lake.tiles_path(file_id),
            TilingSpec(drop_flagged=config.drop_flagged, direct_jpeg=config.direct_jpeg),
            slide_id=file_id,
            mpp_override=overrides.get(file_id),
            previews_dir=lake.tile_previews_dir(file_id),
        )
        store = verify_tile_store(result.out, expected_tiles=result.tiles)
    except HistoRennError as exc:
        raise dg.Failure(f"slide {file_id}: {exc}") from exc
    for warning in result.warnings:
        context.log.warning(f"slide {file_id}: {warning}")
    freed = delete_slide_file(slide) if config.delete_slide_after_verify else 0
    metadata = {
        "dagster/row_count": result.tiles,
        "tiles": result.tiles,
        "no_tissue": store.no_tissue,
        "tissue_area_mm2": round(result.tissue_area_mm2, 3),
        "mpp0": result.mpp0,
        "mpp_source": result.mpp_source,
        "mpp_estimated": result.mpp_estimated,
        "effective_mpp": result.effective_mpp,
        "grid_tiles": result.grid_tiles,
        "tissue_tiles": result.tissue_tiles,
        "qc_pen_flagged": result.pen_flagged,
        "qc_blur_flagged": result.blur_flagged,
        "qc_dropped": result.dropped_flagged,
        "corrupt_tiles": result.corrupt_tiles,
        "mask_method": result.mask_method,
        "seconds_tiling": round(result.seconds, 3),
        "seconds_total": round(time.perf_counter() - started, 3),
        "tiles_per_second": round(result.tiles / result.seconds, 2) if result.seconds else 0.0,
        "store_path": dg.MetadataValue.path(str(store.path)),
        "store_bytes": store.file_bytes,
        "slide_file": slide.name,
        "slide_deleted": config.delete_slide_after_verify,
        "slide_bytes_freed": freed,
        "warnings": "; ".join(result.warnings),
    }
    if result.thumbnail is not None and result.overlay is not None:
        metadata["previews"] = dg.MetadataValue.md(
            _preview_markdown(result.thumbnail, result.overlay)
        )
        metadata["thumbnail_path"] = dg.MetadataValue.path(str(result.thumbnail))
        metadata["overlay_path"] = dg.MetadataValue.path(str(result.overlay))
    return dg.MaterializeResult(
        metadata=metadata, check_results=slide_tiles_check_results(store.path)
    )
