"""The direct JPEG decoder must be pixel-identical to OpenSlide, and fall back when it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import openslide
import tifffile

from histo_renn_dagster.core.wsi.grid import plan_geometry
from histo_renn_dagster.core.wsi.jpeg_tiff import open_jpeg_level
from histo_renn_dagster.core.wsi.reader import TileReader
from histo_renn_dagster.core.wsi.slide import open_slide, read_rgb
from histo_renn_dagster_tests.core.wsi.synthetic import tissue_image, write_pyramid


def _regions(width: int, height: int, size: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    grid = [
        (x, y) for y in range(0, height - size + 1, size) for x in range(0, width - size + 1, size)
    ]
    odd = [
        (int(rng.integers(0, width - size)), int(rng.integers(0, height - size))) for _ in range(6)
    ]
    return grid + odd


def _assert_identical(path: Path, level: int, size: int) -> int:
    slide = openslide.OpenSlide(str(path))
    ds = int(slide.level_downsamples[level])
    reader = open_jpeg_level(
        path, slide.properties["openslide.vendor"], slide.level_dimensions[level]
    )
    assert reader is not None
    regions = _regions(*slide.level_dimensions[level], size, seed=level)
    reader.plan((x, y, size, size) for x, y in regions)
    for x, y in regions:
        direct = reader.read(x, y, size, size)
        reference = read_rgb(slide, x * ds, y * ds, level, size, size)
        np.testing.assert_array_equal(
            direct, reference, err_msg=f"{path.name} level {level} at {x},{y}"
        )
    decoded = reader.decoded
    reader.close()
    slide.close()
    return decoded


def test_direct_decoder_identical_on_real_cmu_slide(cmu_slide: Path) -> None:
    decoded = _assert_identical(cmu_slide, 0, 598)
    # 12 grid tiles + 6 random regions touch 130 JPEG tiles at most; the cache shares the rest.
    assert 0 < decoded <= 130


def test_direct_decoder_identical_on_synthetic_ycbcr_jpeg(tmp_path: Path) -> None:
    img = tissue_image(1300, 1700, [(100, 50, 900, 700)], seed=5)
    path = write_pyramid(tmp_path / "ycc.svs", img, downsamples=(1, 2), mpp=0.25, app_mag=40)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.YCBCR  # chroma-subsampled JPEG
    _assert_identical(path, 0, 598)
    _assert_identical(path, 1, 300)


def test_openslide_is_used_for_uncompressed_and_ndpi(tmp_path: Path, shared_data: Path) -> None:
    img = tissue_image(700, 700, [(0, 0, 300, 300)])
    raw = write_pyramid(tmp_path / "raw.svs", img, downsamples=(1,), jpeg=False)
    assert open_jpeg_level(raw, "aperio", (700, 700)) is None
    ndpi = shared_data / "slides" / "test3-DAPI-2-387.ndpi"
    assert open_jpeg_level(ndpi, "hamamatsu", (3968, 4864)) is None
    slide = open_slide(raw)
    reader = TileReader(raw, slide, plan_geometry(0.5, (1.0,)))
    assert not reader.uses_direct
    np.testing.assert_array_equal(reader.read_tile(0, 0), img[:598, :598])
    assert reader.stats.openslide == 1


def test_40x_tile_is_exact_2x_block_mean_of_1196_read(tmp_path: Path) -> None:
    img = tissue_image(1300, 1300, [(0, 0, 1300, 1300)], seed=9)
    path = write_pyramid(tmp_path / "x40.svs", img, downsamples=(1, 4), mpp=0.25, app_mag=40)
    slide = open_slide(path)
    geometry = plan_geometry(0.25, tuple(slide.level_downsamples))
    reader = TileReader(path, slide, geometry)
    assert reader.uses_direct and geometry.read_px == 1196
    region = read_rgb(slide, 0, 0, 0, 1196, 1196)
    expected = region.reshape(598, 2, 598, 2, 3).astype(np.float64).mean(axis=(1, 3))
    tile = reader.read_tile(0, 0)
    assert tile.shape == (598, 598, 3)
    assert np.abs(tile - expected).max() <= 0.5 + 1e-9  # exact mean, rounded
    assert np.array_equal(tile, cv2.resize(region, (598, 598), interpolation=cv2.INTER_AREA))
    reader.close()


def test_corrupt_jpeg_tile_falls_back_then_counts(tmp_path: Path, cmu_slide: Path) -> None:
    path = tmp_path / "cmu.svs"
    shutil.copy(cmu_slide, path)
    with tifffile.TiffFile(path) as tif:
        offset = int(tif.pages[0].dataoffsets[0])
    with path.open("r+b") as handle:  # destroy the JPEG header of tile (0, 0)
        handle.seek(offset)
        handle.write(b"\0" * 32)
    slide = openslide.OpenSlide(str(path))
    reader = TileReader(path, slide, plan_geometry(0.499, (1.0,)))
    try:
        reader.read_tile(0, 0)
        raise AssertionError("a corrupt tile must raise TileReadError")
    except Exception as exc:
        assert type(exc).__name__ == "TileReadError" and "cmu.svs" in str(exc)
    assert (reader.stats.fallbacks, reader.stats.corrupt) == (1, 1)
    good = reader.read_tile(598, 598)  # the handle was reopened: later tiles still read
    ref = read_rgb(openslide.OpenSlide(str(cmu_slide)), 598, 598, 0, 598, 598)
    np.testing.assert_array_equal(good, ref)
    reader.close()
