"""Fixtures for feature tests: the tiny backbone and tile stores (real CMU slide and synthetic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from histo_renn_dagster_tests.core.features.helpers import TINY, register_tiny, write_tile_store

CMU = Path(__file__).resolve().parents[2] / "data" / "slides" / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="session")
def tiny_backbone() -> str:
    register_tiny()
    return TINY


@pytest.fixture(scope="session")
def cmu_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CMU slide tiled at 0.5 um/px by core.wsi (one tissue tile)."""
    from histo_renn_dagster.core.wsi import tile_slide

    out = tmp_path_factory.mktemp("cmu") / "cmu.h5"
    tile_slide(CMU, out, slide_id="CMU-1-Small-Region")
    return out


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three synthetic stores with 5, 3 and 0 tiles."""
    root = tmp_path_factory.mktemp("stores")
    return [
        write_tile_store(root / f"s{i}.h5", n, slide_id=f"slide-{i}", seed=i)
        for i, n in enumerate((5, 3, 0))
    ]
