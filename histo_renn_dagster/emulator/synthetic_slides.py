"""Synthetic Aperio SVS slides for the offline demo cohort, byte-identical for the same spec.

The file mirrors a real Aperio SVS as OpenSlide sees it (see the CMU-1 test slide): page 0 is the
full-resolution level, tiled JPEG; page 1 the thumbnail, one JPEG strip; then the reduced levels
(downsamples exactly 4 and 16), tiled; then a ``label`` page (LZW) and a ``macro`` page (JPEG,
NewSubfileType 9). Every page carries an Aperio ImageDescription, ``Aperio ...\\r\\n<geometry>|key =
value|...``, from which OpenSlide reports vendor ``aperio``, ``aperio.AppMag`` and ``aperio.MPP``.

Differences from a scanner's file, on purpose: tiles are JPEG YCbCr 4:2:0 with Photometric YCbCr
(tifffile's standard JPEG layout, which OpenSlide and tifffile decode identically) rather than
Aperio's RGB-in-JPEG; there is no Date/Time/ScanScope ID, so the bytes depend on the spec only.
Bytes are stable for the same spec and the same numpy/OpenCV/libjpeg builds; the emulator derives
md5 and size from the generated file, never from a constant.

Level 0 is painted one tile row (a band of ``tile_size`` rows) at a time; the 4x level is
accumulated from the bands by area averaging, so memory is one band plus 1/16 of the slide.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import tifffile

from histo_renn_dagster.core.atomic import atomic_path
from histo_renn_dagster.core.errors import SlideSpecError
from histo_renn_dagster.emulator.tissue_texture import CELL, REFERENCE_STAIN, Stain, TissuePainter

__all__ = [
    "DOWNSAMPLES",
    "REFERENCE_STAIN",
    "SIZE_MULTIPLE",
    "SlideSpec",
    "Stain",
    "nuclear_density_for",
    "snap_to_pyramid",
    "stain_for_site",
    "write_svs",
]

# Reduced levels: exactly these downsamples, so level dimensions are level-0 / d without rounding.
DOWNSAMPLES = (1, 4, 16)
SIZE_MULTIPLE = max(DOWNSAMPLES)
assert SIZE_MULTIPLE % CELL == 0
# Aperio's own description prefix: OpenSlide recognises the vendor by the leading "Aperio".
DESCRIPTION_HEADER = "Aperio Image Library (histo-renn-dagster synthetic)"
THUMBNAIL_MAX_SIDE = 768
LABEL_SIZE = (463, 387)  # (height, width), as on the CMU-1 scan
MACRO_SIZE = (431, 1280)
# nuclear_density_for: density = LOW + (HIGH - LOW) * logistic(SLOPE * z).
DENSITY_LOW, DENSITY_HIGH, DENSITY_SLOPE = 0.05, 0.95, 1.0


def snap_to_pyramid(px: int) -> int:
    """The nearest valid slide side (a positive multiple of 16) to ``px``."""
    return max(SIZE_MULTIPLE, round(px / SIZE_MULTIPLE) * SIZE_MULTIPLE)


@dataclass(frozen=True)
class SlideSpec:
    """Everything that determines one synthetic slide's bytes.

    ``mpp`` None means the real scan carried no microns-per-pixel: the file then has no ``MPP`` key
    and OpenSlide reports no ``openslide.mpp-x``; pixels are still drawn at a physical scale taken
    from ``app_mag`` (10 um / magnification per px, i.e. 0.25 at 40x) or 0.25 um/px.
    ``width``/``height`` are level-0 px and must be multiples of 16 (see ``snap_to_pyramid``).
    """

    seed: int
    width: int
    height: int
    mpp: float | None = 0.25
    app_mag: float | None = 40.0
    tile_size: int = 240
    jpeg_quality: int = 80
    stain: Stain = field(default=REFERENCE_STAIN)
    nuclear_density: float = 0.5
    tissue_fraction: float = 0.5
    label: str | None = None

    def __post_init__(self) -> None:
        name = f"slide spec (seed {self.seed!r}, label {self.label!r})"
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise SlideSpecError(f"{name}: seed must be a non-negative int, got {self.seed!r}")
        for side in ("width", "height"):
            value = getattr(self, side)
            if not isinstance(value, int) or value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
                raise SlideSpecError(
                    f"{name}: {side} must be a positive multiple of {SIZE_MULTIPLE} px so that "
                    f"downsamples {DOWNSAMPLES} are exact, got {value!r} "
                    f"(nearest valid: {snap_to_pyramid(int(value))})"
                )
        for key in ("mpp", "app_mag"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise SlideSpecError(f"{name}: {key} must be None or > 0, got {value!r}")
        if self.tile_size < 16 or self.tile_size % 16:
            raise SlideSpecError(
                f"{name}: tile_size must be a multiple of 16 (JPEG 4:2:0 blocks), "
                f"got {self.tile_size!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise SlideSpecError(f"{name}: jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if not (math.isfinite(self.nuclear_density) and 0.0 <= self.nuclear_density <= 1.0):
            raise SlideSpecError(
                f"{name}: nuclear_density must be in [0, 1], got {self.nuclear_density!r}"
            )
        if not (math.isfinite(self.tissue_fraction) and 0.05 <= self.tissue_fraction <= 0.9):
            raise SlideSpecError(
                f"{name}: tissue_fraction must be in [0.05, 0.9], got {self.tissue_fraction!r}"
            )
        if self.label is not None and (
            not self.label.isascii() or any(c in self.label for c in "|\r\n")
        ):
            raise SlideSpecError(f"{name}: label must be ASCII without '|' or line breaks")

    @property
    def um_per_px(self) -> float:
        """Physical pixel size used to draw cells and fibres (see class docstring)."""
        if self.mpp is not None:
            return self.mpp
        return 10.0 / self.app_mag if self.app_mag is not None else 0.25


def stain_for_site(site_code: str) -> Stain:
    """A site's H&E stain: the reference stain with a per-site hue and strength shift.

    Derived from SHA-256 of the code (never Python's salted ``hash``), so it is the same in every
    process. Each dye's per-channel absorbance is scaled by 0.75..1.33 (hue) and its strength by
    0.74..1.35 (darker/paler batches): clearly different sites that still look pink/purple.
    """
    if not isinstance(site_code, str) or not site_code.strip():
        raise SlideSpecError(f"site code must be a non-empty string, got {site_code!r}")
    digest = hashlib.sha256(f"histo-renn-stain:{site_code.strip()}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def shift(vec: tuple[float, float, float]) -> tuple[float, float, float]:
        hue = np.exp(np.clip(rng.normal(0.0, 0.1, 3), -0.2, 0.2))
        strength = np.exp(rng.uniform(-0.3, 0.3))
        out = np.asarray(vec) * hue * strength
        return (float(round(out[0], 4)), float(round(out[1], 4)), float(round(out[2], 4)))

    return Stain(hematoxylin=shift(REFERENCE_STAIN.hematoxylin), eosin=shift(REFERENCE_STAIN.eosin))


def nuclear_density_for(z: float) -> float:
    """Nuclear density for a standardised expression value ``z`` (e.g. z-scored log MKI67 TPM).

    ``0.05 + 0.9 * logistic(z)``: strictly increasing, 0.5 at the cohort mean, 0.14 / 0.86 at
    -2 / +2 SD, never reaching 0 or 1, so proliferative tumours look more cellular.
    """
    z = float(z)
    if not math.isfinite(z):
        raise SlideSpecError(f"standardised expression must be finite, got {z!r}")
    return DENSITY_LOW + (DENSITY_HIGH - DENSITY_LOW) / (1.0 + math.exp(-DENSITY_SLOPE * z))


def _fmt(value: float) -> str:
    # Shortest round-trip text: OpenSlide parses it back to exactly the spec's float.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _description(spec: SlideSpec, geometry: str) -> str:
    keys = []
    if spec.app_mag is not None:
        keys.append(f"AppMag = {_fmt(spec.app_mag)}")
    if spec.mpp is not None:
        keys.append(f"MPP = {_fmt(spec.mpp)}")
    if spec.label is not None:
        keys.append(f"Filename = {spec.label}")
    keys.append(f"Synthetic Seed = {spec.seed}")
    return "|".join([f"{DESCRIPTION_HEADER}\r\n{geometry}", *keys])


def _tiles(image: np.ndarray, ts: int) -> Iterator[np.ndarray]:
    """Row-major tiles; partial edge tiles padded by edge replication (no JPEG ringing at edges)."""
    for y in range(0, image.shape[0], ts):
        for x in range(0, image.shape[1], ts):
            tile = image[y : y + ts, x : x + ts]
            if tile.shape[:2] != (ts, ts):
                pad = ((0, ts - tile.shape[0]), (0, ts - tile.shape[1]), (0, 0))
                tile = np.pad(tile, pad, mode="edge")
            yield tile


def _label_image(spec: SlideSpec) -> np.ndarray:
    img = np.full((*LABEL_SIZE, 3), 250, np.uint8)
    lines = [*(spec.label or "SYNTHETIC").split("-"), f"seed {spec.seed}"]
    for i, line in enumerate(lines[:8]):
        cv2.putText(img, line, (20, 60 + 48 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 2)
    return img


def _macro_image(label: np.ndarray, overview: np.ndarray) -> np.ndarray:
    """The whole glass slide: label on the left, the tissue overview fitted into the rest."""
    mh, mw = MACRO_SIZE
    img = np.full((mh, mw, 3), 228, np.uint8)
    lw = round(label.shape[1] * mh / label.shape[0])
    img[:, :lw] = cv2.resize(label, (lw, mh), interpolation=cv2.INTER_AREA)
    room_h, room_w = mh - 20, mw - lw - 20
    k = min(room_h / overview.shape[0], room_w / overview.shape[1])
    oh, ow = max(1, int(overview.shape[0] * k)), max(1, int(overview.shape[1] * k))
    y, x = (mh - oh) // 2, lw + 10 + (room_w - ow) // 2
    img[y : y + oh, x : x + ow] = cv2.resize(overview, (ow, oh), interpolation=cv2.INTER_AREA)
    return img


def _write_pages(tmp: Path, spec: SlideSpec) -> None:
    w, h, ts = spec.width, spec.height, spec.tile_size
    painter = TissuePainter(
        seed=spec.seed,
        width=w,
        height=h,
        um_per_px=spec.um_per_px,
        stain=spec.stain,
        nuclear_density=spec.nuclear_density,
        tissue_fraction=spec.tissue_fraction,
    )
    level1 = np.empty((h // 4, w // 4, 3), np.uint8)

    def level0_tiles() -> Iterator[np.ndarray]:
        for y0 in range(0, h, ts):
            y1 = min(h, y0 + ts)
            band = painter.paint_band(y0, y1)
            # INTER_AREA with an integer factor is the exact 4x4 box mean.
            level1[y0 // 4 : y1 // 4] = cv2.resize(
                band, (w // 4, (y1 - y0) // 4), interpolation=cv2.INTER_AREA
            )
            yield from _tiles(band, ts)

    jpeg = {
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": spec.jpeg_quality},
        "subsampling": (2, 2),
        "metadata": None,
        "software": False,
        "maxworkers": 1,
    }
    # BigTIFF only when 32-bit offsets could overflow (never for the demo sizes).
    bigtiff = w * h * 3 > 2**31
    with tifffile.TiffWriter(tmp, bigtiff=bigtiff, byteorder="<") as tif:
        geometry0 = f"{w}x{h} [0,0 {w}x{h}] ({ts}x{ts}) JPEG/RGB Q={spec.jpeg_quality}"
        tif.write(
            level0_tiles(),
            shape=(h, w, 3),
            dtype=np.uint8,
            tile=(ts, ts),
            description=_description(spec, geometry0),
            **jpeg,
        )
        level2 = cv2.resize(level1, (w // 16, h // 16), interpolation=cv2.INTER_AREA)
        k = min(1.0, THUMBNAIL_MAX_SIDE / max(level1.shape[:2]))
        tw, th = max(1, round(level1.shape[1] * k)), max(1, round(level1.shape[0] * k))
        thumb = cv2.resize(level1, (tw, th), interpolation=cv2.INTER_AREA)
        tif.write(
            thumb,
            rowsperstrip=16,
            description=_description(spec, f"{w}x{h} -> {tw}x{th} - "),
            **jpeg,
        )
        for img in (level1, level2):
            lh, lw = img.shape[:2]
            tif.write(
                _tiles(img, ts),
                shape=img.shape,
                dtype=np.uint8,
                tile=(ts, ts),
                subfiletype=0,
                description=_description(spec, f"{w}x{h} -> {lw}x{lh} - "),
                **jpeg,
            )
        label = _label_image(spec)
        tif.write(
            label,
            photometric="rgb",
            compression="lzw",
            predictor=True,
            rowsperstrip=16,
            subfiletype=1,
            description=f"{DESCRIPTION_HEADER}\nlabel {label.shape[1]}x{label.shape[0]}",
            metadata=None,
            software=False,
        )
        macro = _macro_image(label, level2)
        tif.write(
            macro,
            rowsperstrip=16,
            subfiletype=9,
            description=f"{DESCRIPTION_HEADER}\nmacro {macro.shape[1]}x{macro.shape[0]}",
            **jpeg,
        )


def write_svs(path: Path, spec: SlideSpec) -> None:
    """Write the slide for ``spec`` to ``path`` atomically (temp file in the same folder + rename).

    The parent folder must exist. On any failure nothing is left at ``path`` or beside it.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write slide {path}: folder {path.parent} does not exist")
    with atomic_path(path) as tmp:
        _write_pages(tmp, spec)
