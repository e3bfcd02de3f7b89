"""Tissue mask on a coarse pyramid level (HSV saturation + guarded Otsu) and per-tile fractions.

The mask is built at ``mask_mpp`` (~4-8 um/px) by streaming horizontal stripes of the closest
finer pyramid level and block-averaging them, so no read is ever larger than ``max_read_px``
pixels whatever the slide size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import openslide

from histo_renn_dagster.core.wsi.jpeg_tiff import JpegDecodeError, JpegTiffLevel
from histo_renn_dagster.core.wsi.slide import read_rgb

log = logging.getLogger(__name__)

Reopen = Callable[[], openslide.OpenSlide]
OpenLevel = Callable[[int], "JpegTiffLevel | None"]


@dataclass(frozen=True)
class MaskSpec:
    mask_mpp: float = (
        8.0  # coarsest allowed mask resolution; the level used is in (mask_mpp/2, mask_mpp]
    )
    median_ksize: int = 5
    close_ksize: int = 5
    min_threshold: float = 10.0  # an Otsu cut on saturation below this is noise between glass tones
    fallback_threshold: float = 20.0
    max_read_px: int = 8_000_000  # per OpenSlide read; keeps peak memory independent of slide size


@dataclass(frozen=True)
class TissueMask:
    """Boolean tissue mask; mask pixel (i, j) covers level-0 [j*scale_x, (j+1)*scale_x) etc."""

    mask: np.ndarray
    rgb: np.ndarray  # the image the mask came from (for the thumbnail PNG)
    level: int
    factor: int  # extra block-average factor applied on top of ``level``
    scale_x: float
    scale_y: float
    threshold: float
    method: str  # "otsu" or "fixed_fallback"
    unreadable_rows: int = 0

    @property
    def mpp_factor(self) -> float:
        return (self.scale_x + self.scale_y) / 2


def _mask_source(
    level_downsamples: tuple[float, ...], mpp0: float, mask_mpp: float
) -> tuple[int, int]:
    """(level, block factor): the coarsest level at <= mask_mpp, then integer averaging up to it."""
    level = 0
    for i, ds in enumerate(level_downsamples):
        if mpp0 * ds <= mask_mpp * (1 + 1e-6):
            level = i if ds >= level_downsamples[level] else level
    level_mpp = mpp0 * level_downsamples[level]
    factor = max(1, math.floor(mask_mpp / level_mpp + 1e-6))
    return level, factor


def _stripe(
    slide: openslide.OpenSlide, level: int, factor: int, r0: int, r1: int
) -> tuple[int, int]:
    """(first level row, level rows) behind output rows [r0, r1)."""
    lh = slide.level_dimensions[level][1]
    y_level = r0 * factor
    return y_level, min(lh - y_level, (r1 - r0) * factor)


def _read_rows(
    slide: openslide.OpenSlide,
    level: int,
    factor: int,
    r0: int,
    r1: int,
    out_w: int,
    direct: JpegTiffLevel | None = None,
) -> np.ndarray:
    """Output rows [r0, r1) of the level image block-averaged by ``factor``."""
    y_level, h_level = _stripe(slide, level, factor, r0, r1)
    rgb = None
    if direct is not None:
        try:
            rgb = direct.read(0, y_level, out_w * factor, h_level)
        except JpegDecodeError as exc:
            log.warning("direct mask read failed, retrying with OpenSlide: %s", exc)
    if rgb is None:
        y0 = round(y_level * slide.level_downsamples[level])
        rgb = read_rgb(slide, 0, y0, level, out_w * factor, h_level)
    if factor > 1:
        rgb = cv2.resize(rgb, (out_w, r1 - r0), interpolation=cv2.INTER_AREA)
    return rgb[: r1 - r0]


def _read_downsampled(
    slide: openslide.OpenSlide,
    level: int,
    factor: int,
    spec: MaskSpec,
    reopen: Reopen | None,
    direct: JpegTiffLevel | None = None,
) -> tuple[np.ndarray, int]:
    """The block-averaged level image read in stripes; unreadable rows stay white (counted)."""
    lw, lh = slide.level_dimensions[level]
    out_w, out_h = max(1, lw // factor), max(1, lh // factor)
    rows_per_stripe = max(1, spec.max_read_px // max(1, lw * factor))
    out = np.full((out_h, out_w, 3), 255, dtype=np.uint8)
    bad = 0
    starts = range(0, out_h, rows_per_stripe)
    if direct is not None:  # JPEG tiles shared by two stripes are then decoded once
        regions = []
        for r0 in starts:
            y_level, h_level = _stripe(slide, level, factor, r0, min(out_h, r0 + rows_per_stripe))
            regions.append((0, y_level, out_w * factor, h_level))
        direct.plan(regions)
    for r0 in starts:
        r1 = min(out_h, r0 + rows_per_stripe)
        try:
            out[r0:r1] = _read_rows(slide, level, factor, r0, r1, out_w, direct)
            continue
        except openslide.OpenSlideError as exc:
            if reopen is None:
                raise
            log.warning("mask stripe rows %d-%d of level %d unreadable: %s", r0, r1, level, exc)
        # OpenSlide errors are sticky on a handle: reopen, then retry row by row so one corrupt
        # tile costs a few mask rows, not the mask.
        slide = reopen()
        for row in range(r0, r1):
            try:
                out[row] = _read_rows(slide, level, factor, row, row + 1, out_w)[0]
            except openslide.OpenSlideError:
                bad += 1
                slide = reopen()
    return out, bad


def saturation_mask(rgb: np.ndarray, spec: MaskSpec) -> tuple[np.ndarray, float, str]:
    """(mask, threshold, method) from HSV saturation with an Otsu cut guarded against degeneracy."""
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    if spec.median_ksize > 1 and min(sat.shape) >= spec.median_ksize:
        sat = cv2.medianBlur(sat, spec.median_ksize)
    threshold = spec.fallback_threshold
    method = "fixed_fallback"
    if int(sat.max()) - int(sat.min()) >= 2:  # Otsu of a (near-)uniform image is meaningless
        otsu, _ = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        if otsu >= spec.min_threshold:
            threshold, method = float(otsu), "otsu"
    mask = sat > threshold
    if spec.close_ksize > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (spec.close_ksize, spec.close_ksize))
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    return mask, threshold, method


def compute_tissue_mask(
    slide: openslide.OpenSlide,
    mpp0: float,
    spec: MaskSpec | None = None,
    *,
    reopen: Reopen | None = None,
    open_level: OpenLevel | None = None,
) -> TissueMask:
    """Tissue mask of the whole slide; ``reopen()`` gives a fresh handle after a read error.

    ``open_level(level)`` may return a direct JPEG decoder for the mask level (pixel-identical to
    OpenSlide, without its RGBA round trip); it is only used when the level's downsample is an
    exact integer, where level rows map onto level-0 rows exactly.
    """
    spec = spec or MaskSpec()
    downsamples = tuple(float(d) for d in slide.level_downsamples)
    level, factor = _mask_source(downsamples, mpp0, spec.mask_mpp)
    exact = downsamples[level] == float(round(downsamples[level]))
    direct = open_level(level) if open_level is not None and exact else None
    try:
        rgb, bad = _read_downsampled(slide, level, factor, spec, reopen, direct)
    finally:
        if direct is not None:
            direct.close()
    mask, threshold, method = saturation_mask(rgb, spec)
    w0, h0 = slide.level_dimensions[0]
    lw, lh = slide.level_dimensions[level]
    return TissueMask(
        mask=mask,
        rgb=rgb,
        level=level,
        factor=factor,
        scale_x=factor * w0 / lw,
        scale_y=factor * h0 / lh,
        threshold=threshold,
        method=method,
        unreadable_rows=bad,
    )


def tissue_fractions(mask: TissueMask, coords: np.ndarray, level0_tile_px: int) -> np.ndarray:
    """Exact area fraction of tissue under each tile (bilinear lookup in the integral image)."""
    if len(coords) == 0:
        return np.zeros(0, dtype=np.float32)
    integral = cv2.integral(mask.mask.astype(np.uint8)).astype(np.float64)  # (H+1, W+1)

    def area_sum(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        # The summed-area function of a piecewise-constant mask is bilinear inside each cell.
        h, w = integral.shape
        xs = np.clip(xs, 0, w - 1)
        ys = np.clip(ys, 0, h - 1)
        x0 = np.minimum(np.floor(xs).astype(np.int64), w - 2)
        y0 = np.minimum(np.floor(ys).astype(np.int64), h - 2)
        fx, fy = xs - x0, ys - y0
        return (
            integral[y0, x0] * (1 - fx) * (1 - fy)
            + integral[y0, x0 + 1] * fx * (1 - fy)
            + integral[y0 + 1, x0] * (1 - fx) * fy
            + integral[y0 + 1, x0 + 1] * fx * fy
        )

    x_a = coords[:, 0] / mask.scale_x
    y_a = coords[:, 1] / mask.scale_y
    x_b = (coords[:, 0] + level0_tile_px) / mask.scale_x
    y_b = (coords[:, 1] + level0_tile_px) / mask.scale_y
    total = area_sum(x_b, y_b) - area_sum(x_a, y_b) - area_sum(x_b, y_a) + area_sum(x_a, y_a)
    area = (x_b - x_a) * (y_b - y_a)
    return np.clip(total / area, 0.0, 1.0).astype(np.float32)
