"""Synthetic Aperio slides: OpenSlide's view, determinism, and the pixel signals the demo relies on."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openslide
import pytest
import tifffile

from histo_renn_dagster.core.errors import SlideSpecError
from histo_renn_dagster.emulator.synthetic_slides import (
    REFERENCE_STAIN,
    SlideSpec,
    nuclear_density_for,
    snap_to_pyramid,
    stain_for_site,
    write_svs,
)
from histo_renn_dagster.emulator.tissue_texture import TissuePainter

SMALL = SlideSpec(seed=11, width=1504, height=1200, label="TCGA-A2-A25D-01Z-00-DX1")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write(tmp_path: Path, spec: SlideSpec, name: str = "slide.svs") -> Path:
    path = tmp_path / name
    write_svs(path, spec)
    return path


def _rgb(slide: openslide.OpenSlide, level: int) -> np.ndarray:
    region = slide.read_region((0, 0), level, slide.level_dimensions[level])
    return np.asarray(region.convert("RGB"))


def _tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Otsu on HSV saturation, the usual WSI tissue detector."""
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    _, mask = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return mask > 0


def _dark_fraction(path: Path) -> float:
    """Share of tissue pixels (level 0) dark enough to be hematoxylin-stained nuclei."""
    with openslide.OpenSlide(path) as slide:
        rgb = _rgb(slide, 0)
    tissue = _tissue_mask(rgb)
    dark = rgb.astype(np.int32).sum(axis=2) < 3 * 140
    return float((dark & tissue).sum() / tissue.sum())


@pytest.fixture(scope="module")
def small_svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("svs"), SMALL)


def test_openslide_reads_an_aperio_pyramid(small_svs: Path) -> None:
    with openslide.OpenSlide(small_svs) as slide:
        props = slide.properties
        assert props["openslide.vendor"] == "aperio"
        assert slide.level_count == 3
        assert slide.dimensions == (SMALL.width, SMALL.height)
        assert slide.level_dimensions == ((1504, 1200), (376, 300), (94, 75))
        assert slide.level_downsamples == pytest.approx((1.0, 4.0, 16.0), abs=1e-6)
        assert float(props["openslide.mpp-x"]) == SMALL.mpp
        assert float(props["openslide.mpp-y"]) == SMALL.mpp
        assert float(props["openslide.objective-power"]) == SMALL.app_mag
        assert props["aperio.AppMag"] == "40"
        assert props["aperio.Filename"] == SMALL.label
        assert props["openslide.level[0].tile-width"] == "240"
        assert props["openslide.level[2].tile-height"] == "240"
        assert set(slide.associated_images) == {"thumbnail", "label", "macro"}


def test_file_layout_mirrors_a_real_aperio_svs(small_svs: Path) -> None:
    # Real Aperio order (CMU-1): level 0, thumbnail (stripped), reduced levels, label, macro.
    with tifffile.TiffFile(small_svs) as tif:
        pages = list(tif.pages)
        assert [p.is_tiled for p in pages] == [True, False, True, True, False, False]
        assert [p.compression for p in pages] == [7, 7, 7, 7, 5, 7]
        assert [int(p.subfiletype) for p in pages] == [0, 0, 0, 0, 1, 9]
        assert (pages[0].tilewidth, pages[0].tilelength) == (240, 240)
        assert pages[0].description.startswith("Aperio ")
        assert pages[4].description.splitlines()[1] == "label 387x463"
        assert pages[5].description.splitlines()[1] == "macro 1280x431"
        assert all(305 not in p.tags and 306 not in p.tags for p in pages)  # no Software/DateTime


def test_missing_mpp_is_absent_not_invented(tmp_path: Path) -> None:
    spec = replace(SMALL, mpp=None, app_mag=20.0)
    with openslide.OpenSlide(_write(tmp_path, spec)) as slide:
        assert "openslide.mpp-x" not in slide.properties
        assert "aperio.MPP" not in slide.properties
        assert float(slide.properties["openslide.objective-power"]) == 20.0


def test_odd_mpp_round_trips_exactly(tmp_path: Path) -> None:
    spec = replace(SMALL, mpp=0.2468, app_mag=None, tile_size=256)
    with openslide.OpenSlide(_write(tmp_path, spec)) as slide:
        assert float(slide.properties["openslide.mpp-x"]) == 0.2468
        assert "openslide.objective-power" not in slide.properties
        assert slide.properties["openslide.level[0].tile-width"] == "256"


