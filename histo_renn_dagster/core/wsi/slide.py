"""Opening a slide with OpenSlide and describing its pyramid; failures become SlideOpenError."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openslide
import tifffile

from histo_renn_dagster.core.errors import SlideOpenError


@dataclass(frozen=True)
class SlideInfo:
    """What the tiler needs to know about a slide, independent of the open handle."""

    path: Path
    vendor: str
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    objective_power: float | None
    properties: dict[str, str] = field(repr=False, compare=False)

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]


def _broken_ifd_offset(path: Path, size: int) -> int | None:
    """The first TIFF directory offset that points past the end of the file, if any."""
    with path.open("rb") as handle:
        head = handle.read(16)
        order = {b"II": "little", b"MM": "big"}.get(head[:2])
        if order is None or len(head) < 16:
            return None
        magic = int.from_bytes(head[2:4], order)  # type: ignore[arg-type]
        if magic not in (42, 43):  # not classic TIFF / BigTIFF
            return None
        big = magic == 43
        count_size, entry_size, offset_size = (8, 20, 8) if big else (2, 12, 4)
        offset = int.from_bytes(head[8:16] if big else head[4:8], order)  # type: ignore[arg-type]
        for _ in range(100_000):  # directory chains of real slides are short; guard against loops
            if offset == 0:
                return None
            if offset + count_size > size:
                return offset
            handle.seek(offset)
            entries = int.from_bytes(handle.read(count_size), order)  # type: ignore[arg-type]
            next_at = offset + count_size + entries * entry_size
            if next_at + offset_size > size:
                return offset
            handle.seek(next_at)
            offset = int.from_bytes(handle.read(offset_size), order)  # type: ignore[arg-type]
    return None


def _check_tiff_extent(path: Path) -> None:
    """A truncated TIFF often still opens (its directories come first); check the tile data fits."""
    size = path.stat().st_size
    broken = _broken_ifd_offset(path, size)
    if broken is not None:
        raise SlideOpenError(
            f"{path}: truncated file: a TIFF directory is at byte {broken} but the file has "
            f"{size} bytes",
            path=str(path),
        )
    try:
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                offsets = np.asarray(page.dataoffsets, dtype=np.int64)  # type: ignore[union-attr]
                counts = np.asarray(page.databytecounts, dtype=np.int64)  # type: ignore[union-attr]
                if offsets.size and int((offsets + counts).max()) > size:
                    raise SlideOpenError(
                        f"{path}: truncated file: image data extends to byte "
                        f"{int((offsets + counts).max())} but the file has {size} bytes",
                        path=str(path),
                    )
    except tifffile.TiffFileError:
        return  # not a TIFF container: OpenSlide decides whether it is a slide


def open_slide(path: str | os.PathLike[str]) -> openslide.OpenSlide:
    """An OpenSlide handle, or SlideOpenError naming the path and the reason."""
    slide_path = Path(path)
    if not slide_path.is_file():
        raise SlideOpenError(f"{slide_path}: no such slide file", path=str(slide_path))
    _check_tiff_extent(slide_path)
    try:
        slide = openslide.OpenSlide(str(slide_path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise SlideOpenError(
            f"{slide_path}: not a whole-slide image format OpenSlide can read", path=str(slide_path)
        ) from exc
    except (openslide.OpenSlideError, OSError) as exc:
        raise SlideOpenError(
            f"{slide_path}: cannot open slide: {exc}", path=str(slide_path)
        ) from exc
    return slide


def describe_slide(slide: openslide.OpenSlide, path: str | os.PathLike[str]) -> SlideInfo:
    props = dict(slide.properties)
    power: float | None
    try:
        power = float(props["openslide.objective-power"])
    except (KeyError, ValueError):
        power = None
    return SlideInfo(
        path=Path(path),
        vendor=props.get("openslide.vendor", "unknown"),
        level_dimensions=tuple((int(w), int(h)) for w, h in slide.level_dimensions),
        level_downsamples=tuple(float(d) for d in slide.level_downsamples),
        objective_power=power,
        properties=props,
    )


def rgba_to_rgb_white(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA onto white: transparent padding (outside the scanned area) reads as glass."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if bool((alpha == 255).all()):
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)[..., None]
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def read_rgb(
    slide: openslide.OpenSlide, x0: int, y0: int, level: int, w: int, h: int
) -> np.ndarray:
    """OpenSlide read_region as an (h, w, 3) uint8 RGB array on white."""
    region = slide.read_region((int(x0), int(y0)), int(level), (int(w), int(h)))
    return rgba_to_rgb_white(np.asarray(region))
