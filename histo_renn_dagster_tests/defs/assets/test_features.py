"""slide_embedding materialized through Dagster into a temporary lake (tiny backbone, CPU)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from histo_renn_dagster.core.features import read_embedding
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.defs.assets.features import GPU_POOL, slide_embedding
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION
from histo_renn_dagster.defs.resources import ComputeResource, LayoutResource
from histo_renn_dagster_tests.core.features.helpers import (
    TINY,
    TINY_DIM,
    register_tiny,
    write_tile_store,
)

IDS = ["0b7c2c4e-4a8e-4e39-9d4c-1f5d2a3b4c5d", "7f1e2d3c-5b6a-4789-8a9b-0c1d2e3f4a5b"]


@pytest.fixture
def lake(tmp_path: Path) -> LakeLayout:
    register_tiny()
    layout = LakeLayout(tmp_path)
    for i, (file_id, n) in enumerate(zip(IDS, (6, 2), strict=True)):
        write_tile_store(layout.tiles_path(file_id), n, slide_id=file_id, seed=i)
    return layout


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        inst.add_dynamic_partitions(SLIDES_PARTITION, IDS)
        yield inst


def _run(lake: LakeLayout, instance, *, tags=None, partition_key=None, k=4):
    return dg.materialize(
        [slide_embedding],
        instance=instance,
        partition_key=partition_key,
        tags=tags,
        resources={
            "layout": LayoutResource(root=str(lake.root)),
            "compute": ComputeResource(device="cpu", batch_size=4),
        },
        run_config={
            "ops": {"slide_embedding": {"config": {"backbone": TINY, "weights": "random", "k": k}}}
        },
    )


def test_one_partition_writes_the_lake_file_with_metadata_and_checks(lake, instance) -> None:
    result = _run(lake, instance, partition_key=IDS[0])
    assert result.success
    emb = read_embedding(lake.embedding_path(IDS[0]))
    assert emb.features.shape == (4, TINY_DIM) and emb.indices.dtype == np.int64
    assert emb.attrs["weights"] == "random" and emb.attrs["tile_store"] == str(
        lake.tiles_path(IDS[0])
    )
    (mat,) = result.asset_materializations_for_node("slide_embedding")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert mat.partition == IDS[0]
    assert meta["backbone"] == TINY and meta["weights"] == "random" and meta["device"] == "cpu"
    assert meta["k"] == 4 and meta["dim"] == TINY_DIM and meta["tiles_per_s"] > 0
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "embedding_finite": True,
        "embedding_dimension": True,
        "embedding_indices_valid": True,
    }
    assert not lake.embedding_path(IDS[1]).exists()
    # Same config, same slide: the same sampled tiles and the same features again.
    assert _run(lake, instance, partition_key=IDS[0]).success
    again = read_embedding(lake.embedding_path(IDS[0]))
    np.testing.assert_array_equal(emb.indices, again.indices)
    np.testing.assert_array_equal(emb.features, again.features)


def test_a_backfill_range_embeds_every_slide_in_one_run(lake, instance) -> None:
    tags = {
        "dagster/asset_partition_range_start": IDS[0],
        "dagster/asset_partition_range_end": IDS[1],
    }
    result = _run(lake, instance, tags=tags)
    assert result.success
    assert sorted(
        m.partition for m in result.asset_materializations_for_node("slide_embedding")
    ) == sorted(IDS)
    assert [read_embedding(lake.embedding_path(f)).k for f in IDS] == [4, 2]


def test_missing_tile_store_fails_with_a_clear_message(lake, instance) -> None:
    lake.tiles_path(IDS[1]).unlink()
    with pytest.raises(dg.Failure, match="materialize slide_tiles first"):
        _run(lake, instance, partition_key=IDS[1])


def test_asset_runs_in_the_gpu_pool_after_slide_tiles() -> None:
    spec = slide_embedding.specs_by_key[dg.AssetKey("slide_embedding")]
    assert slide_embedding.op.pool == GPU_POOL == "gpu"
    assert {d.asset_key for d in spec.deps} == {dg.AssetKey("slide_tiles")}
    assert slide_embedding.partitions_def.name == SLIDES_PARTITION


def test_compute_resource_reports_the_resolved_device() -> None:
    resolved = ComputeResource(device="cpu", precision="bf16", batch_size=8).resolve()
    assert resolved.as_record() == {
        "device": "cpu",
        "device_name": "cpu",
        "precision": "bf16",
        "batch_size": 8,
        "workers": 0,
        "deterministic": False,
        "decode": "host",
    }
