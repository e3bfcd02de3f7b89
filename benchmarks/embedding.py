"""Embedding benchmark: backbone-only vs end-to-end from tile stores vs the reference data path.

Run from the repository root: ``.venv/bin/python benchmarks/embedding.py`` (add ``--device cuda``
or leave ``auto`` on a GPU machine; ``--precision bf16`` for autocast). Side by side in one run,
same backbone, device, precision and batch size:

(a) backbone only: a synthetic batch already on the device (channels_last), forward passes only;
    the ceiling for any data path;
(b) ours end to end: ``embed_slides`` over tile stores (seeded sampling, batched JPEG decode,
    uint8 transfer, on-device resize + normalisation, batches spanning slides); goal (b)/(a) >= 0.9;
(c) reference: per tile PIL decode + PIL resize + numpy normalisation, one slide per batch,
    fp32, NCHW, as the original scripts did.

Tiles are real H&E: 598-px crops of CMU-1-Small-Region.svs (flipped/rotated for variety),
JPEG-encoded into tile stores exactly as ``tile_slide`` writes them. Random weights: throughput
does not depend on weight values, and no network is needed. (b) and (c) embed the same tiles, so
their agreement (cosine similarity) is printed too.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CMU = ROOT / "histo_renn_dagster_tests" / "data" / "slides" / "CMU-1-Small-Region.svs"
TILE = 598


def write_stores(root: Path, n_slides: int, tiles_per_slide: int) -> list[Path]:
    import openslide

    from histo_renn_dagster.core.wsi.store import TileStoreWriter

    slide = openslide.OpenSlide(str(CMU))
    width, height = slide.dimensions
    rng = np.random.default_rng(0)
    paths = []
    for s in range(n_slides):
        path = root / f"slide{s}.h5"
        with TileStoreWriter(path, tile_px=TILE, jpeg_quality=90) as writer:
            jpegs, coords = [], []
            for i in range(tiles_per_slide):
                x, y = int(rng.integers(0, width - TILE)), int(rng.integers(0, height - TILE))
                tile = np.asarray(slide.read_region((x, y), 0, (TILE, TILE)).convert("RGB"))
                tile = np.rot90(tile, k=i % 4) if (i // 4) % 2 else np.fliplr(tile)
                jpegs.append(writer.encode(np.ascontiguousarray(tile)))
                coords.append((x, y))
            n = len(jpegs)
            rows = {
                "coords": coords,
                "tissue_fraction": [1.0] * n,
                "qc_pen_fraction": [0.0] * n,
                "qc_laplacian_var": [0.0] * n,
                "qc_pen": [False] * n,
                "qc_blur": [False] * n,
            }
            writer.append(rows, jpegs)
            writer.commit({"slide_id": f"bench-{s}", "level0_tile_px": TILE, "mpp0": 0.5})
        paths.append(path)
    slide.close()
    return paths


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def backbone_only(backbone, compute, n_tiles: int) -> float:
    import torch

    from histo_renn_dagster.core.features.compute import autocast

    model = backbone.model.to(compute.device, memory_format=torch.channels_last)
    px = backbone.input_px
    x = torch.randn(compute.batch_size, 3, px, px, device=compute.device)
    x = x.contiguous(memory_format=torch.channels_last)
    batches = max(1, round(n_tiles / compute.batch_size))
    with torch.inference_mode(), autocast(compute):
        model(x)  # warm-up (cuDNN autotuning, allocator)
        sync(compute.device)
        started = time.perf_counter()
        for _ in range(batches):
            model(x).float()
        sync(compute.device)
    return batches * compute.batch_size / (time.perf_counter() - started)


def ours(backbone, compute, stores, spec):
    from histo_renn_dagster.core.features import embed_slides

    list(embed_slides(stores[:1], backbone, type(spec)(k=1, seed=spec.seed), compute))  # warm-up
    started = time.perf_counter()
    results = list(embed_slides(stores, backbone, spec, compute))
    seconds = time.perf_counter() - started
    return sum(r.k for r in results) / seconds, results


def reference(backbone, compute, stores, results):
    """The original data path: PIL per tile, numpy normalisation, one slide per batch, fp32."""
    import h5py
    import torch
    from PIL import Image

    model = backbone.model.to(compute.device, memory_format=torch.contiguous_format)
    px, mean, std = backbone.input_px, np.array(backbone.transform.mean), backbone.transform.std
    std = np.array(std)
    features, tiles = [], 0

    def slide_batch(path: Path, indices: np.ndarray) -> torch.Tensor:
        with h5py.File(path, "r") as h5:
            jpegs = h5["jpeg"]
            assert isinstance(jpegs, h5py.Dataset)
            arrays = []
            for i in indices:
                image = Image.open(io.BytesIO(jpegs[int(i)].tobytes())).convert("RGB")
                image = image.resize((px, px), Image.Resampling.BILINEAR)
                a = (np.asarray(image, np.float32) / 255.0 - mean) / std
                arrays.append(a.transpose(2, 0, 1).astype(np.float32))
        return torch.from_numpy(np.stack(arrays)).to(compute.device)

    with torch.inference_mode():
        model(slide_batch(stores[0], results[0].plan.indices[:1]))  # warm-up
        sync(compute.device)
        started = time.perf_counter()
        for path, result in zip(stores, results, strict=True):
            out = model(slide_batch(path, result.plan.indices))
            features.append(out.float().cpu().numpy())
            tiles += len(result.plan.indices)
        seconds = time.perf_counter() - started
    return tiles / seconds, features


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backbone", default="inception_v3")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 | fp16 for (a) and (b)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 CPU, 128 GPU")
    parser.add_argument("--workers", type=int, default=None, help="default 0 CPU, 6 GPU")
    parser.add_argument("--slides", type=int, default=None, help="default 2 CPU, 16 GPU")
    parser.add_argument("--k", type=int, default=None, help="tiles per slide; default 8 / 32")
    args = parser.parse_args()

    import torch

    from histo_renn_dagster.core.features import (
        ComputeSpec,
        EmbeddingSpec,
        load_backbone,
        resolve_compute,
    )

    gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    batch = args.batch_size or (128 if gpu else 8)
    workers = args.workers if args.workers is not None else (6 if gpu else 0)
    slides, k = args.slides or (16 if gpu else 2), args.k or (32 if gpu else 8)
    compute = resolve_compute(
        ComputeSpec(device=args.device, precision=args.precision, batch_size=batch, workers=workers)
    )
    backbone = load_backbone(args.backbone, "random", seed=0)
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        stores = write_stores(Path(tmp), slides, k)
        n = slides * k
        print(
            f"## {backbone.name} ({backbone.dim}-d, {backbone.input_px} px), {compute.device} "
            f"[{compute.device_name}], {compute.precision}, batch {batch}, workers {workers}, "
            f"{slides} slides x {k} tiles, torch threads {torch.get_num_threads()}"
        )
        a = backbone_only(backbone, compute, n)
        b, results = ours(backbone, compute, stores, EmbeddingSpec(k=k, seed=0))
        b_dev = None
        if gpu:  # JPEG decode on the GPU (nvJPEG) instead of CPU loader workers
            b_dev, _ = ours(
                backbone, replace(compute, decode="device"), stores, EmbeddingSpec(k=k, seed=0)
            )
        c, ref_features = reference(backbone, compute, stores, results)
    ours_features = np.concatenate([r.features for r in results])
    ref = np.concatenate(ref_features)
    cosine = (ours_features * ref).sum(1) / (
        np.linalg.norm(ours_features, axis=1) * np.linalg.norm(ref, axis=1)
    )
    print(f"{'path':<52}{'tiles/s':>10}{'vs (a)':>9}")
    print(f"{'(a) backbone only, synthetic batch on device':<52}{a:>10.2f}{1:>9.2f}")
    print(f"{'(b) ours: tile stores end to end':<52}{b:>10.2f}{b / a:>9.2f}")
    if b_dev is not None:
        print(
            f"{'(b2) ours, JPEG decode on the device (nvJPEG)':<52}{b_dev:>10.2f}{b_dev / a:>9.2f}"
        )
        b = max(b, b_dev)
    print(f"{'(c) reference: PIL per tile, slide batches, fp32':<52}{c:>10.2f}{c / a:>9.2f}")
    print(
        f"ours / reference = {b / c:.2f}; goal (b)/(a) >= 0.90: {'met' if b / a >= 0.9 else 'NOT met'}"
    )
    print(
        f"agreement (b) vs (c) on the same tiles: min cosine {cosine.min():.6f}, "
        f"max |diff| / max |ref| = {np.abs(ours_features - ref).max() / np.abs(ref).max():.2e}"
    )


if __name__ == "__main__":
    main()
