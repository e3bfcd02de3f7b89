"""Whole-slide images: mpp resolution, tissue mask, tile grid, streaming reader, HDF5 tile store."""

from histo_renn_dagster.core.wsi.images import write_slide_pngs
from histo_renn_dagster.core.wsi.mask import MaskSpec, TissueMask, compute_tissue_mask
from histo_renn_dagster.core.wsi.mpp import Mpp, load_mpp_overrides, resolve_mpp
from histo_renn_dagster.core.wsi.qc import QCSpec
from histo_renn_dagster.core.wsi.store import TileStore
from histo_renn_dagster.core.wsi.tiling import (
    TilingResult,
    TilingSpec,
    tile_command_summary,
    tile_slide,
)

__all__ = [
    "MaskSpec",
    "Mpp",
    "QCSpec",
    "TileStore",
    "TilingResult",
    "TilingSpec",
    "TissueMask",
    "compute_tissue_mask",
    "load_mpp_overrides",
    "resolve_mpp",
    "tile_command_summary",
    "tile_slide",
    "write_slide_pngs",
]
