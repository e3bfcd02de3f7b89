"""Where downloaded GDC files go, and why a remote ``file_name`` can never escape that place.

File names come from the GDC (``Content-Disposition`` or ``/files`` metadata): they are data, not
paths. Every file lives in ``<dest_dir>/<file_id>/<safe name>``; the id is checked to be a canonical
UUID and the name is reduced to one harmless path component.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from histo_renn_dagster.core.errors import UnsafePathError

# POSIX NAME_MAX is 255 bytes; the download writes ``<name>.partial`` (and ``<name>.md5``) beside
# the final file, so the name itself must leave room for the longest suffix.
PARTIAL_SUFFIX = ".partial"
MAX_NAME_BYTES = 255 - len(PARTIAL_SUFFIX)
# An extension longer than this is not an extension worth keeping when a name must be truncated.
_MAX_KEPT_SUFFIX_BYTES = 16


def check_file_id(file_id: object) -> str:
    """``file_id`` if it is a lower-case canonical UUID, else UnsafePathError (it becomes a folder)."""
    if not isinstance(file_id, str):
        raise UnsafePathError(f"GDC file id must be a string UUID, got {type(file_id).__name__}")
    try:
        canonical = str(uuid.UUID(file_id))
    except ValueError:
        canonical = None
    if canonical != file_id:
        raise UnsafePathError(
            f"GDC file id {file_id!r} is not a lower-case canonical UUID "
            "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
        )
    return file_id


def _replace_unsafe_chars(name: str) -> str:
    out = []
    for ch in name:
        code = ord(ch)
        # C0/C1 controls, DEL, NUL and lone surrogates (undecodable bytes) become '_'.
        if code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF:
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    # Cutting bytes may split a multi-byte character; drop the fragment rather than corrupt it.
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def _truncate_keeping_suffix(name: str, max_bytes: int) -> str:
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = dot + ext
    if stem and dot and len(suffix.encode("utf-8")) <= _MAX_KEPT_SUFFIX_BYTES:
        kept = _truncate_utf8(stem, max_bytes - len(suffix.encode("utf-8")))
        if kept.strip(". "):
            return kept + suffix
    return _truncate_utf8(name, max_bytes)


def safe_file_name(name: object) -> str:
    """One safe path component made from a remote ``name``; UnsafePathError if nothing usable remains.

    Directory parts (``/`` or ``\\``) are dropped, control characters and NUL are replaced by ``_``,
    surrounding whitespace is stripped, names made only of dots are refused, and names longer than
    MAX_NAME_BYTES (UTF-8) are truncated keeping a short extension.
    """
    if not isinstance(name, str):
        raise UnsafePathError(f"remote file name must be a string, got {type(name).__name__}")
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _replace_unsafe_chars(base.strip()).strip()
    cleaned = _truncate_keeping_suffix(cleaned, MAX_NAME_BYTES).strip()
    if not cleaned.strip("."):
        raise UnsafePathError(f"remote file name {name!r} has no usable file name component")
    return cleaned


def file_destination(dest_dir: str | os.PathLike[str], file_id: str, file_name: str) -> Path:
    """``dest_dir/<file_id>/<safe file_name>``; UnsafePathError for a bad id or hostile name."""
    folder = Path(dest_dir) / check_file_id(file_id)
    path = folder / safe_file_name(file_name)
    # Belt and braces: whatever the sanitiser did, the result must be a direct child of ``folder``.
    if path.parent != folder or path.name in {"", ".", ".."}:
        raise UnsafePathError(f"file name {file_name!r} of {file_id} would leave {folder}")
    return path
