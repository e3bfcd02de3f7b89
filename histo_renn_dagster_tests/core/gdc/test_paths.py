"""Remote file names and ids can never place a file outside ``dest_dir/<file_id>/``."""

from __future__ import annotations

import pytest

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.errors import UnsafePathError
from histo_renn_dagster.core.gdc.paths import (
    MAX_NAME_BYTES,
    check_file_id,
    file_destination,
    safe_file_name,
)

FILE_ID = "d74e8e4d-25c4-4e11-911c-9e77abb72854"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("TCGA-A1-A0SB-01Z-00-DX1.svs", "TCGA-A1-A0SB-01Z-00-DX1.svs"),
        ("../../x", "x"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.dll", "evil.dll"),
        ("C:\\Users\\a\\b.svs", "b.svs"),
        ("a/b/../c.tsv", "c.tsv"),
        ("nul\x00byte.svs", "nul_byte.svs"),
        ("bell\x07\ttab\nline.svs", "bell__tab_line.svs"),
        ("del\x7fc1\x85.svs", "del_c1_.svs"),
        ("  spaced.svs \n", "spaced.svs"),
        ("ünïcödé.svs", "ünïcödé.svs"),
        ("...hidden", "...hidden"),
        (".bashrc", ".bashrc"),
        ("bad\udcffsurrogate", "bad_surrogate"),
    ],
)
def test_safe_file_name_reduces_to_one_component(raw: str, expected: str) -> None:
    assert safe_file_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", ".", "..", "../..", "/", "a/", "..\\", "x/..", "...", 7, None]
)
def test_safe_file_name_refuses_names_without_a_usable_component(raw: object) -> None:
    with pytest.raises(UnsafePathError):
        safe_file_name(raw)


def test_long_names_are_truncated_to_the_byte_limit_keeping_the_extension() -> None:
    name = "A" * 400 + ".svs"
    safe = safe_file_name(name)
    assert safe.endswith(".svs")
    assert len(safe.encode()) == MAX_NAME_BYTES
    # Room is left for the ".partial" suffix within NAME_MAX (255 bytes).
    assert len((safe + ".partial").encode()) <= 255


def test_truncation_never_splits_a_multibyte_character() -> None:
    safe = safe_file_name("é" * 300 + ".tsv")
    assert safe.endswith(".tsv")
    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert set(safe[:-4]) == {"é"}


def test_long_name_with_a_long_extension_is_cut_plainly() -> None:
    safe = safe_file_name("x." + "y" * 300)
    assert len(safe.encode()) == MAX_NAME_BYTES
    assert safe.startswith("x.yyy")


@pytest.mark.parametrize(
    "hostile",
    ["../../escape", "/abs/path", "..", "a\\..\\..\\b", "x\x00/../../y", "." * 300, "\x01\x02"],
)
def test_file_destination_stays_inside_the_id_folder(tmp_path, hostile: str) -> None:
    try:
        path = file_destination(tmp_path, FILE_ID, hostile)
    except UnsafePathError:
        return
    folder = (tmp_path / FILE_ID).resolve()
    assert path.resolve().parent == folder
    assert path.parent == tmp_path / FILE_ID


def test_file_destination_layout(tmp_path) -> None:
    assert file_destination(tmp_path, FILE_ID, "a.svs") == tmp_path / FILE_ID / "a.svs"


@pytest.mark.parametrize(
    "bad_id",
    [
        FILE_ID.upper(),
        "d74e8e4d25c44e11911c9e77abb72854",
        "{d74e8e4d-25c4-4e11-911c-9e77abb72854}",
        "../d74e8e4d-25c4-4e11-911c-9e77abb72854",
        "not-a-uuid",
        "",
        None,
    ],
)
def test_file_id_must_be_a_canonical_lower_case_uuid(tmp_path, bad_id: object) -> None:
    with pytest.raises(UnsafePathError, match="UUID"):
        check_file_id(bad_id)
    with pytest.raises(UnsafePathError):
        file_destination(tmp_path, bad_id, "a.svs")  # type: ignore[arg-type]


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
