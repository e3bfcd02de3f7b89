"""Disk budget for slides in the lake: free-space checks, finding and deleting a downloaded slide.

The full cohort is about 1 TB of slides, so a run checks the free space before a download and may
delete a slide once its tile store has been verified (the tiles are what later steps read).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from histo_renn_dagster.core.errors import InsufficientSpaceError, SlideOpenError
from histo_renn_dagster.core.gdc.download import SIDECAR_SUFFIX  # verified md5 beside a download
from histo_renn_dagster.core.gdc.paths import PARTIAL_SUFFIX  # a transfer still under way


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_free_space(
    folder: str | os.PathLike[str], needed_bytes: int, *, item: str, reserve_bytes: int = 0
) -> int:
    """Free bytes on ``folder``'s file system; InsufficientSpaceError when fewer than
    ``needed_bytes + reserve_bytes`` are free. ``folder`` may not exist yet."""
    where = Path(folder)
    free = shutil.disk_usage(_existing_ancestor(where)).free
    if needed_bytes + reserve_bytes > free:
        raise InsufficientSpaceError(
            f"{item}: needs {needed_bytes} bytes (plus a {reserve_bytes}-byte reserve) in {where} "
            f"but only {free} bytes are free"
        )
    return free


def _completed_files(slide_dir: Path) -> list[Path]:
    if not slide_dir.is_dir():
        return []
    return sorted(
        p
        for p in slide_dir.iterdir()
        if p.is_file()
        and not p.name.startswith(".")  # temp files of atomic writes
        and not p.name.endswith((PARTIAL_SUFFIX, SIDECAR_SUFFIX))
    )


def bytes_still_needed(slide_dir: str | os.PathLike[str], size: int) -> int:
    """Bytes a download of ``size`` bytes into ``slide_dir`` still has to write: 0 when a complete
    file of that size is there, else what a resumed ``.partial`` has not fetched yet."""
    folder = Path(slide_dir)
    if any(p.stat().st_size == size for p in _completed_files(folder)):
        return 0
    partial = max(
        (p.stat().st_size for p in folder.glob(f"*{PARTIAL_SUFFIX}") if p.is_file()), default=0
    )
    return max(0, size - partial)


def find_slide_file(slide_dir: str | os.PathLike[str], *, item: str) -> Path:
    """The one completed slide in ``slide_dir`` (the download's folder for one file id)."""
    folder = Path(slide_dir)
    files = _completed_files(folder)
    if not files:
        raise SlideOpenError(
            f"{item}: no downloaded slide in {folder} (materialize slide_file for it first; it "
            "may have been deleted after tiling)",
            path=str(folder),
        )
    if len(files) > 1:
        raise SlideOpenError(
            f"{item}: expected one slide file in {folder}, found {[p.name for p in files]}",
            path=str(folder),
        )
    return files[0]


def delete_slide_file(path: str | os.PathLike[str]) -> int:
    """Delete a downloaded slide, its md5 sidecar and its folder when empty; returns bytes freed."""
    slide = Path(path)
    freed = 0
    for victim in (slide, slide.with_name(slide.name + SIDECAR_SUFFIX)):
        try:
            size = victim.stat().st_size
            victim.unlink()
        except FileNotFoundError:
            continue
        freed += size
    with contextlib.suppress(OSError):  # not empty (or already gone): leave it
        slide.parent.rmdir()
    return freed
