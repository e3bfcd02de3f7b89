"""Frozen-CNN slide embeddings, one ``slides`` partition (GDC file id) each, in the ``gpu`` pool."""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

import time
import warnings

import dagster as dg
from pydantic import Field

from histo_renn_dagster.defs.executors import GPU_STEP_TAGS
from histo_renn_dagster.defs.partitions import slides_partitions
from histo_renn_dagster.defs.resources import ComputeResource, LayoutResource

GPU_POOL = "gpu"
# A backfill hands one run up to this many slides: the model loads once and batches run across
# slide boundaries, which keeps the accelerator busy.
MAX_SLIDES_PER_RUN = 64
CHECKS = ("embedding_finite", "embedding_dimension", "embedding_indices_valid")


class EmbeddingConfig(dg.Config):
    backbone: str = Field(
        default="inception_v3", description="inception_v3 | resnet50 | timm:<model name>"
    )
    weights: str = Field(
        default="pretrained",
        description="pretrained (framework cache, never downloaded) | random | path to a "
        "state-dict file",
    )
    weights_sha256: str | None = Field(
        default=None, description="sha256 of a weights file (else its .sha256 sidecar)"
    )
    k: int | None = Field(
        default=32, ge=1, description="Tiles sampled per slide (reference: 32); null = all"
    )
    seed: int = Field(default=0, description="Global sampling seed (mixed with each slide id)")


# backfill_policy is marked beta in Dagster 1.13; it is what lets one run embed many slides.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _slide_embedding_asset = dg.asset(
        partitions_def=slides_partitions,
        group_name="features",
        kinds={"pytorch", "hdf5"},
        deps=[dg.AssetKey("slide_tiles")],
        pool=GPU_POOL,
        op_tags=GPU_STEP_TAGS,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_SLIDES_PER_RUN),
        check_specs=[
            dg.AssetCheckSpec(
                "embedding_finite", asset="slide_embedding", description="features and mean finite"
            ),
            dg.AssetCheckSpec(
                "embedding_dimension",
                asset="slide_embedding",
                description="features and mean have the backbone's dimension",
            ),
            dg.AssetCheckSpec(
                "embedding_indices_valid",
                asset="slide_embedding",
                description="sampled tile indices distinct, inside the tile store, min(k, tiles) many",
            ),
        ],
    )


@_slide_embedding_asset
def slide_embedding(
    context: dg.AssetExecutionContext,
    config: EmbeddingConfig,
    layout: LayoutResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """Per-tile and mean frozen-CNN features of each slide's sampled tiles, at
    ``lake/embeddings/<file_id>.h5`` (Inception-v3: 2048-d)."""
    from histo_renn_dagster.core.features import (
        EmbeddingSpec,
        embed_store_files,
        load_backbone,
    )

    lake = layout.lake()
    file_ids = list(context.partition_keys)
    jobs = [(lake.tiles_path(f), lake.embedding_path(f)) for f in file_ids]
    missing = [str(store) for store, _ in jobs if not store.is_file()]
    if missing:
        raise dg.Failure(f"tile store(s) missing, materialize slide_tiles first: {missing}")
    resolved = compute.resolve()
    backbone = load_backbone(
        config.backbone, config.weights, weights_sha256=config.weights_sha256, seed=config.seed
    )
    context.log.info(
        f"{backbone.name} ({backbone.weights.source}) on {resolved.device} "
        f"[{resolved.device_name}], {resolved.precision}, {len(jobs)} slide(s)"
    )
    spec = EmbeddingSpec(k=config.k, seed=config.seed)
    started = time.perf_counter()
    results = []
    for result in embed_store_files(jobs, backbone, spec, resolved):
        context.log.info(f"{result.slide_id}: {result.k} of {result.n_tiles} tiles -> {result.out}")
        results.append(result)
    seconds = time.perf_counter() - started
    tiles = sum(r.k for r in results)
    metadata = {
        "backbone": backbone.name,
        "weights": backbone.weights.kind,
        "weights_source": backbone.weights.source,
        "weights_sha256": backbone.weights.sha256 or "",
        "device": str(resolved.device),
        "device_name": resolved.device_name,
        "precision": resolved.precision,
        "dim": backbone.dim,
        "k": results[0].k if len(results) == 1 else tiles,
        "k_requested": config.k if config.k is not None else "all",
        "n_tiles": sum(r.n_tiles for r in results),
        "slides_in_run": len(results),
        "seed": config.seed,
        "tiles_per_s": round(tiles / seconds, 3) if seconds > 0 else 0.0,
        "seconds": round(seconds, 3),
    }
    if len(results) == 1:
        metadata["path"] = dg.MetadataValue.path(str(results[0].out))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=embedding_check_results(
            [r.out for r in results], [r.tile_store for r in results], backbone.dim
        ),
    )


def embedding_check_results(outs, stores, expected_dim: int) -> list[dg.AssetCheckResult]:
    """One result per check over every slide of the run; a failure names the slides."""
    from histo_renn_dagster.core.features import check_embedding, read_embedding
    from histo_renn_dagster.core.wsi.store import TileStore

    found: dict[str, list[str]] = {"finite": [], "dimension": [], "indices": [], "empty": []}
    for out, store_path in zip(outs, stores, strict=True):
        with TileStore(store_path) as store:
            n_tiles = len(store)
        for key, problems in check_embedding(
            read_embedding(out), expected_dim=expected_dim, n_tiles=n_tiles
        ).items():
            found[key] += problems
    # A slide without tissue tiles is written as a well-formed empty embedding (NaN mean): it is
    # flagged as a warning, not as broken data.
    finite_severity = dg.AssetCheckSeverity.ERROR if found["finite"] else dg.AssetCheckSeverity.WARN
    by_check = {
        "embedding_finite": (found["finite"] + found["empty"], finite_severity),
        "embedding_dimension": (found["dimension"], dg.AssetCheckSeverity.ERROR),
        "embedding_indices_valid": (found["indices"], dg.AssetCheckSeverity.ERROR),
    }
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=not problems,
            severity=severity,
            metadata={"slides": len(outs), "problems": "\n".join(problems) or "none"},
        )
        for name, (problems, severity) in by_check.items()
    ]
