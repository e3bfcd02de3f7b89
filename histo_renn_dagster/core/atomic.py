"""Atomic file writes: a temp file beside the target, renamed into place only when complete.

Every file the platform writes into the lake goes through here, so a crash or a failed step never
leaves a half-written file under a final name, and finished files get ordinary permissions
(``0666 & ~umask``, not ``mkstemp``'s private 0600) so the people sharing a lab server can read
them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    # os.umask can only be read by setting it, which races with other threads; Linux exposes it.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def publish_file(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Give a finished temp file normal permissions and rename it to ``target`` (same folder)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, target)
    return Path(target)


def new_temp_path(target: str | os.PathLike[str]) -> Path:
    """An empty temp file beside ``target`` (created with its folder), for writers that need one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``target``; write it inside the block. On a clean exit the file
    replaces ``target``; on an exception it is removed and ``target`` is untouched."""
    tmp = new_temp_path(target)
    try:
        yield tmp
        publish_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename)."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(target)
