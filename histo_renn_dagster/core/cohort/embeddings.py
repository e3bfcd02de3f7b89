"""Read the per-slide embedding vectors the cohort table needs.

A slide embedding is an HDF5 file (written by the features step) with datasets ``indices`` (k,),
``features`` (k, D) and ``mean`` (D,) float32, and attributes such as ``backbone``. The cohort table
only needs ``mean`` (and ``features`` to recognise a slide without tissue tiles, whose embedding is
well-formed but empty: k = 0, ``mean`` NaN). A missing file means "not materialized yet" (None), not an error, so the table
can be rebuilt while a backfill is still running; a file that exists but is malformed is an error
naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from histo_renn_dagster.core.errors import EmbeddingFileError


@dataclass(frozen=True)
class SlideEmbedding:
    file_id: str
    mean: np.ndarray  # (D,) float32, finite unless ``empty``
    backbone: str | None
    empty: bool = False  # the slide had no tissue tiles: k = 0 and ``mean`` is undefined (NaN)


def read_slide_embedding(path: str | Path, file_id: str) -> SlideEmbedding:
    """The ``mean`` vector and backbone of one embedding file; EmbeddingFileError if malformed."""
    path = Path(path)
    where = f"embedding file {str(path)!r} (slide {file_id})"
    try:
        with h5py.File(path, "r") as h5:
            if "mean" not in h5:
                raise EmbeddingFileError(f"{where}: has no 'mean' dataset (found {sorted(h5)})")
            dataset = h5["mean"]
            if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1 or dataset.shape[0] < 1:
                shape = getattr(dataset, "shape", None)
                raise EmbeddingFileError(f"{where}: 'mean' must be a 1-d vector, got {shape}")
            if dataset.dtype.kind != "f":
                raise EmbeddingFileError(
                    f"{where}: 'mean' must be floating point, got {dataset.dtype}"
                )
            mean = np.asarray(dataset[()], dtype=np.float32)
            backbone = h5.attrs.get("backbone")
            features = h5.get("features")
            empty = (
                isinstance(features, h5py.Dataset) and features.ndim == 2 and not features.shape[0]
            )
    except EmbeddingFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise EmbeddingFileError(f"{where}: cannot be read as HDF5 ({exc})") from exc
    if not empty and not np.isfinite(mean).all():
        raise EmbeddingFileError(f"{where}: 'mean' holds non-finite values")
    if isinstance(backbone, bytes):
        backbone = backbone.decode("utf-8", "replace")
    return SlideEmbedding(file_id, mean, None if backbone is None else str(backbone), empty)


class EmbeddingSource(Protocol):
    def get(self, file_id: str) -> SlideEmbedding | None:
        """The slide's embedding, None if not materialized; EmbeddingFileError if malformed."""
        ...


@dataclass(frozen=True)
class FileEmbeddings:
    """Embeddings at ``path_for(file_id)``, e.g. ``LakeLayout.embedding_path``."""

    path_for: Callable[[str], Path]

    def get(self, file_id: str) -> SlideEmbedding | None:
        path = self.path_for(file_id)
        if not path.is_file():
            return None
        return read_slide_embedding(path, file_id)


def directory_embeddings(directory: str | Path) -> FileEmbeddings:
    """Embeddings named ``<file_id>.h5`` in one directory (the lake's layout, for local use)."""
    root = Path(directory)
    return FileEmbeddings(lambda file_id: root / f"{file_id}.h5")