def test_openslide_and_tifffile_decode_identical_pixels(small_svs: Path) -> None:
    with openslide.OpenSlide(small_svs) as slide:
        via_openslide = [_rgb(slide, level) for level in range(3)]
    with tifffile.TiffFile(small_svs) as tif:
        via_tifffile = [tif.pages[i].asarray() for i in (0, 2, 3)]
    for a, b in zip(via_openslide, via_tifffile, strict=True):
        assert a.shape == b.shape
        assert np.array_equal(a, b)


def test_same_spec_same_bytes_other_seed_other_bytes(tmp_path: Path, small_svs: Path) -> None:
    again = _write(tmp_path, SMALL, "again.svs")
    assert again.read_bytes() == small_svs.read_bytes()
    assert _md5(again) == _md5(small_svs)
    other = _write(tmp_path, replace(SMALL, seed=12), "other.svs")
    assert _md5(other) != _md5(small_svs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.svs", "other.svs"]  # no temps


def test_tissue_covers_the_target_fraction_on_white_glass(small_svs: Path) -> None:
    with openslide.OpenSlide(small_svs) as slide:
        rgb = _rgb(slide, 1)
    tissue = _tissue_mask(rgb)
    assert tissue.mean() == pytest.approx(SMALL.tissue_fraction, abs=0.1)
    # Glass: well away from anything the detector calls tissue (pale stroma holes excluded).
    near_tissue = cv2.dilate(tissue.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    glass = rgb[~near_tissue]
    assert glass.shape[0] > 0.2 * tissue.size
    assert glass.mean(axis=0).min() > 235
    assert glass.std(axis=0).max() < 3  # no structure on the glass
    assert rgb[tissue].mean() < glass.mean() - 30
    with openslide.OpenSlide(small_svs) as slide:
        corner = np.asarray(slide.read_region((0, 0), 0, (48, 48)).convert("RGB")).astype(float)
    assert corner.mean() > 235
    assert 0.3 < corner.std() < 5  # slight camera noise at full resolution


@pytest.mark.parametrize("fraction", [0.4, 0.6])
def test_tissue_fraction_follows_the_spec(tmp_path: Path, fraction: float) -> None:
    spec = replace(SMALL, seed=5, tissue_fraction=fraction)
    with openslide.OpenSlide(_write(tmp_path, spec)) as slide:
        assert _tissue_mask(_rgb(slide, 1)).mean() == pytest.approx(fraction, abs=0.1)


def test_nuclear_density_raises_dark_pixels_per_tissue_area(tmp_path: Path) -> None:
    densities = [0.1, 0.5, 0.9]
    dark = [
        _dark_fraction(_write(tmp_path, replace(SMALL, nuclear_density=d), f"d{d}.svs"))
        for d in densities
    ]
    assert dark[0] < dark[1] < dark[2]
    assert dark[2] > 2 * dark[0]


def test_site_stains_shift_the_mean_tissue_colour(tmp_path: Path) -> None:
    means = []
    for site in ("A2", "BH"):
        path = _write(tmp_path, replace(SMALL, stain=stain_for_site(site)), f"{site}.svs")
        with openslide.OpenSlide(path) as slide:
            rgb = _rgb(slide, 1)
        means.append(rgb[_tissue_mask(rgb)].mean(axis=0))
    assert np.abs(means[0] - means[1]).max() > 8


def _colour(stain, h: float, e: float) -> np.ndarray:
    od = h * np.asarray(stain.hematoxylin) + e * np.asarray(stain.eosin)
    return 245 * np.exp(-od)


def test_site_stains_are_deterministic_distinct_and_h_and_e_like() -> None:
    codes = ["A2", "AR", "BH", "C8", "E2", "E9", "GM", "OL", "4H", "XX", "UU", "AN"]
    assert stain_for_site("A2") == stain_for_site("A2")
    stains = {c: stain_for_site(c) for c in codes}
    assert len(set(stains.values())) == len(codes)
    for code, stain in stains.items():
        stroma, nucleus = _colour(stain, 0.08, 0.55), _colour(stain, 1.3, 0.3)
        assert stroma[1] < min(stroma[0], stroma[2]), f"{code}: stroma not pink {stroma}"
        assert nucleus[1] < nucleus[0] and nucleus[2] > 0.9 * nucleus[0], f"{code}: {nucleus}"
        assert nucleus.sum() < stroma.sum() - 150, f"{code}: nuclei not darker than stroma"
    spread = [
        np.abs(_colour(stains[a], 0.08, 0.55) - _colour(stains[b], 0.08, 0.55)).max()
        for a, b in itertools.combinations(codes, 2)
    ]
    assert np.median(spread) > 8
    assert stain_for_site("A2") != REFERENCE_STAIN


def test_nuclear_density_for_is_a_monotone_logistic() -> None:
    zs = np.linspace(-4, 4, 33)
    values = [nuclear_density_for(z) for z in zs]
    assert all(0.0 < v < 1.0 for v in values)
    assert all(a < b for a, b in itertools.pairwise(values))
    assert nuclear_density_for(0.0) == pytest.approx(0.5)
    assert nuclear_density_for(2.0) + nuclear_density_for(-2.0) == pytest.approx(1.0)
    with pytest.raises(SlideSpecError, match="finite"):
        nuclear_density_for(float("nan"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 1500}, "width must be a positive multiple of 16.*nearest valid: 1504"),
        ({"height": 0}, "height must be"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"mpp": 0.0}, "mpp must be None or > 0"),
        ({"app_mag": float("nan")}, "app_mag"),
        ({"tile_size": 250}, "tile_size must be a multiple of 16"),
        ({"nuclear_density": 1.5}, "nuclear_density must be in"),
        ({"tissue_fraction": 0.99}, "tissue_fraction must be in"),
        ({"label": "a|b"}, "label must be ASCII"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
    ],
)
def test_bad_specs_are_rejected_with_a_reason(changes: dict, message: str) -> None:
    with pytest.raises(SlideSpecError, match=message):
        replace(SMALL, **changes)


