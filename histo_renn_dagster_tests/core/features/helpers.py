"""Test helpers for feature tests: small tile stores and a tiny, fast registered backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from histo_renn_dagster.core.features.backbones import BackboneEntry, register_backbone
from histo_renn_dagster.core.features.transforms import TransformSpec
from histo_renn_dagster.core.wsi.store import TileStoreWriter

TINY = "tiny_test"
TINY_DIM = 6


def textured_tiles(n: int, tile_px: int, seed: int) -> np.ndarray:
    """Smooth random colour fields: distinct per tile, and JPEG keeps them close to the input."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 230, size=(n, 8, 8, 3)).astype(np.float32)
    rep = -(-tile_px // 8)
    tiles = np.repeat(np.repeat(coarse, rep, axis=1), rep, axis=2)[:, :tile_px, :tile_px]
    return tiles.astype(np.uint8)


def write_tile_store(
    path: Path, n: int, *, slide_id: str, seed: int = 0, tile_px: int = 598
) -> Path:
    """A valid tile store with ``n`` textured tiles in one row of the level-0 grid."""
    with TileStoreWriter(path, tile_px=tile_px, jpeg_quality=90) as writer:
        tiles = textured_tiles(n, tile_px, seed)
        rows = {
            "coords": [(i * tile_px, 0) for i in range(n)],
            "tissue_fraction": [0.9] * n,
            "qc_pen_fraction": [0.0] * n,
            "qc_laplacian_var": [500.0] * n,
            "qc_pen": [False] * n,
            "qc_blur": [False] * n,
        }
        writer.append(rows, [writer.encode(t) for t in tiles])
        writer.commit({"slide_id": slide_id, "level0_tile_px": tile_px, "mpp0": 0.5})
    return path


class TinyNet(nn.Module):
    """conv -> pool -> fc: the shape of a classification CNN at a fraction of the cost."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, TINY_DIM, kernel_size=5, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(TINY_DIM, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def _strip(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


def register_tiny(pretrained_url: str | None = None, name: str = TINY) -> BackboneEntry:
    entry = BackboneEntry(
        name=name,
        dim=TINY_DIM,
        transform=TransformSpec(input_px=32),
        build=TinyNet,
        strip=_strip,
        pretrained_url=pretrained_url,
        head_prefixes=("fc",),
    )
    register_backbone(entry)
    return entry
