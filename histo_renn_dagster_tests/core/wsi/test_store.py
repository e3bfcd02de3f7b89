from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from histo_renn_dagster.core.errors import TileStoreError
from histo_renn_dagster.core.wsi.images import write_slide_pngs
from histo_renn_dagster.core.wsi.mask import compute_tissue_mask
from histo_renn_dagster.core.wsi.slide import open_slide
from histo_renn_dagster.core.wsi.store import TileStore, TileStoreWriter
from histo_renn_dagster.core.wsi.tiling import tile_slide


def _rows(n: int) -> dict[str, list]:
    return {
        "coords": [(i * 598, 0) for i in range(n)],
        "tissue_fraction": [0.9] * n,
        "qc_pen_fraction": [0.0] * n,
        "qc_laplacian_var": [500.0] * n,
        "qc_pen": [False] * n,
        "qc_blur": [False] * n,
    }


def test_round_trip_and_attrs(tmp_path: Path) -> None:
    ramp = np.linspace(0, 200, 598, dtype=np.float32)
    tiles = [
        np.stack([ramp[None, :] + 0 * ramp[:, None] + k * 20] * 3, -1).astype(np.uint8)
        for k in range(3)
    ]
    with TileStoreWriter(tmp_path / "s.h5", tile_px=598, jpeg_quality=95) as writer:
        writer.append(_rows(1), [writer.encode(tiles[0])])  # a one-row batch
        writer.append(_rows(2), [writer.encode(t) for t in tiles[1:]])
        writer.commit({"slide_id": "x", "level0_tile_px": 598, "mpp0": 0.5})
    with TileStore(tmp_path / "s.h5") as store:
        assert len(store) == 3 and store.attrs["jpeg_quality"] == 95 and store.attrs["n_tiles"] == 3
        assert store.read_tiles([2, 0]).shape == (2, 598, 598, 3)
        assert (
            np.abs(store.read_tile(1).astype(int) - tiles[1]).max() <= 3
        )  # smooth content survives q95
        with pytest.raises(IndexError):
            store.read_tile(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_writer_rejects_wrong_tile_shape_and_cleans_up(tmp_path: Path) -> None:
    with (
        pytest.raises(TileStoreError, match=r"\(598, 598, 3\)"),
        TileStoreWriter(tmp_path / "s.h5", tile_px=598, jpeg_quality=90) as writer,
    ):
        writer.encode(np.zeros((10, 10, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_store_is_rejected(tmp_path: Path, syn20: Path) -> None:
    out = tmp_path / "s.h5"
    tile_slide(syn20, out)
    with h5py.File(out, "a") as h5:
        del h5["tissue_fraction"]
        h5["tissue_fraction"] = np.zeros(5, np.float32)
    with pytest.raises(TileStoreError, match="tissue_fraction has 5 rows, coords has 2"):
        TileStore(out)
    (tmp_path / "other.h5").write_bytes(b"")
    with pytest.raises(TileStoreError, match="cannot open"):
        TileStore(tmp_path / "other.h5")


def test_thumbnail_and_overlay_pngs(tmp_path: Path, cmu_slide: Path) -> None:
    mask = compute_tissue_mask(open_slide(cmu_slide), 0.499)
    thumb, overlay = write_slide_pngs(
        mask,
        tmp_path / "t.png",
        tmp_path / "m.png",
        coords=np.array([[1196, 1794]]),
        level0_tile_px=598,
    )
    a, b = cv2.imread(str(thumb)), cv2.imread(str(overlay))
    assert a.shape == b.shape == (*mask.mask.shape, 3)
    assert not np.array_equal(a, b)  # tissue is tinted in the overlay
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "t.png"]
