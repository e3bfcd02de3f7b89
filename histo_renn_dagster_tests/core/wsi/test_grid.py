from __future__ import annotations

import numpy as np
import pytest

from histo_renn_dagster.core.errors import ResolutionError
from histo_renn_dagster.core.wsi.grid import grid_coords, plan_geometry


def test_20x_reads_598_without_resize() -> None:
    g = plan_geometry(0.499, (1.0,))
    assert (g.level0_tile_px, g.read_level, g.read_px, g.resize) == (598, 0, 598, False)
    assert g.effective_mpp == pytest.approx(0.499)


def test_40x_reads_1196_at_level0_when_no_2x_level() -> None:
    g = plan_geometry(0.25, (1.0, 4.0, 16.0))
    assert (g.integer_downsample, g.level0_tile_px, g.read_level, g.read_px) == (2, 1196, 0, 1196)
    assert g.resize and g.effective_mpp == pytest.approx(0.5)


def test_40x_reads_from_an_exact_2x_level() -> None:
    g = plan_geometry(0.25, (1.0, 2.0, 8.0))
    assert (g.level0_tile_px, g.read_level, g.read_downsample, g.read_px) == (1196, 1, 2, 598)
    assert not g.resize


def test_inexact_level_downsample_is_not_used() -> None:
    assert plan_geometry(0.25, (1.0, 2.0004)).read_level == 0


def test_non_integer_ratio_resizes_from_level0() -> None:
    g = plan_geometry(0.2281750559028887, (1.0, 2.0, 4.0))
    assert g.integer_downsample is None
    assert g.level0_tile_px == round(598 * 0.5 / 0.2281750559028887)
    assert g.effective_mpp == pytest.approx(0.5, rel=1e-3)


def test_slightly_coarse_snaps_but_never_upsamples() -> None:
    assert plan_geometry(0.51, (1.0,)).level0_tile_px == 598
    with pytest.raises(ResolutionError, match="upsampling"):
        plan_geometry(1.0, (1.0,), slide_name="coarse.svs")


def test_grid_has_full_tiles_only() -> None:
    coords = grid_coords(2000, 1500, 598)
    assert coords.dtype == np.int64 and coords.shape == (6, 2)
    assert (coords[:, 0] + 598 <= 2000).all() and (coords[:, 1] + 598 <= 1500).all()
    assert grid_coords(500, 5000, 598).shape == (0, 2)
