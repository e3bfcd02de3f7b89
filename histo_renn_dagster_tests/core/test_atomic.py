from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from histo_renn_dagster.core.atomic import atomic_path, atomic_write_bytes


def test_finished_files_are_readable_by_the_group_and_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "a" / "table.parquet", b"data")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["table.parquet"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "store.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["store.h5"]
