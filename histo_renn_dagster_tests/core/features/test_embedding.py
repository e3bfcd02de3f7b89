from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from histo_renn_dagster.core.errors import FeatureError
from histo_renn_dagster.core.features import (
    ComputeSpec,
    EmbeddingSpec,
    embed_slides,
    load_backbone,
    plan_slide,
    resolve_compute,
)
from histo_renn_dagster.core.features.embedding import SlidePlan, plan_batches
from histo_renn_dagster.core.features.transforms import preprocess_tiles
from histo_renn_dagster.core.wsi.store import TileStore
from histo_renn_dagster_tests.core.features.helpers import TINY_DIM, write_tile_store


def _cpu(batch_size: int = 4, **kw) -> object:
    return resolve_compute(ComputeSpec(device="cpu", batch_size=batch_size, **kw))


def _plan(n: int, tile_px: int = 598) -> SlidePlan:
    return SlidePlan(Path("x"), "x", n, tile_px, np.arange(n), np.zeros((n, 2), np.int64))


def test_batches_span_slides_and_break_on_tile_size() -> None:
    batches = plan_batches([_plan(5), _plan(3), _plan(0), _plan(2, tile_px=256)], 4)
    assert batches == [
        [(0, 0), (0, 1), (0, 2), (0, 3)],
        [(0, 4), (1, 0), (1, 1), (1, 2)],  # one batch, two slides
        [(3, 0), (3, 1)],  # a different tile size starts a new batch
    ]


def test_embeddings_match_a_direct_forward_pass(stores, tiny_backbone) -> None:
    backbone = load_backbone(tiny_backbone, "random", seed=0)
    results = list(embed_slides(stores, backbone, EmbeddingSpec(k=4, seed=1), _cpu(batch_size=3)))
    assert [r.slide_id for r in results] == ["slide-0", "slide-1", "slide-2"]
    assert [r.k for r in results] == [4, 3, 0]  # k_eff = min(k, tiles)
    for result, path in zip(results, stores, strict=True):
        assert result.features.shape == (result.k, TINY_DIM)
        assert result.features.dtype == np.float32 and result.mean.dtype == np.float32
        if result.k == 0:
            assert np.isnan(result.mean).all()  # undefined, never a made-up zero vector
            continue
        with TileStore(path) as store:
            tiles = store.read_tiles(result.plan.indices)
            np.testing.assert_array_equal(result.plan.coords, store.coords[result.plan.indices])
        with torch.inference_mode():
            direct = backbone.model(preprocess_tiles(torch.from_numpy(tiles), backbone.transform))
        np.testing.assert_allclose(result.features, direct.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.mean, result.features.mean(axis=0), rtol=1e-5)


def test_same_seed_same_slide_is_bitwise_reproducible(stores, tiny_backbone) -> None:
    def run(seed: int):
        backbone = load_backbone(tiny_backbone, "random", seed=0)
        return list(embed_slides(stores[:2], backbone, EmbeddingSpec(k=2, seed=seed), _cpu()))

    first, again, other = run(5), run(5), run(6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.plan.indices, b.plan.indices)
        np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(first[0].plan.indices, other[0].plan.indices)


def test_worker_processes_give_the_same_result(stores, tiny_backbone) -> None:
    backbone = load_backbone(tiny_backbone, "random", seed=0)
    spec = EmbeddingSpec(k=3, seed=2)
    inline = list(embed_slides(stores, backbone, spec, _cpu(batch_size=2)))
    workers = list(embed_slides(stores, backbone, spec, _cpu(batch_size=2, workers=1)))
    for a, b in zip(inline, workers, strict=True):
        np.testing.assert_array_equal(a.features, b.features)


def test_bf16_autocast_stays_close_to_fp32(stores, tiny_backbone) -> None:
    """Stated tolerance for reduced precision: cosine similarity >= 0.999 per tile embedding."""
    backbone = load_backbone(tiny_backbone, "random", seed=0)
    spec = EmbeddingSpec(k=5)
    (fp32,) = embed_slides(stores[:1], backbone, spec, _cpu())
    (bf16,) = embed_slides(stores[:1], backbone, spec, _cpu(precision="bf16"))
    a, b = fp32.features, bf16.features
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() >= 0.999
    assert not np.array_equal(a, b)  # autocast really ran in bf16


def test_all_tiles_and_plan(stores) -> None:
    plan = plan_slide(stores[0], EmbeddingSpec(k=None))
    np.testing.assert_array_equal(plan.indices, np.arange(5))
    assert plan.slide_id == "slide-0" and plan.tile_px == 598


def test_wrong_output_shape_names_the_backbone(tmp_path, tiny_backbone) -> None:
    store = write_tile_store(tmp_path / "s.h5", 2, slide_id="s")
    backbone = load_backbone(tiny_backbone, "random")
    object.__setattr__(backbone, "dim", TINY_DIM + 1)  # frozen record: pretend a wrong registry
    with pytest.raises(FeatureError, match=rf"backbone tiny_test returned .*\(2, {TINY_DIM + 1}\)"):
        list(embed_slides([store], backbone, EmbeddingSpec(k=2), _cpu()))
    with pytest.raises(FeatureError, match="k must be >= 1"):
        EmbeddingSpec(k=0)


def test_device_side_jpeg_decode_matches_host_decode(stores, tiny_backbone) -> None:
    """decode=device hands raw JPEG bytes to torchvision's decoder on the compute device (nvJPEG
    on CUDA); on the CPU it is the same libjpeg decode, so the features are identical."""
    backbone = load_backbone(tiny_backbone, "random", seed=0)
    spec = EmbeddingSpec(k=4, seed=1)
    host = list(embed_slides(stores, backbone, spec, _cpu(batch_size=3)))
    device = list(embed_slides(stores, backbone, spec, _cpu(batch_size=3, decode="device")))
    for a, b in zip(host, device, strict=True):
        np.testing.assert_array_equal(a.features, b.features)
