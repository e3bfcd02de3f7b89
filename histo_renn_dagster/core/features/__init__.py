"""Frozen-CNN slide embeddings: backbone registry, reproducible tile sampling, batched embedding."""

from histo_renn_dagster.core.features.backbones import (
    DEFAULT_BACKBONE,
    Backbone,
    BackboneEntry,
    backbone_names,
    load_backbone,
    register_backbone,
)
from histo_renn_dagster.core.features.compute import ComputeSpec, ResolvedCompute, resolve_compute
from histo_renn_dagster.core.features.embedding import (
    EmbeddingSpec,
    SlideEmbedding,
    SlidePlan,
    embed_slides,
    plan_slide,
)
from histo_renn_dagster.core.features.files import EmbeddingResult, embed_store_files
from histo_renn_dagster.core.features.sampling import sample_tile_indices, slide_seed
from histo_renn_dagster.core.features.store import (
    EmbeddingFile,
    check_embedding,
    read_embedding,
    write_embedding,
)
from histo_renn_dagster.core.features.transforms import TransformSpec, preprocess_tiles
from histo_renn_dagster.core.features.weights import WeightsInfo

__all__ = [
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneEntry",
    "ComputeSpec",
    "EmbeddingFile",
    "EmbeddingResult",
    "EmbeddingSpec",
    "ResolvedCompute",
    "SlideEmbedding",
    "SlidePlan",
    "TransformSpec",
    "WeightsInfo",
    "backbone_names",
    "check_embedding",
    "embed_slides",
    "embed_store_files",
    "load_backbone",
    "plan_slide",
    "preprocess_tiles",
    "read_embedding",
    "register_backbone",
    "resolve_compute",
    "sample_tile_indices",
    "slide_seed",
    "write_embedding",
]
