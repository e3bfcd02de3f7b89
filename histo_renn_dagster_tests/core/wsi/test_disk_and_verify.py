"""Disk budget helpers, store verification, preview PNGs and the fused 2x downsample."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from histo_renn_dagster.core.errors import InsufficientSpaceError, SlideOpenError, TileStoreError
from histo_renn_dagster.core.wsi.disk import (
    bytes_still_needed,
    check_free_space,
    delete_slide_file,
    find_slide_file,
)
from histo_renn_dagster.core.wsi.grid import plan_geometry
from histo_renn_dagster.core.wsi.images import image_data_uri
from histo_renn_dagster.core.wsi.reader import TileReader
from histo_renn_dagster.core.wsi.slide import open_slide, read_rgb
from histo_renn_dagster.core.wsi.store import verify_tile_store
from histo_renn_dagster.core.wsi.tiling import tile_slide
from histo_renn_dagster_tests.core.wsi.synthetic import tissue_image, write_pyramid


def test_free_space_check_names_item_needed_and_free(tmp_path: Path) -> None:
    free = check_free_space(tmp_path / "not" / "yet", 1, item="slide abc")
    assert free > 1
    with pytest.raises(InsufficientSpaceError, match=r"slide abc: needs 5 bytes .* only \d+ bytes"):
        check_free_space(tmp_path, 5, item="slide abc", reserve_bytes=free)


def test_bytes_still_needed_counts_partial_and_complete(tmp_path: Path) -> None:
    folder = tmp_path / "id"
    assert bytes_still_needed(folder, 100) == 100
    folder.mkdir()
    (folder / "s.svs.partial").write_bytes(b"x" * 30)
    assert bytes_still_needed(folder, 100) == 70
    (folder / "s.svs").write_bytes(b"x" * 100)
    assert bytes_still_needed(folder, 100) == 0


def test_find_and_delete_slide_file(tmp_path: Path) -> None:
    folder = tmp_path / "id"
    with pytest.raises(SlideOpenError, match="no downloaded slide"):
        find_slide_file(folder, item="slide id")
    folder.mkdir()
    (folder / "a.svs.partial").write_bytes(b"p")
    (folder / ".a.svs.123.tmp").write_bytes(b"t")
    with pytest.raises(SlideOpenError, match="no downloaded slide"):
        find_slide_file(folder, item="slide id")
    (folder / ".a.svs.123.tmp").unlink()
    (folder / "a.svs.partial").unlink()
    (folder / "a.svs").write_bytes(b"s" * 10)
    (folder / "a.svs.md5").write_text("0" * 32)
    assert find_slide_file(folder, item="slide id") == folder / "a.svs"
    (folder / "b.svs").write_bytes(b"s")
    with pytest.raises(SlideOpenError, match=r"expected one slide file .*a\.svs.*b\.svs"):
        find_slide_file(folder, item="slide id")
    (folder / "b.svs").unlink()
    assert delete_slide_file(folder / "a.svs") == 42
    assert not folder.exists()


def test_verify_store_and_its_failures(tmp_path: Path, syn20: Path) -> None:
    out = tmp_path / "s.h5"
    result = tile_slide(syn20, out)
    summary = verify_tile_store(out, expected_tiles=result.tiles)
    assert (summary.tiles, summary.tile_px, summary.no_tissue) == (2, 598, False)
    with pytest.raises(TileStoreError, match="2 tiles, expected 3"):
        verify_tile_store(out, expected_tiles=3)
    broken = tmp_path / "broken.h5"
    shutil.copy(out, broken)
    with h5py.File(broken, "r+") as h5:
        h5["jpeg"][1] = np.frombuffer(b"\xff\xd8 not a jpeg", np.uint8)
    with pytest.raises(TileStoreError, match="tile 1"):
        verify_tile_store(broken)
    with h5py.File(broken, "r+") as h5:
        h5.attrs["n_tiles"] = 5
    with pytest.raises(TileStoreError, match="n_tiles=5 but 2 rows"):
        verify_tile_store(broken)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"garbage")
    with pytest.raises(TileStoreError, match="cannot open tile store"):
        verify_tile_store(garbage)


def test_previews_written_with_the_store_and_removed_on_failure(
    tmp_path: Path, syn20: Path
) -> None:
    result = tile_slide(syn20, tmp_path / "s.h5", previews_dir=tmp_path / "prev")
    assert result.thumbnail == tmp_path / "prev" / "thumbnail.png"
    assert result.overlay == tmp_path / "prev" / "mask_overlay.png"
    thumb = cv2.imread(str(result.thumbnail))
    overlay = cv2.imread(str(result.overlay))
    assert thumb is not None and overlay is not None and thumb.shape == overlay.shape
    assert (np.abs(thumb.astype(int) - overlay).sum(axis=2) > 0).any()  # tint and outlines
    uri = image_data_uri(result.overlay, max_side=64)
    assert uri.startswith("data:image/jpeg;base64,")

    def explode(done: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        tile_slide(syn20, tmp_path / "t.h5", previews_dir=tmp_path / "prev2", progress=explode)
    assert not (tmp_path / "t.h5").exists() and not list((tmp_path / "prev2").glob("*"))


@pytest.mark.parametrize("jpeg_tile", [240, 256])
def test_fused_2x_downsample_is_identical_to_resizing_the_openslide_region(
    tmp_path: Path, jpeg_tile: int
) -> None:
    img = tissue_image(1300, 2500, [(0, 0, 2500, 1300)], seed=12)
    path = write_pyramid(
        tmp_path / "x40.svs", img, downsamples=(1, 4), mpp=0.25, app_mag=40, tile=jpeg_tile
    )
    slide = open_slide(path)
    reader = TileReader(path, slide, plan_geometry(0.25, tuple(slide.level_downsamples)))
    assert reader.uses_direct and reader._direct is not None and reader._direct.scale == 2
    coords = [(0, 0), (1196, 0), (3, 5)]  # the last has an odd origin
    reader.plan(np.array(coords))
    for x, y in coords:
        expected = cv2.resize(
            read_rgb(slide, x, y, 0, 1196, 1196), (598, 598), interpolation=cv2.INTER_AREA
        )
        np.testing.assert_array_equal(reader.read_tile(x, y), expected, err_msg=f"{x},{y}")
    assert reader.stats.openslide == 1  # the unaligned region went through OpenSlide
    reader.close()
