from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from histo_renn_dagster.core.features.backbones import backbone_entry
from histo_renn_dagster.core.features.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TransformSpec,
    preprocess_tiles,
)
from histo_renn_dagster.core.wsi.store import TileStore


def test_shape_layout_and_normalisation() -> None:
    tiles = torch.zeros(2, 40, 40, 3, dtype=torch.uint8)
    tiles[1] = 255
    x = preprocess_tiles(tiles, TransformSpec(input_px=20))
    assert x.shape == (2, 3, 20, 20) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0, :, 5, 5].numpy(), -mean / std, rtol=1e-6)
    np.testing.assert_allclose(x[1, :, 5, 5].numpy(), (1 - mean) / std, rtol=1e-6)


def test_rejects_non_uint8_tiles() -> None:
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\) uint8"):
        preprocess_tiles(torch.zeros(1, 8, 8, 3), TransformSpec(input_px=8))


def test_resize_matches_the_reference_pil_resize(cmu_store: Path) -> None:
    """The reference resized each 598-px tile to 299 with PIL (bilinear, antialiased); ours runs
    on the device in float and differs from PIL's uint8 output by its rounding only."""
    with TileStore(cmu_store) as store:
        tile = store.read_tile(0)
    pil = np.asarray(Image.fromarray(tile).resize((299, 299), Image.BILINEAR), np.float32)
    ours = preprocess_tiles(
        torch.from_numpy(tile)[None], TransformSpec(input_px=299, mean=(0, 0, 0), std=(1, 1, 1))
    )
    ours_255 = ours[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(ours_255 - pil).max() <= 1.0
    assert np.abs(ours_255 - pil).mean() < 0.5


def test_inception_input_is_normalised_exactly_once() -> None:
    """Our inception_v3 transform equals ImageNet Normalize followed by torchvision's
    transform_input=True (what the published weights expect); the model itself is built with
    transform_input=False, so the two never stack."""
    entry = backbone_entry("inception_v3")
    tiles = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 299, 299, 3), np.uint8))
    ours = preprocess_tiles(tiles, entry.transform)
    imagenet = preprocess_tiles(tiles, TransformSpec(input_px=299))
    reference = torchvision.models.inception_v3(
        weights=None, aux_logits=False, transform_input=True, init_weights=False
    )
    torch.testing.assert_close(ours, reference._transform_input(imagenet), atol=1e-5, rtol=1e-5)
    assert entry.build().transform_input is False
