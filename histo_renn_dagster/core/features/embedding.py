"""``embed_slides``: sampled tiles of many tile stores -> per-tile and mean embeddings.

The data path is built so the accelerator never waits: JPEG tiles are decoded a whole batch at a
time (in DataLoader worker processes when ``workers`` > 0) into one uint8 array, pinned, copied
to the device as uint8 and turned into normalised float there (``preprocess_tiles``). Batches run
across slide boundaries, so a backfill of many slides keeps every batch full. Device results are
copied back asynchronously and collected one batch later, so the host never blocks the GPU
between batches. Everything runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision.io
from torch.utils.data import DataLoader, Dataset

from histo_renn_dagster.core.errors import FeatureError
from histo_renn_dagster.core.features.backbones import Backbone
from histo_renn_dagster.core.features.compute import ResolvedCompute, autocast, determinism
from histo_renn_dagster.core.features.sampling import REFERENCE_K, sample_tile_indices
from histo_renn_dagster.core.features.transforms import preprocess_tiles
from histo_renn_dagster.core.wsi.store import TileStore


@dataclass(frozen=True)
class EmbeddingSpec:
    """Which tiles to embed: ``k`` per slide (None: all), sampled with the global ``seed``."""

    k: int | None = REFERENCE_K
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise FeatureError(f"k must be >= 1 (or None for all tiles), got {self.k}")


@dataclass(frozen=True)
class SlidePlan:
    """The sampled tiles of one tile store."""

    store_path: Path
    slide_id: str
    n_tiles: int
    tile_px: int
    indices: np.ndarray  # (k,) int64, sorted
    coords: np.ndarray  # (k, 2) int64 level-0 x, y of the sampled tiles


@dataclass(frozen=True)
class SlideEmbedding:
    """Per-tile features of the sampled tiles and their mean (NaN when the slide has no tiles)."""

    plan: SlidePlan
    features: np.ndarray  # (k, D) float32
    mean: np.ndarray  # (D,) float32

    @property
    def slide_id(self) -> str:
        return self.plan.slide_id

    @property
    def k(self) -> int:
        return len(self.plan.indices)


def plan_slide(store_path: str | os.PathLike[str], spec: EmbeddingSpec) -> SlidePlan:
    """Open a tile store and sample its tiles (seeded by ``spec.seed`` and its ``slide_id``)."""
    with TileStore(store_path) as store:
        slide_id = str(store.attrs["slide_id"])
        indices = sample_tile_indices(len(store), spec.k, seed=spec.seed, slide_id=slide_id)
        return SlidePlan(
            store_path=Path(store_path),
            slide_id=slide_id,
            n_tiles=len(store),
            tile_px=store.tile_px,
            indices=indices,
            coords=store.coords[indices].astype(np.int64).reshape(-1, 2),
        )


def plan_batches(plans: Sequence[SlidePlan], batch_size: int) -> list[list[tuple[int, int]]]:
    """``(slide position, tile index)`` batches in slide order; a batch spans slides but breaks
    where the tile size changes (tiles of one batch are stacked into one array)."""
    batches: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    current_px = None
    for pos, plan in enumerate(plans):
        for index in plan.indices:
            if current and (len(current) == batch_size or plan.tile_px != current_px):
                batches.append(current)
                current = []
            current.append((pos, int(index)))
            current_px = plan.tile_px
    if current:
        batches.append(current)
    return batches


class TileBatches(Dataset):
    """Batch ``b`` -> ``(B, H, W, 3)`` uint8 tensor, or with ``raw`` the list of its encoded
    JPEG tiles (1-d uint8 tensors) for decoding on the device. Stores open lazily in whichever
    process reads them, so worker processes never share an HDF5 handle."""

    def __init__(
        self, paths: Sequence[Path], batches: list[list[tuple[int, int]]], *, raw: bool = False
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.batches = batches
        self.raw = raw
        self._stores: dict[int, TileStore] = {}
        self._files: dict[int, h5py.File] = {}

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> torch.Tensor | list[torch.Tensor]:
        items = self.batches[b]
        if self.raw:
            return [torch.from_numpy(np.asarray(self._jpegs(p)[i])) for p, i in items]
        first = self._store(items[0][0])
        out = np.empty((len(items), first.tile_px, first.tile_px, 3), dtype=np.uint8)
        for row, (pos, index) in enumerate(items):
            out[row] = self._store(pos).read_tile(index)
        return torch.from_numpy(out)

    def _store(self, pos: int) -> TileStore:
        if pos not in self._stores:
            self._stores[pos] = TileStore(self.paths[pos])
        return self._stores[pos]

    def _jpegs(self, pos: int) -> h5py.Dataset:
        # The encoded tiles as stored (the ``jpeg`` dataset of the tile store layout); the store
        # was opened and validated by plan_slide already.
        if pos not in self._files:
            self._files[pos] = h5py.File(self.paths[pos], "r")
        dataset = self._files[pos]["jpeg"]
        assert isinstance(dataset, h5py.Dataset)
        return dataset

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        for h5 in self._files.values():
            h5.close()
        self._stores.clear()
        self._files.clear()


def embed_slides(
    store_paths: Sequence[str | os.PathLike[str]],
    backbone: Backbone,
    spec: EmbeddingSpec,
    compute: ResolvedCompute,
) -> Iterator[SlideEmbedding]:
    """Embed the sampled tiles of every store; yields one result per store, in order, as soon as
    its last batch is back. The backbone's model is moved to ``compute.device``."""
    plans = [plan_slide(p, spec) for p in store_paths]
    batches = plan_batches(plans, compute.batch_size)
    on_device = compute.decode == "device"
    dataset = TileBatches([p.store_path for p in plans], batches, raw=on_device)
    loader = DataLoader(
        dataset,
        batch_size=None,  # the dataset already yields whole batches
        shuffle=False,
        num_workers=compute.workers,
        pin_memory=compute.is_cuda,
        prefetch_factor=4 if compute.workers else None,
    )
    # channels_last: the fast convolution layout on GPUs (tensor cores) and on CPUs (oneDNN).
    model = backbone.model.to(device=compute.device, memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]
    features = [np.empty((len(p.indices), backbone.dim), dtype=np.float32) for p in plans]
    filled = [0] * len(plans)
    next_slide = 0

    def finished() -> Iterator[SlideEmbedding]:
        nonlocal next_slide
        while next_slide < len(plans) and filled[next_slide] == len(plans[next_slide].indices):
            yield _result(plans[next_slide], features[next_slide])
            next_slide += 1

    def collect(pending: tuple[torch.Tensor, torch.cuda.Event | None, int]) -> None:
        host, event, b = pending
        if event is not None:
            event.synchronize()  # waits for this batch only; later batches keep running
        values = host.numpy()
        for row, (pos, _) in enumerate(batches[b]):
            features[pos][filled[pos]] = values[row]
            filled[pos] += 1

    def to_device(batch: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(batch, torch.Tensor):
            return batch.to(compute.device, non_blocking=True)
        # Batched decode where the model runs (nvJPEG on CUDA); (B, 3, H, W) viewed as NHWC.
        # torchvision 0.29 flags its image codecs deprecated (TorchCodec supersedes them); the
        # project pins torchvision < 0.30, where they work.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = torchvision.io.decode_jpeg(
                batch, mode=torchvision.io.ImageReadMode.RGB, device=compute.device
            )
        tiles = [decoded] if isinstance(decoded, torch.Tensor) else decoded
        return torch.stack(tiles).permute(0, 2, 3, 1)

    def forward(batch) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        with determinism(compute), torch.inference_mode():
            x = preprocess_tiles(to_device(batch), backbone.transform)
            with autocast(compute):
                out = model(x)
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), backbone.dim):
                raise FeatureError(
                    f"backbone {backbone.name} returned {_describe(out)}, expected "
                    f"({len(x)}, {backbone.dim})"
                )
            # A non-blocking copy into pinned memory, collected after the next batch is queued.
            host = out.float().to("cpu", non_blocking=True)
        event = torch.cuda.Event() if compute.is_cuda else None
        if event is not None:
            event.record()
        return host, event

    # Torch's global modes are entered per batch, never across a yield, so the caller's code
    # between results runs in its own torch state.
    pending = None
    try:
        yield from finished()  # slides without tiles
        for b, batch in enumerate(loader):
            host, event = forward(batch)
            if pending is not None:
                collect(pending)
                yield from finished()
            pending = (host, event, b)
        if pending is not None:
            collect(pending)
            yield from finished()
    finally:
        dataset.close()
    if next_slide != len(plans):  # pragma: no cover - guards the bookkeeping above
        raise FeatureError(f"only {next_slide} of {len(plans)} slides were completed")


def _result(plan: SlidePlan, features: np.ndarray) -> SlideEmbedding:
    dim = features.shape[1]
    if len(features):
        mean = features.astype(np.float64).mean(axis=0).astype(np.float32)
    else:
        mean = np.full(dim, np.nan, dtype=np.float32)  # undefined: the slide has no tissue tiles
    return SlideEmbedding(plan=plan, features=features, mean=mean)


def _describe(out: object) -> str:
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    return f"a {type(out).__name__}"
