"""``tile_slide``: one slide file -> one HDF5 tile store of tissue tiles at 0.5 um/px.

Keeps the reference science (20x = 0.5 um/px, Otsu tissue mask, 598 px tiles, > 80 % tissue)
but streams one tile region at a time, so peak memory does not grow with the slide.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from histo_renn_dagster import __version__
from histo_renn_dagster.core.wsi.grid import grid_coords, plan_geometry
from histo_renn_dagster.core.wsi.images import OVERLAY_NAME, THUMBNAIL_NAME, write_slide_pngs
from histo_renn_dagster.core.wsi.jpeg_tiff import open_jpeg_level
from histo_renn_dagster.core.wsi.mask import (
    MaskSpec,
    TissueMask,
    compute_tissue_mask,
    tissue_fractions,
)
from histo_renn_dagster.core.wsi.mpp import resolve_mpp
from histo_renn_dagster.core.wsi.qc import QCSpec, assess_tile
from histo_renn_dagster.core.wsi.reader import TileReader, TileReadError
from histo_renn_dagster.core.wsi.slide import describe_slide, open_slide
from histo_renn_dagster.core.wsi.store import TileStoreWriter

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TilingSpec:
    target_mpp: float = 0.5
    tile_px: int = 598
    min_tissue_fraction: float = 0.8  # a tile is kept when its tissue fraction is strictly above
    snap_tolerance: float = 0.05
    jpeg_quality: int = 90
    drop_flagged: bool = False  # drop tiles flagged by QC instead of only recording the flags
    direct_jpeg: bool = True  # decode tiled-JPEG TIFF tiles directly (OpenSlide otherwise)
    cache_mb: int = 96  # decoded JPEG tiles kept for neighbouring output tiles
    batch: int = 64
    mask: MaskSpec = field(default_factory=MaskSpec)
    qc: QCSpec = field(default_factory=QCSpec)


@dataclass(frozen=True)
class TilingResult:
    slide_id: str
    out: Path
    tiles: int
    grid_tiles: int
    tissue_tiles: int
    mpp0: float
    mpp_source: str
    mpp_estimated: bool
    effective_mpp: float
    level0_tile_px: int
    read_level: int
    read_px: int
    seconds: float
    tissue_area_mm2: float
    mask_threshold: float
    mask_method: str
    pen_flagged: int
    blur_flagged: int
    dropped_flagged: int
    corrupt_tiles: int
    direct_reads: int
    warnings: tuple[str, ...] = ()
    thumbnail: Path | None = None  # mask-resolution slide image, when previews were asked for
    overlay: Path | None = None  # the same with tissue tinted and stored / flagged tiles outlined


def tile_slide(
    slide_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    spec: TilingSpec | None = None,
    *,
    slide_id: str | None = None,
    mpp_override: float | None = None,
    progress: Progress | None = None,
    previews_dir: str | os.PathLike[str] | None = None,
) -> TilingResult:
    """Tile a slide into an HDF5 store at ``out_path`` (written atomically; nothing partial).

    With ``previews_dir``, also writes ``thumbnail.png`` and ``mask_overlay.png`` there from the
    mask image already in memory (no extra slide read); they are removed again if tiling fails.
    """
    spec = spec or TilingSpec()
    started = time.perf_counter()
    path = Path(slide_path)
    out = Path(out_path)
    slide_id = slide_id or path.stem
    slide = open_slide(path)
    info = describe_slide(slide, path)
    mpp = resolve_mpp(info.properties, slide_name=str(path), override=mpp_override)
    geometry = plan_geometry(
        mpp.value,
        info.level_downsamples,
        target_mpp=spec.target_mpp,
        tile_px=spec.tile_px,
        snap_tolerance=spec.snap_tolerance,
        slide_name=str(path),
    )
    reader = TileReader(
        path, slide, geometry, direct=spec.direct_jpeg, cache_bytes=spec.cache_mb << 20
    )
    warnings: list[str] = []
    try:
        mask = compute_tissue_mask(
            reader.slide,
            mpp.value,
            spec.mask,
            reopen=reader.reopen,
            open_level=(
                (lambda level: open_jpeg_level(path, info.vendor, info.level_dimensions[level]))
                if spec.direct_jpeg
                else None
            ),
        )
        if mask.method != "otsu":
            warnings.append(f"tissue threshold fell back to fixed {mask.threshold:g}")
        if mask.unreadable_rows:
            warnings.append(f"{mask.unreadable_rows} mask rows unreadable (treated as background)")
        coords = grid_coords(*info.dimensions, geometry.level0_tile_px)
        fractions = tissue_fractions(mask, coords, geometry.level0_tile_px)
        keep = fractions > spec.min_tissue_fraction
        kept_coords, kept_fractions = coords[keep], fractions[keep]
        if len(kept_coords) == 0:
            warnings.append("no tile has enough tissue: the store is empty")
        reader.plan(kept_coords)
        counts = {"pen": 0, "blur": 0, "dropped": 0}
        previews: tuple[Path, Path] | None = None
        with TileStoreWriter(out, tile_px=spec.tile_px, jpeg_quality=spec.jpeg_quality) as writer:
            flagged = _write_tiles(
                writer, reader, kept_coords, kept_fractions, spec, counts, progress
            )
            if reader.stats.corrupt:
                warnings.append(f"{reader.stats.corrupt} unreadable tiles skipped")
            for message in warnings:
                log.warning("%s: %s", path, message)
            tissue_mm2 = float(mask.mask.sum()) * mask.scale_x * mask.scale_y * mpp.value**2 / 1e6
            attrs: dict[str, Any] = {
                "slide_id": slide_id,
                "file_name": path.name,
                "vendor": info.vendor,
                "objective_power": info.objective_power if info.objective_power else math.nan,
                "mpp0": mpp.value,
                "mpp_source": mpp.source,
                "mpp_estimated": mpp.estimated,
                "target_mpp": spec.target_mpp,
                "effective_mpp": geometry.effective_mpp,
                "level0_tile_px": geometry.level0_tile_px,
                "read_level": geometry.read_level,
                "read_downsample": geometry.read_downsample,
                "read_px": geometry.read_px,
                "min_tissue_fraction": spec.min_tissue_fraction,
                "mask_level": mask.level,
                "mask_factor": mask.factor,
                "mask_mpp": mpp.value * mask.mpp_factor,
                "mask_threshold": mask.threshold,
                "mask_method": mask.method,
                "mask_unreadable_rows": mask.unreadable_rows,
                "tissue_area_mm2": tissue_mm2,
                "qc_pen_hue_range": np.asarray(spec.qc.pen_hue_range, dtype=np.int64),
                "qc_pen_max_fraction": spec.qc.pen_max_fraction,
                "qc_blur_min_laplacian_var": spec.qc.blur_min_laplacian_var,
                "qc_dropped": spec.drop_flagged,
                "n_grid_tiles": len(coords),
                "n_tissue_tiles": len(kept_coords),
                "n_pen_flagged": counts["pen"],
                "n_blur_flagged": counts["blur"],
                "n_dropped_flagged": counts["dropped"],
                "n_corrupt_tiles": reader.stats.corrupt,
                "n_direct_reads": reader.stats.direct,
                "n_openslide_reads": reader.stats.openslide,
                "no_tissue": len(kept_coords) == 0,
                "warnings": "; ".join(warnings),
                "tool": "histo_renn_dagster.core.wsi.tile_slide",
                "tool_version": __version__,
            }
            n_tiles = writer.count
            if previews_dir is not None:
                previews = _write_previews(
                    Path(previews_dir), mask, writer, flagged, geometry.level0_tile_px
                )
            try:
                writer.commit(attrs)
            except BaseException:
                for png in previews or ():
                    png.unlink(missing_ok=True)
                raise
    finally:
        reader.close()
        reader.slide.close()
    return TilingResult(
        slide_id=slide_id,
        out=out,
        tiles=n_tiles,
        grid_tiles=len(coords),
        tissue_tiles=len(kept_coords),
        mpp0=mpp.value,
        mpp_source=mpp.source,
        mpp_estimated=mpp.estimated,
        effective_mpp=geometry.effective_mpp,
        level0_tile_px=geometry.level0_tile_px,
        read_level=geometry.read_level,
        read_px=geometry.read_px,
        seconds=time.perf_counter() - started,
        tissue_area_mm2=tissue_mm2,
        mask_threshold=mask.threshold,
        mask_method=mask.method,
        pen_flagged=counts["pen"],
        blur_flagged=counts["blur"],
        dropped_flagged=counts["dropped"],
        corrupt_tiles=reader.stats.corrupt,
        direct_reads=reader.stats.direct,
        warnings=tuple(warnings),
        thumbnail=previews[0] if previews else None,
        overlay=previews[1] if previews else None,
    )


def _write_previews(
    folder: Path,
    mask: TissueMask,
    writer: TileStoreWriter,
    flagged: np.ndarray,
    level0_tile_px: int,
) -> tuple[Path, Path]:
    return write_slide_pngs(
        mask,
        folder / THUMBNAIL_NAME,
        folder / OVERLAY_NAME,
        coords=writer.written_coords(),
        level0_tile_px=level0_tile_px,
        flagged=flagged,
    )


def _write_tiles(
    writer: TileStoreWriter,
    reader: TileReader,
    coords: np.ndarray,
    fractions: np.ndarray,
    spec: TilingSpec,
    counts: dict[str, int],
    progress: Progress | None,
) -> np.ndarray:
    """Read, QC and store the tiles; returns the (M, 2) coords of QC-flagged tiles (for previews)."""
    columns: dict[str, list[Any]] = {}
    jpegs: list[np.ndarray] = []
    flagged: list[tuple[int, int]] = []

    def flush() -> None:
        writer.append(columns, jpegs)
        columns.clear()
        jpegs.clear()

    for done, ((x, y), fraction) in enumerate(zip(coords, fractions, strict=True), start=1):
        try:
            tile = reader.read_tile(int(x), int(y))
        except TileReadError as exc:
            log.warning("skipping unreadable tile: %s", exc)
            continue
        qc = assess_tile(tile, spec.qc)
        counts["pen"] += qc.pen
        counts["blur"] += qc.blur
        if qc.pen or qc.blur:
            flagged.append((int(x), int(y)))
        if spec.drop_flagged and (qc.pen or qc.blur):
            counts["dropped"] += 1
            continue
        row = {
            "coords": (int(x), int(y)),
            "tissue_fraction": float(fraction),
            "qc_pen_fraction": qc.pen_fraction,
            "qc_laplacian_var": qc.laplacian_var,
            "qc_pen": qc.pen,
            "qc_blur": qc.blur,
        }
        for key, value in row.items():
            columns.setdefault(key, []).append(value)
        jpegs.append(writer.encode(tile))
        if len(jpegs) >= spec.batch:
            flush()
        if progress is not None and (done % spec.batch == 0 or done == len(coords)):
            progress(done, len(coords))
    if jpegs:
        flush()
    return np.asarray(flagged, dtype=np.int64).reshape(-1, 2)


def tile_command_summary(result: TilingResult) -> dict[str, Any]:
    """The JSON object ``histo-renn tile`` prints for one slide."""
    return {
        "tiles": result.tiles,
        "mpp0": result.mpp0,
        "mpp_source": result.mpp_source,
        "effective_mpp": result.effective_mpp,
        "seconds": round(result.seconds, 3),
        "out": str(result.out),
    }
