"""Reproducible tile sampling: k tiles per slide without replacement, seeded per slide.

The per-slide seed is a hash of the global seed and the slide id, so a slide's sample does not
depend on which other slides share a run, on their order, or on the process; two slides with the
same tile count still get different samples. The sampled indices are stored with the features,
so a result can be traced back to its tiles even if numpy's generators change one day.
"""

from __future__ import annotations

import hashlib

import numpy as np

from histo_renn_dagster.core.errors import FeatureError

REFERENCE_K = 32  # tiles per slide in the reference study


def slide_seed(seed: int, slide_id: str) -> int:
    """A 64-bit seed from the global seed and the slide id (stable across runs and platforms)."""
    digest = hashlib.sha256(f"histo-renn/tile-sample/{seed}/{slide_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def sample_tile_indices(n_tiles: int, k: int | None, *, seed: int, slide_id: str) -> np.ndarray:
    """Sorted int64 indices of ``min(k, n_tiles)`` distinct tiles (all tiles when ``k`` is None).

    Sorted, because the mean does not depend on order and sorted reads are sequential in the
    HDF5 store.
    """
    if n_tiles < 0:
        raise FeatureError(f"slide {slide_id}: tile count {n_tiles} is negative")
    if k is not None and k < 1:
        raise FeatureError(f"slide {slide_id}: k must be >= 1 (or all tiles), got {k}")
    if k is None or k >= n_tiles:
        return np.arange(n_tiles, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(slide_seed(seed, slide_id)))
    return np.sort(rng.permutation(n_tiles)[:k]).astype(np.int64)
