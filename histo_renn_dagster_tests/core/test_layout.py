from __future__ import annotations

from pathlib import Path

import pytest

from histo_renn_dagster.core.errors import UnsafePathError
from histo_renn_dagster.core.layout import LakeLayout

FILE_ID = "decbdda7-e62a-4436-b233-28c5353d0f61"


def test_paths_follow_design_layout(tmp_path: Path) -> None:
    lake = LakeLayout(tmp_path)
    assert lake.slide_dir(FILE_ID) == tmp_path / "slides" / FILE_ID
    assert lake.tiles_path(FILE_ID) == tmp_path / "tiles" / f"{FILE_ID}.h5"
    assert lake.embedding_path(FILE_ID) == tmp_path / "embeddings" / f"{FILE_ID}.h5"
    assert lake.table_path("cohort_table") == tmp_path / "tables" / "cohort_table.parquet"
    assert lake.models_dir("32") == tmp_path / "models" / "m=32"


@pytest.mark.parametrize(
    "bad", ["../../etc", "DECBDDA7-E62A-4436-B233-28C5353D0F61", "", "a/b", FILE_ID + "/.."]
)
def test_hostile_file_ids_are_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnsafePathError):
        LakeLayout(tmp_path).slide_dir(bad)


@pytest.mark.parametrize("bad", ["../x", "a.b", "x/y"])
def test_hostile_table_names_are_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnsafePathError):
        LakeLayout(tmp_path).table_path(bad)
