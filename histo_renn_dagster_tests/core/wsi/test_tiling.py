"""tile_slide end to end on the real CMU slide, the real NDPI slide and synthetic slides."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from histo_renn_dagster.core.errors import MissingResolutionError, SlideOpenError
from histo_renn_dagster.core.wsi.grid import plan_geometry
from histo_renn_dagster.core.wsi.reader import TileReader
from histo_renn_dagster.core.wsi.slide import open_slide, read_rgb
from histo_renn_dagster.core.wsi.store import TileStore
from histo_renn_dagster.core.wsi.tiling import TilingSpec, tile_command_summary, tile_slide
from histo_renn_dagster_tests.core.wsi.conftest import SYN20_TISSUE_TILES
from histo_renn_dagster_tests.core.wsi.synthetic import tissue_image, write_pyramid

# Hand-verified on the thumbnail + mask overlay: the tissue strip runs diagonally down the middle;
# of the 3 x 4 full tiles only the bottom-right one, (1196, 1794), is more than 80 % tissue
# ((598, 1794) is ~74 %, its left third is glass). The 371-px bottom strip is not a full tile.
CMU_EXPECTED = {(1196, 1794)}


def _coords(path: Path) -> set[tuple[int, int]]:
    with TileStore(path) as store:
        return {(int(x), int(y)) for x, y in store.coords}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_real_cmu_slide(tmp_path: Path, cmu_slide: Path) -> None:
    out = tmp_path / "cmu.h5"
    result = tile_slide(cmu_slide, out, slide_id="cmu")
    assert (result.mpp0, result.mpp_source, result.level0_tile_px) == (0.499, "openslide", 598)
    assert result.read_px == 598 and result.grid_tiles == 12 and result.mask_method == "otsu"
    assert _coords(out) == CMU_EXPECTED
    with TileStore(out) as store:
        assert store.attrs["vendor"] == "aperio" and store.attrs["objective_power"] == 20
        assert store.attrs["n_direct_reads"] == 1 and store.attrs["slide_id"] == "cmu"
        tile = store.read_tile(0)
        assert tile.shape == (598, 598, 3) and store.read_tiles([0, 0]).shape == (2, 598, 598, 3)
        assert 0.8 < float(store.tissue_fraction[0]) <= 1.0
        assert not store.dataset("qc_pen")[0] and not store.dataset("qc_blur")[0]
    reference = read_rgb(open_slide(cmu_slide), 1196, 1794, 0, 598, 598)
    assert np.abs(tile.astype(int) - reference).mean() < 8  # JPEG q90 re-encode of the same pixels
    assert 0.3 < result.tissue_area_mm2 < 1.0
    summary = tile_command_summary(result)
    assert summary == {
        "tiles": 1,
        "mpp0": 0.499,
        "mpp_source": "openslide",
        "effective_mpp": 0.499,
        "seconds": summary["seconds"],
        "out": str(out),
    }
    assert _leftovers(tmp_path) == ["cmu.h5"]


def test_real_ndpi_opens_and_reads_mpp(tmp_path: Path, shared_data: Path) -> None:
    ndpi = shared_data / "slides" / "test3-DAPI-2-387.ndpi"
    result = tile_slide(ndpi, tmp_path / "ndpi.h5")
    assert result.mpp_source == "openslide"
    assert result.mpp0 == pytest.approx(0.2281750559028887)
    assert result.effective_mpp == pytest.approx(0.5, rel=2e-3)
    assert result.direct_reads == 0  # NDPI always goes through OpenSlide


def test_synthetic_known_tiles_and_no_padded_edges(tmp_path: Path, syn20: Path) -> None:
    out = tmp_path / "s.h5"
    result = tile_slide(syn20, out)
    assert _coords(out) == SYN20_TISSUE_TILES  # the tissue-filled edge strip yields nothing
    assert result.grid_tiles == 6 and result.direct_reads == 2 and result.corrupt_tiles == 0
    with TileStore(out) as store:
        assert (store.coords[:, 0] + 598 <= 2000).all() and (store.coords[:, 1] + 598 <= 1500).all()
        assert np.all(store.tissue_fraction > 0.95)  # mask edges are 8 um wide


def test_40x_reads_1196_px_at_level0(tmp_path: Path) -> None:
    img = tissue_image(
        2500, 2600, [(1196, 0, 1196, 1196), (0, 1196, 1196, 1196), (2392, 0, 208, 2500)], seed=4
    )
    slide = write_pyramid(tmp_path / "x40.svs", img, mpp=0.25, app_mag=40)
    result = tile_slide(slide, tmp_path / "x40.h5")
    assert (result.level0_tile_px, result.read_level, result.read_px) == (1196, 0, 1196)
    assert _coords(tmp_path / "x40.h5") == {(1196, 0), (0, 1196)}
    with TileStore(tmp_path / "x40.h5") as store:
        assert (store.attrs["level0_tile_px"], store.attrs["read_px"], store.attrs["tile_px"]) == (
            1196,
            1196,
            598,
        )
        assert store.read_tile(0).shape == (598, 598, 3)


def test_slide_without_mpp_needs_override(tmp_path: Path) -> None:
    img = tissue_image(1200, 1200, [(0, 0, 598, 598)])
    bare = write_pyramid(tmp_path / "bare.tif", img, downsamples=(1,), aperio=False)
    with tifffile.TiffFile(bare) as tif:
        assert tif.pages[0].tags["ResolutionUnit"].value == 1  # no physical unit
    with pytest.raises(MissingResolutionError, match=r"bare\.tif"):
        tile_slide(bare, tmp_path / "bare.h5")
    assert _leftovers(tmp_path) == ["bare.tif"]
    result = tile_slide(bare, tmp_path / "bare.h5", mpp_override=0.5)
    assert result.mpp_source == "override" and _coords(tmp_path / "bare.h5") == {(0, 0)}


def test_truncated_and_non_slide_files(tmp_path: Path, cmu_slide: Path) -> None:
    data = cmu_slide.read_bytes()
    for cut in (900_000, 1_900_000):  # before the first directory / inside the last image's data
        truncated = tmp_path / "trunc.svs"
        truncated.write_bytes(data[:cut])
        with pytest.raises(SlideOpenError, match=r"trunc\.svs: truncated"):
            tile_slide(truncated, tmp_path / "t.h5")
    text = tmp_path / "notes.svs"
    text.write_text("not a slide\n")
    with pytest.raises(SlideOpenError, match=r"notes\.svs"):
        tile_slide(text, tmp_path / "n.h5")
    assert _leftovers(tmp_path) == ["notes.svs", "trunc.svs"]


def test_zero_tissue_gives_valid_empty_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blank = np.full((1300, 1300, 3), 240, np.uint8)
    slide = write_pyramid(tmp_path / "blank.svs", blank, jpeg=False)
    with caplog.at_level(logging.WARNING):
        result = tile_slide(slide, tmp_path / "blank.h5")
    assert result.tiles == 0 and result.mask_method == "fixed_fallback"
    assert any("no tile has enough tissue" in w for w in result.warnings)
    assert "no tile has enough tissue" in caplog.text
    with TileStore(tmp_path / "blank.h5") as store:
        assert len(store) == 0 and store.coords.shape == (0, 2) and bool(store.attrs["no_tissue"])


def test_unreadable_tile_is_skipped_and_counted(tmp_path: Path, syn20: Path) -> None:
    path = tmp_path / "bad.svs"
    shutil.copy(syn20, path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        across = -(-page.imagewidth // page.tilewidth)
        index = (700 // 256) * across + (100 // 256)  # a JPEG tile inside tissue tile (0, 598)
        offset = int(page.dataoffsets[index])
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\0" * 32)
    result = tile_slide(path, tmp_path / "bad.h5")
    assert result.corrupt_tiles == 1 and result.tiles == 1
    assert _coords(tmp_path / "bad.h5") == {(598, 0)}
    with TileStore(tmp_path / "bad.h5") as store:
        assert store.attrs["n_corrupt_tiles"] == 1


def test_qc_flags_pen_and_blur_and_can_drop(tmp_path: Path) -> None:
    rects = [(0, 0, 598, 598), (598, 0, 598, 598), (1196, 0, 598, 598)]
    img = tissue_image(700, 1900, rects, seed=7)
    img[100:300, 700:1100] = (40, 170, 60)  # green marker across a third of tile (598, 0)
    img[:598, 1196:1794] = cv2.GaussianBlur(img[:598, 1196:1794], (0, 0), 6)
    slide = write_pyramid(tmp_path / "qc.svs", img)
    kept = tile_slide(slide, tmp_path / "qc.h5")
    with TileStore(tmp_path / "qc.h5") as store:
        flags = {
            tuple(int(v) for v in c): (bool(p), bool(b))
            for c, p, b in zip(
                store.coords, store.dataset("qc_pen"), store.dataset("qc_blur"), strict=True
            )
        }
    assert flags == {(0, 0): (False, False), (598, 0): (True, False), (1196, 0): (False, True)}
    assert (kept.pen_flagged, kept.blur_flagged, kept.tiles) == (1, 1, 3)
    dropped = tile_slide(slide, tmp_path / "qc2.h5", TilingSpec(drop_flagged=True))
    assert dropped.dropped_flagged == 2 and _coords(tmp_path / "qc2.h5") == {(0, 0)}


def test_failure_midway_leaves_nothing(tmp_path: Path, syn20: Path) -> None:
    def explode(done: int, total: int) -> None:
        raise RuntimeError("stop")

    out = tmp_path / "x.h5"
    with pytest.raises(RuntimeError):
        tile_slide(syn20, out, TilingSpec(batch=1), progress=explode)
    assert _leftovers(tmp_path) == []


def test_reader_plan_decodes_shared_jpeg_tiles_once(syn20: Path) -> None:
    slide = open_slide(syn20)
    reader = TileReader(syn20, slide, plan_geometry(0.5, tuple(slide.level_downsamples)))
    coords = np.array([(0, 0), (598, 0), (1196, 0), (0, 598), (598, 598), (1196, 598)])
    reader.plan(coords)
    for x, y in coords:
        reader.read_tile(int(x), int(y))
    assert (
        reader._direct is not None and reader._direct.decoded == 8 * 5
    )  # 1794x1196 px of 256-px tiles
