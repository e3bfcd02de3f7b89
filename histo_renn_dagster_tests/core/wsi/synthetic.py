"""Synthetic pyramidal slides with known geometry, written with tifffile (test and benchmark aid).

``write_pyramid`` writes level 0 and integer-downsampled levels as tiled TIFF pages; with an Aperio
ImageDescription OpenSlide reads it as vendor ``aperio`` (AppMag and MPP optional), without one as
``generic-tiff``. Tiles are JPEG (YCbCr 4:2:0, as scanners write) or uncompressed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import tifffile

BACKGROUND = 238  # slightly grey glass, as scanners record it


def he_texture(h: int, w: int, seed: int) -> np.ndarray:
    """H&E-like pink stroma with purple nuclei-sized blobs; saturated enough to be tissue."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, (h // 4 + 2, w // 4 + 2)).astype(np.float32)
    noise = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 1.5), (w, h), interpolation=cv2.INTER_LINEAR)
    pink = np.array([225, 140, 185], np.float32)
    purple = np.array([110, 60, 150], np.float32)
    t = np.clip(0.5 + 0.35 * noise, 0, 1)[..., None]
    img = pink * (1 - t) + purple * t
    # Nucleus-scale grain (2 px) survives the QC's 2x downsample, so tiles read as in focus.
    grain = rng.normal(0, 14, (h // 2 + 1, w // 2 + 1, 1)).astype(np.float32)
    img += np.repeat(np.repeat(grain, 2, axis=0), 2, axis=1)[:h, :w]
    return np.clip(img, 0, 255).astype(np.uint8)


def tissue_image(
    height: int, width: int, rects: Iterable[tuple[int, int, int, int]], *, seed: int = 0
) -> np.ndarray:
    """White slide with H&E texture inside each (x, y, w, h) rectangle (level-0 pixels)."""
    rng = np.random.default_rng(seed + 1)
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    img -= rng.integers(0, 3, img.shape, dtype=np.uint8)  # glass is never perfectly flat
    for k, (x, y, w, h) in enumerate(rects):
        img[y : y + h, x : x + w] = he_texture(h, w, seed + 10 + k)
    return img


def aperio_description(width: int, height: int, mpp: float | None, app_mag: float | None) -> str:
    fields = [f"Aperio Image Library vSynthetic\r\n{width}x{height} (256x256) JPEG/RGB Q=90"]
    if app_mag is not None:
        fields.append(f"AppMag = {app_mag:g}")
    if mpp is not None:
        fields.append(f"MPP = {mpp:g}")
    return "|".join(fields)


def write_pyramid(
    path: str | Path,
    level0: np.ndarray,
    *,
    downsamples: tuple[int, ...] = (1, 4, 16),
    mpp: float | None = 0.5,
    app_mag: float | None = 20,
    aperio: bool = True,
    jpeg: bool = True,
    quality: int = 90,
    tile: int = 256,
) -> Path:
    """Write ``level0`` and its area-downsampled levels as a tiled pyramid; returns the path."""
    path = Path(path)
    h, w = level0.shape[:2]
    compression = {"compression": "jpeg", "compressionargs": {"level": quality}} if jpeg else {}
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        for i, ds in enumerate(downsamples):
            img = (
                level0
                if ds == 1
                else cv2.resize(level0, (w // ds, h // ds), interpolation=cv2.INTER_AREA)
            )
            if aperio:
                desc = aperio_description(w, h, mpp, app_mag) if i == 0 else f"Aperio level {ds}"
            else:
                desc = None
            tw.write(
                img,
                tile=(tile, tile),
                photometric="rgb",
                description=desc,
                metadata=None,
                **compression,
            )
    return path
