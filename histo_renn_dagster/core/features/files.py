"""``embed_store_files``: tile stores in, one embedding file per store out (asset and CLI share it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from histo_renn_dagster.core.errors import FeatureError
from histo_renn_dagster.core.features.backbones import Backbone
from histo_renn_dagster.core.features.compute import ResolvedCompute
from histo_renn_dagster.core.features.embedding import EmbeddingSpec, embed_slides
from histo_renn_dagster.core.features.store import embedding_attrs, write_embedding

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class EmbeddingResult:
    """One written embedding file; ``seconds`` is the wall time since the run started."""

    slide_id: str
    tile_store: Path
    out: Path
    n_tiles: int
    k: int
    dim: int
    seconds: float


def embed_store_files(
    jobs: Sequence[tuple[PathLike, PathLike]],
    backbone: Backbone,
    spec: EmbeddingSpec,
    compute: ResolvedCompute,
) -> Iterator[EmbeddingResult]:
    """Embed each ``(tile store, output file)`` pair; batches span stores; each file is written
    atomically as soon as its slide is done."""
    outs = [Path(out) for _, out in jobs]
    if len(set(outs)) != len(outs):
        raise FeatureError("two tile stores would write the same embedding file")
    started = time.perf_counter()
    results = embed_slides([store for store, _ in jobs], backbone, spec, compute)
    for out, embedding in zip(outs, results, strict=True):
        write_embedding(out, embedding, embedding_attrs(embedding, backbone, compute, spec))
        yield EmbeddingResult(
            slide_id=embedding.slide_id,
            tile_store=embedding.plan.store_path,
            out=out,
            n_tiles=embedding.plan.n_tiles,
            k=embedding.k,
            dim=backbone.dim,
            seconds=time.perf_counter() - started,
        )
