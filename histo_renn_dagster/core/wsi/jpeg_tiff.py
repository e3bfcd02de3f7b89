"""Direct decoder for tiled-JPEG TIFF levels (Aperio SVS, generic tiled TIFF).

It reads tile bytes at the offsets in the TIFF directory and decodes them with libjpeg-turbo
(imagecodecs), using the same colour-space rule as OpenSlide (photometric RGB means the JPEG
components are stored untransformed). Tests prove the output pixel-identical to OpenSlide's
``read_region``; anything this class cannot handle makes ``open_jpeg_level`` return None.

Decoded tiles are kept in a cache driven by the known read schedule: a tile is dropped after its
last planned use, and when the byte budget is exceeded the tile needed furthest in the future goes
first (Belady's rule), so each JPEG tile is decoded about once with bounded memory.

With ``scale=k`` each decoded tile is area-downsampled by k as it enters the cache and ``read``
returns the k-times smaller region. When k divides the JPEG tile size and the region's origin and
size, no k x k block straddles two JPEG tiles, so this is the same integer block mean (same
rounding) as downsampling the assembled region, with a quarter of the copying at k = 2.
"""

from __future__ import annotations

import heapq
import os
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import tifffile

_JPEG = 7
_SUPPORTED_VENDORS = {"aperio", "generic-tiff"}


class JpegDecodeError(Exception):
    """A tile's bytes could not be decoded; the caller falls back to OpenSlide."""


