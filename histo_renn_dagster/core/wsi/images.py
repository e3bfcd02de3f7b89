"""Thumbnail and tissue-mask overlay PNGs (written atomically) and small inline previews."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import cv2
import numpy as np

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.wsi.mask import TissueMask

THUMBNAIL_NAME = "thumbnail.png"
OVERLAY_NAME = "mask_overlay.png"
_KEPT = (0, 0, 255)  # blue outline: a stored tile
_FLAGGED = (255, 0, 0)  # red outline: a stored (or dropped) tile that QC flagged


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    return atomic_write_bytes(path, data.tobytes())


def _outline(
    rgb: np.ndarray, mask: TissueMask, coords: np.ndarray, size: int, colour: tuple[int, ...]
) -> None:
    for x, y in np.asarray(coords).reshape(-1, 2):
        p0 = (int(x / mask.scale_x), int(y / mask.scale_y))
        p1 = (int((x + size) / mask.scale_x) - 1, int((y + size) / mask.scale_y) - 1)
        cv2.rectangle(rgb, p0, p1, colour, 1)


def overlay_image(
    mask: TissueMask,
    coords: np.ndarray | None = None,
    level0_tile_px: int | None = None,
    *,
    flagged: np.ndarray | None = None,
) -> np.ndarray:
    """The mask image with tissue tinted green, stored tiles outlined blue, QC-flagged ones red."""
    rgb = mask.rgb.copy()
    tinted = cv2.addWeighted(rgb, 0.6, np.full_like(rgb, (0, 200, 0)), 0.4, 0.0)
    np.copyto(rgb, tinted, where=mask.mask[..., None])
    if level0_tile_px:
        if coords is not None:
            _outline(rgb, mask, coords, level0_tile_px, _KEPT)
        if flagged is not None:
            _outline(rgb, mask, flagged, level0_tile_px, _FLAGGED)
    return rgb


def write_slide_pngs(
    mask: TissueMask,
    thumbnail_path: str | os.PathLike[str],
    overlay_path: str | os.PathLike[str],
    *,
    coords: np.ndarray | None = None,
    level0_tile_px: int | None = None,
    flagged: np.ndarray | None = None,
) -> tuple[Path, Path]:
    """Write the thumbnail (the mask-resolution image) and the overlay; returns both paths."""
    thumb = _write_png(Path(thumbnail_path), mask.rgb)
    try:
        overlay = _write_png(
            Path(overlay_path), overlay_image(mask, coords, level0_tile_px, flagged=flagged)
        )
    except BaseException:
        thumb.unlink(missing_ok=True)  # both or neither
        raise
    return thumb, overlay


def image_data_uri(path: str | os.PathLike[str], *, max_side: int = 384, quality: int = 85) -> str:
    """A small JPEG ``data:`` URI of an image file, for markdown previews (event logs stay small)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"{path}: not a readable image")
    h, w = bgr.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")