def test_snap_to_pyramid() -> None:
    assert [snap_to_pyramid(n) for n in (1, 1500, 1504, 7000, 7009)] == [16, 1504, 1504, 7008, 7008]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_svs(tmp_path / "missing" / "x.svs", SMALL)
    target = tmp_path / "x.svs"
    target.mkdir()  # os.replace onto a directory fails after the temp file is complete
    with pytest.raises(OSError):
        write_svs(target, SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["x.svs"]


def _painter(**changes: Any) -> TissuePainter:
    args: dict[str, Any] = {
        "seed": 4,
        "width": 960,
        "height": 720,
        "um_per_px": 0.25,
        "stain": REFERENCE_STAIN,
        "nuclear_density": 0.8,
        "tissue_fraction": 0.5,
    }
    return TissuePainter(**(args | changes))


def test_bands_join_seamlessly_and_span_skipping_changes_nothing() -> None:
    painter = _painter()
    whole = painter.paint_band(0, 720)
    bands = np.concatenate([painter.paint_band(y, y + 240) for y in range(0, 720, 240)])
    assert np.array_equal(whole, bands)  # nuclei and fields cross band edges identically
    assert len(painter.nuclei) > 50
    full_width = _painter()
    full_width._tissue_span = lambda y0, y1: (0, 960)  # type: ignore[method-assign]
    assert np.array_equal(full_width.paint_band(0, 720), whole)


def test_zero_density_draws_no_nuclei_and_tissue_is_never_black() -> None:
    painter = _painter(nuclear_density=0.0)
    assert len(painter.nuclei) == 0
    rgb = painter.paint_band(0, 720)
    assert rgb.min() > 60
    assert rgb.sum(axis=2).min() > 3 * 140  # no nuclear-dark pixels without nuclei


@pytest.mark.slow
def test_realistic_demo_slide(tmp_path: Path) -> None:
    spec = replace(SMALL, seed=3, width=7008, height=6720, stain=stain_for_site("E2"))
    path = _write(tmp_path, spec)
    with openslide.OpenSlide(path) as slide:
        assert slide.level_dimensions == ((7008, 6720), (1752, 1680), (438, 420))
        thumb = _rgb(slide, 2)
        # Tissue tiles of 1196 level-0 px (598 px at 20x) with at least half tissue: 10-25 wanted.
        mask = _tissue_mask(thumb)
        step = 1196 / 16
        tiles = 0
        for y, x in itertools.product(range(int(420 // step)), range(int(438 // step))):
            cell = mask[int(y * step) : int((y + 1) * step), int(x * step) : int((x + 1) * step)]
            tiles += cell.mean() >= 0.5
        assert 10 <= tiles <= 25
        region = np.asarray(slide.read_region((2400, 2400), 0, (598, 598)).convert("RGB"))
    with tifffile.TiffFile(path) as tif:
        assert np.array_equal(tif.pages[0].asarray()[2400:2998, 2400:2998], region)