class JpegTiffLevel:
    """One tiled-JPEG pyramid level read straight from the file."""

    def __init__(
        self, path: Path, page: tifffile.TiffPage, cache_bytes: int, scale: int = 1
    ) -> None:
        self.path = path
        self.width = int(page.imagewidth)
        self.height = int(page.imagelength)
        self.tile_w = int(page.tilewidth)
        self.tile_h = int(page.tilelength)
        self.tiles_across = -(-self.width // self.tile_w)
        self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self.counts = np.asarray(page.databytecounts, dtype=np.int64)
        self.tables = page.jpegtables
        # Photometric RGB: components are RGB, not YCbCr; libjpeg would guess YCbCr otherwise.
        self.colorspace = "RGB" if int(page.photometric) == 2 else None
        self.cache_bytes = cache_bytes
        if scale < 1 or self.tile_w % scale or self.tile_h % scale:
            raise ValueError(f"scale {scale} does not divide the {self.tile_w}x{self.tile_h} tiles")
        self.scale = scale
        self._fd = os.open(path, os.O_RDONLY)
        self._cache: dict[int, np.ndarray] = {}
        self._uses: dict[int, deque[int]] = {}
        self._step = 0
        self.decoded = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._cache.clear()

    # -- schedule ---------------------------------------------------------------------------------

    def tiles_for(self, x: int, y: int, w: int, h: int) -> list[int]:
        tx0, tx1 = x // self.tile_w, (x + w - 1) // self.tile_w
        ty0, ty1 = y // self.tile_h, (y + h - 1) // self.tile_h
        return [
            ty * self.tiles_across + tx for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)
        ]

    def plan(self, regions: Iterable[tuple[int, int, int, int]]) -> None:
        """Register the regions that ``read`` will be called with, in that order."""
        uses: dict[int, deque[int]] = defaultdict(deque)
        for step, region in enumerate(regions):
            for tile in self.tiles_for(*region):
                uses[tile].append(step)
        self._uses = dict(uses)
        self._step = 0
        self._cache.clear()

    # -- decoding ---------------------------------------------------------------------------------

    def raw_tile(self, index: int) -> bytes:
        count = int(self.counts[index])
        data = os.pread(self._fd, count, int(self.offsets[index]))
        if len(data) != count or count == 0:
            raise JpegDecodeError(f"{self.path}: tile {index} has {len(data)} of {count} bytes")
        return data

    def decode_tile(self, index: int) -> np.ndarray:
        try:
            tile = imagecodecs.jpeg8_decode(
                self.raw_tile(index), tables=self.tables, colorspace=self.colorspace
            )
        except (imagecodecs.Jpeg8Error, ValueError, OSError) as exc:
            raise JpegDecodeError(f"{self.path}: tile {index}: {exc}") from exc
        if tile.shape != (self.tile_h, self.tile_w, 3) or tile.dtype != np.uint8:
            raise JpegDecodeError(f"{self.path}: tile {index} decoded to {tile.shape} {tile.dtype}")
        self.decoded += 1
        return tile

    def _get(self, index: int) -> np.ndarray:
        uses = self._uses.get(index)
        while uses and uses[0] <= self._step:
            uses.popleft()
        tile = self._cache.get(index)
        if tile is None:
            tile = self.decode_tile(index)
            if self.scale > 1:
                k = self.scale
                size = (self.tile_w // k, self.tile_h // k)
                tile = cv2.resize(tile, size, interpolation=cv2.INTER_AREA)
        if uses:
            self._cache[index] = tile
            self._evict()
        else:
            self._cache.pop(index, None)  # no planned use left
        return tile

    def _evict(self) -> None:
        tile_bytes = self.tile_w * self.tile_h * 3 // self.scale**2
        excess = len(self._cache) - max(1, self.cache_bytes // tile_bytes)
        if excess <= 0:
            return

        def next_use(i: int) -> int:
            uses = self._uses.get(i)
            return uses[0] if uses else -1

        for index in heapq.nlargest(excess, self._cache, key=next_use):
            del self._cache[index]

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels [y, y+h) x [x, x+w) of this level as (h/k, w/k, 3) uint8 (k = ``scale``).

        The region must lie inside the level and, for k > 1, x, y, w, h must be multiples of k.
        """
        if x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            raise ValueError(f"region {x},{y} {w}x{h} outside level {self.width}x{self.height}")
        k = self.scale
        if k > 1 and any(v % k for v in (x, y, w, h)):
            raise ValueError(f"region {x},{y} {w}x{h} is not aligned to the {k}x downsample")
        out = np.empty((h // k, w // k, 3), dtype=np.uint8)
        for index in self.tiles_for(x, y, w, h):
            ty, tx = divmod(index, self.tiles_across)
            left, top = tx * self.tile_w, ty * self.tile_h
            ax0, ay0 = max(x, left), max(y, top)
            ax1, ay1 = min(x + w, left + self.tile_w), min(y + h, top + self.tile_h)
            tile = self._get(index)
            out[(ay0 - y) // k : (ay1 - y) // k, (ax0 - x) // k : (ax1 - x) // k] = tile[
                (ay0 - top) // k : (ay1 - top) // k, (ax0 - left) // k : (ax1 - left) // k
            ]
        self._step += 1
        return out


def open_jpeg_level(
    path: str | os.PathLike[str],
    vendor: str,
    level_size: tuple[int, int],
    *,
    cache_bytes: int = 96 << 20,
    scale: int = 1,
) -> JpegTiffLevel | None:
    """A direct reader for the pyramid level of this size, or None when OpenSlide must be used.

    A ``scale`` that does not divide the level's JPEG tile size also gives None.
    """
    if vendor not in _SUPPORTED_VENDORS:
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                if not isinstance(page, tifffile.TiffPage) or not page.is_tiled:
                    continue
                if (int(page.imagewidth), int(page.imagelength)) != tuple(level_size):
                    continue
                if (
                    int(page.compression) != _JPEG
                    or int(page.photometric) not in (2, 6)
                    or page.samplesperpixel != 3
                    or page.bitspersample != 8
                    or int(page.planarconfig) != 1
                    or page.imagedepth != 1
                ):
                    return None
                if int(page.tilewidth) % scale or int(page.tilelength) % scale:
                    return None
                return JpegTiffLevel(Path(path), page, cache_bytes, scale)
    except (tifffile.TiffFileError, OSError, ValueError):
        return None
    return None
