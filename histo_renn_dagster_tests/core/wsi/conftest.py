"""Slides shared by the wsi tests: the real CMU slide (copied into the test data) and synthetics."""

from __future__ import annotations

from pathlib import Path

import pytest

from histo_renn_dagster_tests.core.wsi.synthetic import tissue_image, write_pyramid

DATA = Path(__file__).resolve().parents[2] / "data" / "slides"
CMU = DATA / "CMU-1-Small-Region.svs"

# 20x synthetic: 3 x 2 full 598-px tiles plus partial edges (2000 - 1794 = 206 px, 1500 - 1196).
SYN20_TISSUE_TILES = {(598, 0), (0, 598)}


@pytest.fixture(scope="session")
def cmu_slide() -> Path:
    return CMU


@pytest.fixture(scope="session")
def syn20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Aperio-style tiled JPEG, 20x, 0.5 um/px; tissue exactly on SYN20_TISSUE_TILES and in the
    partial right-hand edge strip (which must never become a tile)."""
    rects = [(x, y, 598, 598) for x, y in SYN20_TISSUE_TILES] + [(1794, 0, 206, 1500)]
    img = tissue_image(1500, 2000, rects, seed=3)
    return write_pyramid(tmp_path_factory.mktemp("syn20") / "syn20.svs", img)
