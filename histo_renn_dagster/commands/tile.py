"""`histo-renn tile`: one slide -> one HDF5 tile store, the same core code as slide_tiles."""

from __future__ import annotations

import argparse
from pathlib import Path

from histo_renn_dagster.commands.output import emit
from histo_renn_dagster.core.errors import SlideError


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"--mpp must be a positive number (um/px), got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from histo_renn_dagster.core.wsi.tiling import TilingSpec, tile_command_summary, tile_slide

    slide, out = Path(args.slide), Path(args.out)
    spec = TilingSpec(drop_flagged=args.drop_flagged, direct_jpeg=not args.openslide_only)
    try:
        result = tile_slide(
            slide,
            out,
            spec,
            slide_id=args.slide_id,
            mpp_override=args.mpp,
            previews_dir=Path(args.previews) if args.previews else None,
        )
    except OSError as exc:  # e.g. an output folder that cannot be created or written
        raise SlideError(f"{slide}: cannot write {out}: {exc}") from exc
    emit(tile_command_summary(result))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tile",
        help="tile one slide into an HDF5 tile store (the slide_tiles asset, outside Dagster)",
        description="Tile SLIDE into STORE.h5: Otsu tissue mask, 598-px tiles at 0.5 um/px with "
        "more than 80%% tissue, JPEG q90, QC flags. Prints one JSON line with tiles, mpp0, "
        "mpp_source, effective_mpp, seconds and out. The store is written atomically: on failure "
        "nothing is left at --out and the exit status is 1.",
    )
    p.add_argument(
        "slide", metavar="SLIDE", help="a slide file OpenSlide can read (SVS, NDPI, ...)"
    )
    p.add_argument("--out", required=True, metavar="STORE.h5", help="tile store to write")
    p.add_argument(
        "--mpp",
        type=positive_float,
        default=None,
        help="level-0 um/px override for a slide with missing or wrong resolution metadata",
    )
    p.add_argument("--slide-id", default=None, help="id stored in the store (default: file stem)")
    p.add_argument(
        "--previews", default=None, metavar="DIR", help="also write thumbnail + mask overlay PNGs"
    )
    p.add_argument("--drop-flagged", action="store_true", help="drop QC-flagged tiles")
    p.add_argument(
        "--openslide-only", action="store_true", help="read every tile through OpenSlide"
    )
    p.set_defaults(handler=run)
