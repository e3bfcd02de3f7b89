"""Streaming tile reader: one tile region at a time, direct JPEG decode with OpenSlide fallback."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import openslide

from histo_renn_dagster.core.wsi.grid import TileGeometry
from histo_renn_dagster.core.wsi.jpeg_tiff import JpegDecodeError, JpegTiffLevel, open_jpeg_level
from histo_renn_dagster.core.wsi.slide import open_slide, read_rgb

log = logging.getLogger(__name__)


class TileReadError(Exception):
    """Neither the direct decoder nor OpenSlide could read a tile region (a corrupt tile)."""


@dataclass
class ReadStats:
    direct: int = 0
    openslide: int = 0
    fallbacks: int = 0  # direct decode failed, OpenSlide retried
    corrupt: int = 0


class TileReader:
    """Reads output tiles (tile_px x tile_px RGB) at level-0 coordinates of a geometry plan."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        slide: openslide.OpenSlide,
        geometry: TileGeometry,
        *,
        direct: bool = True,
        cache_bytes: int = 96 << 20,
    ) -> None:
        self.path = Path(path)
        self.slide = slide
        self.geometry = geometry
        self.stats = ReadStats()
        self._direct: JpegTiffLevel | None = None
        # An exact k x downsample is fused into the direct decoder (k | JPEG tile size): each
        # decoded JPEG tile is block-averaged once, the same pixels as resizing the region.
        self._scale = 1
        if geometry.resize and geometry.read_px % geometry.tile_px == 0:
            self._scale = geometry.read_px // geometry.tile_px
        if direct:
            vendor = slide.properties.get("openslide.vendor", "")
            size = slide.level_dimensions[geometry.read_level]
            self._direct = open_jpeg_level(
                self.path, vendor, size, cache_bytes=cache_bytes, scale=self._scale
            )
            if self._direct is None and self._scale > 1:
                self._scale = 1
                self._direct = open_jpeg_level(self.path, vendor, size, cache_bytes=cache_bytes)

    @property
    def uses_direct(self) -> bool:
        return self._direct is not None

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()

    def reopen(self) -> openslide.OpenSlide:
        """A fresh OpenSlide handle: after any error OpenSlide refuses further reads on the old one."""
        with contextlib.suppress(openslide.OpenSlideError):
            self.slide.close()
        self.slide = open_slide(self.path)
        return self.slide

    def _level_region(self, x0: int, y0: int) -> tuple[int, int, int, int]:
        d = self.geometry.read_downsample
        return x0 // d, y0 // d, self.geometry.read_px, self.geometry.read_px

    def plan(self, coords: np.ndarray) -> None:
        """Announce the read order so decoded JPEG tiles shared by neighbours are decoded once."""
        if self._direct is not None:
            self._direct.plan(self._level_region(int(x), int(y)) for x, y in coords)

    def _read_openslide(self, x0: int, y0: int) -> np.ndarray:
        g = self.geometry
        try:
            return read_rgb(self.slide, x0, y0, g.read_level, g.read_px, g.read_px)
        except openslide.OpenSlideError as exc:
            self.reopen()
            raise TileReadError(f"{self.path}: tile at level-0 ({x0}, {y0}): {exc}") from exc

    def read_region(self, x0: int, y0: int) -> np.ndarray:
        """The region at the read level: (read_px, read_px, 3), or already (tile_px, tile_px, 3)
        when the direct decoder applies the exact downsample."""
        region_xywh = self._level_region(x0, y0)
        aligned = all(v % self._scale == 0 for v in region_xywh)
        if self._direct is not None and aligned:
            try:
                region = self._direct.read(*region_xywh)
                self.stats.direct += 1
                return region
            except JpegDecodeError as exc:
                log.warning("direct decode failed, retrying with OpenSlide: %s", exc)
                self.stats.fallbacks += 1
        region = self._read_openslide(x0, y0)
        self.stats.openslide += 1
        return region

    def read_tile(self, x0: int, y0: int) -> np.ndarray:
        """The output tile at level-0 (x0, y0); raises TileReadError for a corrupt region."""
        try:
            region = self.read_region(x0, y0)
        except TileReadError:
            self.stats.corrupt += 1
            raise
        size = self.geometry.tile_px
        if region.shape[0] != size:
            # INTER_AREA with an integer factor is an exact block mean (no interpolation blur).
            region = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)
        return region
