"""Tile geometry at a target resolution and the full-tile grid in level-0 integer coordinates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histo_renn_dagster.core.errors import ResolutionError


@dataclass(frozen=True)
class TileGeometry:
    """How one output tile maps onto the slide.

    A tile covers ``level0_tile_px`` level-0 pixels per side; it is read as a ``read_px`` square
    from pyramid level ``read_level`` and, when ``read_px != tile_px``, area-downsampled.
    """

    mpp0: float
    target_mpp: float
    tile_px: int
    level0_tile_px: int
    integer_downsample: int | None  # exact level-0 px per output px, None when not an integer
    effective_mpp: float
    read_level: int
    read_downsample: int  # level-0 px per px of read_level
    read_px: int

    @property
    def resize(self) -> bool:
        return self.read_px != self.tile_px


def plan_geometry(
    mpp0: float,
    level_downsamples: tuple[float, ...],
    *,
    target_mpp: float = 0.5,
    tile_px: int = 598,
    snap_tolerance: float = 0.05,
    slide_name: str = "slide",
) -> TileGeometry:
    """Plan level-0 footprint and read level; never upsamples.

    A ratio within ``snap_tolerance`` of an integer snaps to it so that 0.499 um/px reads 598 px
    and 0.25 um/px reads 1196 px with an exact 2x area downsample (no interpolation blur).
    """
    ratio = target_mpp / mpp0
    if ratio < 1.0 - snap_tolerance:
        raise ResolutionError(
            f"{slide_name}: level-0 resolution {mpp0:g} um/px is coarser than the target "
            f"{target_mpp:g} um/px (beyond the {snap_tolerance:.0%} tolerance); tiles would need "
            "upsampling"
        )
    nearest = max(1, round(ratio))
    integer: int | None = nearest if abs(ratio - nearest) <= snap_tolerance * nearest else None
    level0_px = tile_px * integer if integer is not None else round(tile_px * ratio)
    # Only pyramid levels whose downsample is an exact integer map level-0 integers to level
    # integers exactly (OpenSlide divides by the float downsample), so only those are candidates.
    read_level, read_ds = 0, 1
    for level, ds in enumerate(level_downsamples):
        d = round(ds)
        if d <= 1 or ds != float(d) or level0_px % d:
            continue
        if integer is not None and integer % d:
            continue
        if level0_px // d >= tile_px and d > read_ds:
            read_level, read_ds = level, d
    return TileGeometry(
        mpp0=mpp0,
        target_mpp=target_mpp,
        tile_px=tile_px,
        level0_tile_px=level0_px,
        integer_downsample=integer,
        effective_mpp=mpp0 * level0_px / tile_px,
        read_level=read_level,
        read_downsample=read_ds,
        read_px=level0_px // read_ds,
    )


def grid_coords(width: int, height: int, level0_tile_px: int) -> np.ndarray:
    """(N, 2) int64 level-0 x, y of every full tile, row-major; partial edge tiles are dropped."""
    nx = width // level0_tile_px
    ny = height // level0_tile_px
    if nx == 0 or ny == 0:
        return np.zeros((0, 2), dtype=np.int64)
    ys, xs = np.mgrid[0:ny, 0:nx]
    coords = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)
    return coords * level0_tile_px
