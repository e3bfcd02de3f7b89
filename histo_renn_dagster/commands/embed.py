"""`histo-renn embed`: one tile store -> one embedding file, the same core code as slide_embedding."""

from __future__ import annotations

import argparse

from histo_renn_dagster.commands.output import emit
from histo_renn_dagster.core.errors import FeatureError


def parse_k(text: str) -> int | None:
    if text == "all":
        return None
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"--k must be a positive integer or 'all', got {text!r}")
    return k


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from histo_renn_dagster.core.features import (
        ComputeSpec,
        EmbeddingSpec,
        embed_store_files,
        load_backbone,
        resolve_compute,
    )

    store = Path(args.store)
    if not store.is_file():
        raise FeatureError(f"tile store {store} does not exist")
    compute = resolve_compute(
        ComputeSpec(
            device=args.device,
            precision=args.precision,
            batch_size=args.batch_size,
            workers=args.workers,
            deterministic=args.deterministic,
            decode=args.decode,
        )
    )
    backbone = load_backbone(
        args.backbone, args.weights, weights_sha256=args.weights_sha256, seed=args.seed
    )
    (result,) = embed_store_files(
        [(store, Path(args.out))], backbone, EmbeddingSpec(k=args.k, seed=args.seed), compute
    )
    emit(
        {
            "slide_id": result.slide_id,
            "k": result.k,
            "n_tiles": result.n_tiles,
            "dim": result.dim,
            "backbone": backbone.name,
            "weights": backbone.weights.kind,
            "weights_sha256": backbone.weights.sha256 or "",
            "device": str(compute.device),
            "precision": compute.precision,
            "seconds": round(result.seconds, 3),
            "out": str(result.out),
        }
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="embed k sampled tiles of one tile store with a frozen CNN",
        description="Sample k tiles of a tile store (seeded by --seed and the store's slide id), "
        "embed them with a frozen backbone and write per-tile features, their mean and the "
        "sampled indices to an HDF5 file. Prints one JSON line.",
    )
    p.add_argument("store", metavar="STORE.h5", help="tile store written by `histo-renn tile`")
    p.add_argument("--out", required=True, metavar="EMB.h5", help="embedding file to write")
    p.add_argument(
        "--backbone", default="inception_v3", help="inception_v3 | resnet50 | timm:<model name>"
    )
    p.add_argument(
        "--weights",
        default="pretrained",
        help="pretrained (torchvision/timm cache; never downloaded) | random | PATH to a "
        "state-dict file (default pretrained)",
    )
    p.add_argument("--weights-sha256", default=None, help="sha256 of --weights PATH")
    p.add_argument("--k", type=parse_k, default=32, help="tiles per slide or 'all' (default 32)")
    p.add_argument("--seed", type=int, default=0, help="global sampling seed (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<i>")
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 | fp16 (default fp32)")
    p.add_argument("--batch-size", type=int, default=32, help="tiles per forward pass")
    p.add_argument("--workers", type=int, default=0, help="DataLoader decode processes")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels")
    p.add_argument(
        "--decode", default="host", help="host (CPU) | device (nvJPEG on CUDA) JPEG decoding"
    )
    p.set_defaults(handler=run)
