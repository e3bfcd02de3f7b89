"""GDC manifests (``id filename md5 size state``, tab separated; GDC_API.md section 11).

The TSV stays exactly what ``gdc-client`` reads; the data release it came from is recorded in a
sidecar ``<manifest>.json`` so nothing extra goes into the TSV itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.errors import ManifestError, UnsafePathError
from histo_renn_dagster.core.gdc.paths import check_file_id

MANIFEST_COLUMNS: tuple[str, ...] = ("id", "filename", "md5", "size", "state")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_SIZE_RE = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class ManifestRow:
    """One manifest line; ``md5`` is None when the manifest leaves it blank (very old manifests)."""

    id: str
    filename: str
    md5: str | None
    size: int
    state: str


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``<manifest>.json``: where :func:`write_manifest` records the data release."""
    manifest = Path(path)
    return manifest.with_name(manifest.name + ".json")


def _parse_row(values: dict[str, str], where: str) -> ManifestRow:
    file_id = values["id"].strip()
    try:
        check_file_id(file_id)
    except UnsafePathError as exc:
        raise ManifestError(f"{where}: bad id: {exc}") from None
    filename = values["filename"].strip()
    if not filename:
        raise ManifestError(f"{where}: empty filename for id {file_id}")
    md5 = values["md5"].strip().lower() or None
    if md5 is not None and not _MD5_RE.match(md5):
        raise ManifestError(f"{where}: md5 {values['md5']!r} is not 32 hex digits")
    size_text = values["size"].strip()
    if not _SIZE_RE.match(size_text):
        raise ManifestError(f"{where}: size {size_text!r} is not a non-negative integer")
    return ManifestRow(file_id, filename, md5, int(size_text), values["state"].strip())


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Rows of a GDC manifest; ManifestError naming the file and line for anything malformed.

    Columns are found by header name (extra columns are ignored), CRLF and a UTF-8 BOM are
    tolerated, blank lines are skipped, a blank md5 becomes None, and a repeated id is an error.
    """
    manifest = Path(path)
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"manifest {manifest} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest {manifest} is not UTF-8 text: {exc}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ManifestError(f"manifest {manifest}: empty file, expected header {MANIFEST_COLUMNS}")
    header = [name.strip() for name in lines[0].split("\t")]
    missing = [name for name in MANIFEST_COLUMNS if name not in header]
    if missing:
        raise ManifestError(
            f"manifest {manifest} line 1: missing column(s) {missing}; "
            f"expected tab-separated {list(MANIFEST_COLUMNS)}, found {header}"
        )
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        where = f"manifest {manifest} line {number}"
        if len(cells) != len(header):
            raise ManifestError(
                f"{where}: {len(cells)} tab-separated fields, header has {len(header)}"
            )
        row = _parse_row(dict(zip(header, cells, strict=True)), where)
        if row.id in seen:
            raise ManifestError(f"{where}: id {row.id} repeats line {seen[row.id]}")
        seen[row.id] = number
        rows.append(row)
    return rows


def _format_row(row: ManifestRow, index: int) -> str:
    cells = [row.id, row.filename, row.md5 or "", str(row.size), row.state]
    for name, cell in zip(MANIFEST_COLUMNS, cells, strict=True):
        if any(ch in cell for ch in "\t\r\n"):
            raise ManifestError(
                f"manifest row {index} ({row.id}): {name} {cell!r} has a tab or newline"
            )
    try:
        check_file_id(row.id)
    except UnsafePathError as exc:
        raise ManifestError(f"manifest row {index}: bad id: {exc}") from None
    if isinstance(row.size, bool) or not isinstance(row.size, int) or row.size < 0:
        raise ManifestError(
            f"manifest row {index} ({row.id}): size {row.size!r} is not an int >= 0"
        )
    if row.md5 is not None and not _MD5_RE.match(row.md5):
        raise ManifestError(
            f"manifest row {index} ({row.id}): md5 {row.md5!r} is not 32 lower-case hex"
        )
    return "\t".join(cells)


def write_manifest(
    rows: Iterable[ManifestRow], path: str | os.PathLike[str], *, data_release: str
) -> Path:
    """Write ``rows`` as a gdc-client manifest (LF, exact header) plus ``<path>.json``; both atomic."""
    manifest = Path(path)
    materialised = list(rows)
    lines = ["\t".join(MANIFEST_COLUMNS)]
    seen: set[str] = set()
    for index, row in enumerate(materialised):
        lines.append(_format_row(row, index))
        if row.id in seen:
            raise ManifestError(f"manifest row {index}: id {row.id} appears twice")
        seen.add(row.id)
    sidecar = {
        "data_release": data_release,
        "rows": len(materialised),
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(manifest, ("\n".join(lines) + "\n").encode("utf-8"))
    atomic_write_bytes(sidecar_path(manifest), (json.dumps(sidecar, indent=2) + "\n").encode())
    return manifest


def manifest_data_release(path: str | os.PathLike[str]) -> str | None:
    """The data release recorded beside ``path`` by :func:`write_manifest`, or None if absent."""
    side = sidecar_path(path)
    try:
        payload = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        raise ManifestError(f"manifest sidecar {side} is unreadable: {exc}") from None
    release = payload.get("data_release") if isinstance(payload, dict) else None
    if not isinstance(release, str):
        raise ManifestError(f"manifest sidecar {side} has no 'data_release' string")
    return release
