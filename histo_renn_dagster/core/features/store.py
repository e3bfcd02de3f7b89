"""Per-slide HDF5 embedding files: self-describing, written atomically, checkable.

Layout: ``indices`` (k,) int64 sampled tile rows of the tile store; ``coords`` (k, 2) int64 their
level-0 x, y; ``features`` (k, D) float32 per-tile embeddings; ``mean`` (D,) float32 the slide
embedding (NaN when the slide has no tiles). Attributes record the backbone, where its weights
came from (``weights: random`` included), the device and precision actually used, the seeds and
the tile store it was computed from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torchvision

from histo_renn_dagster import __version__
from histo_renn_dagster.core.atomic import atomic_path
from histo_renn_dagster.core.errors import EmbeddingStoreError
from histo_renn_dagster.core.features.backbones import Backbone
from histo_renn_dagster.core.features.compute import ResolvedCompute
from histo_renn_dagster.core.features.embedding import EmbeddingSpec, SlideEmbedding
from histo_renn_dagster.core.features.sampling import slide_seed

SCHEMA_VERSION = 1
ALL_TILES = -1  # the k_requested attribute when every tile was embedded
_DATASETS = ("indices", "coords", "features", "mean")


@dataclass(frozen=True)
class EmbeddingFile:
    path: Path
    indices: np.ndarray
    coords: np.ndarray
    features: np.ndarray
    mean: np.ndarray
    attrs: dict[str, Any]

    @property
    def k(self) -> int:
        return len(self.indices)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def embedding_attrs(
    embedding: SlideEmbedding,
    backbone: Backbone,
    compute: ResolvedCompute,
    spec: EmbeddingSpec,
) -> dict[str, Any]:
    """Provenance attributes of one slide's embedding file."""
    plan = embedding.plan
    return {
        "slide_id": plan.slide_id,
        "tile_store": str(plan.store_path),
        "n_tiles": plan.n_tiles,
        "k": embedding.k,
        "k_requested": ALL_TILES if spec.k is None else spec.k,
        "seed": spec.seed,
        "slide_seed": str(slide_seed(spec.seed, plan.slide_id)),  # uint64 does not fit int64
        "backbone": backbone.name,
        "dim": backbone.dim,
        "input_px": backbone.input_px,
        "normalize_mean": np.asarray(backbone.transform.mean, dtype=np.float64),
        "normalize_std": np.asarray(backbone.transform.std, dtype=np.float64),
        **backbone.weights.as_record(),
        "device": str(compute.device),
        "device_name": compute.device_name,
        "precision": compute.precision,
        "deterministic": compute.deterministic,
        "torch_version": str(torch.__version__),
        "torchvision_version": str(torchvision.__version__),
        "tool": "histo_renn_dagster.core.features.embed_slides",
        "tool_version": __version__,
    }


def write_embedding(
    path: str | os.PathLike[str], embedding: SlideEmbedding, attrs: Mapping[str, Any]
) -> Path:
    """Write one slide's embedding file atomically (temp file beside it, then rename)."""
    out = Path(path)
    k, dim = embedding.features.shape
    if embedding.plan.indices.shape != (k,) or embedding.mean.shape != (dim,):
        raise EmbeddingStoreError(
            f"{out}: inconsistent shapes: indices {embedding.plan.indices.shape}, features "
            f"{embedding.features.shape}, mean {embedding.mean.shape}"
        )
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("indices", data=embedding.plan.indices.astype(np.int64))
        h5.create_dataset("coords", data=embedding.plan.coords.astype(np.int64))
        h5.create_dataset("features", data=embedding.features.astype(np.float32))
        h5.create_dataset("mean", data=embedding.mean.astype(np.float32))
        for key, value in {**attrs, "schema_version": SCHEMA_VERSION}.items():
            h5.attrs[key] = "" if value is None else value
    return out


def read_embedding(path: str | os.PathLike[str]) -> EmbeddingFile:
    """Read and shape-check an embedding file."""
    p = Path(path)
    try:
        with h5py.File(p, "r") as h5:
            missing = [name for name in _DATASETS if name not in h5]
            if missing:
                raise EmbeddingStoreError(f"{p}: not an embedding file, missing {missing}")
            data = {name: _read_array(h5, name, p) for name in _DATASETS}
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h5.attrs.items()}
    except OSError as exc:
        raise EmbeddingStoreError(f"{p}: cannot open embedding file: {exc}") from exc
    features = data["features"]
    k = len(data["indices"])
    if features.ndim != 2 or features.shape[0] != k or data["coords"].shape != (k, 2):
        raise EmbeddingStoreError(
            f"{p}: features {features.shape} / coords {data['coords'].shape} do not match "
            f"{k} indices"
        )
    if data["mean"].shape != (features.shape[1],):
        raise EmbeddingStoreError(
            f"{p}: mean has shape {data['mean'].shape}, expected ({features.shape[1]},)"
        )
    return EmbeddingFile(path=p, attrs=attrs, **data)


def _read_array(h5: h5py.File, name: str, path: Path) -> np.ndarray:
    node = h5[name]
    if not isinstance(node, h5py.Dataset):
        raise EmbeddingStoreError(f"{path}: {name} is not a dataset")
    return np.asarray(node[()])


def check_embedding(
    emb: EmbeddingFile, *, expected_dim: int, n_tiles: int | None = None
) -> dict[str, list[str]]:
    """Problems found by each check (``finite``, ``dimension``, ``indices``, and ``empty`` for a
    slide without tiles, whose mean is undefined); empty lists pass.

    ``n_tiles``: the tile store's current tile count, when it can be read (stale indices after a
    re-tiling show up here); else the count recorded at embedding time is used.
    """
    name = emb.attrs.get("slide_id", emb.path.name)
    problems: dict[str, list[str]] = {"finite": [], "dimension": [], "indices": [], "empty": []}
    bad_rows = int((~np.isfinite(emb.features)).any(axis=1).sum())
    if bad_rows:
        problems["finite"].append(f"{name}: {bad_rows} of {emb.k} tile embeddings not finite")
    if emb.k == 0:
        problems["empty"].append(f"{name}: the slide has no tiles, its mean is undefined (NaN)")
    elif not np.isfinite(emb.mean).all():
        problems["finite"].append(f"{name}: mean embedding is not finite")
    if emb.dim != expected_dim or int(emb.attrs.get("dim", -1)) != expected_dim:
        problems["dimension"].append(
            f"{name}: dimension {emb.dim} (attr {emb.attrs.get('dim')}), expected {expected_dim}"
        )
    total = int(emb.attrs.get("n_tiles", -1)) if n_tiles is None else n_tiles
    idx = emb.indices
    if len(idx) and (idx.min() < 0 or idx.max() >= total):
        problems["indices"].append(
            f"{name}: sampled indices span {idx.min()}..{idx.max()}, store has {total} tiles"
        )
    if len(np.unique(idx)) != len(idx):
        problems["indices"].append(f"{name}: sampled indices repeat a tile")
    requested = int(emb.attrs.get("k_requested", ALL_TILES))
    expected_k = total if requested == ALL_TILES else min(requested, total)
    if emb.k != expected_k:
        problems["indices"].append(
            f"{name}: {emb.k} tiles sampled, expected min(k={requested}, {total} tiles) "
            f"= {expected_k}"
        )
    return problems
