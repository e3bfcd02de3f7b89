"""GDC manifest reading/writing (gdc-client format) and its data-release sidecar."""

from __future__ import annotations

import json

import pytest

from histo_renn_dagster.core.errors import ManifestError
from histo_renn_dagster.core.gdc.manifest import (
    ManifestRow,
    manifest_data_release,
    read_manifest,
    sidecar_path,
    write_manifest,
)

ID1 = "d74e8e4d-25c4-4e11-911c-9e77abb72854"
ID2 = "b9a36eb1-ce20-4166-8cb8-a00782229e61"
MD5 = "72b10ac65f6a230e7603574cb4ff05e0"
HEADER = "id\tfilename\tmd5\tsize\tstate"


def _write(tmp_path, text: str, newline: str = "\n"):
    path = tmp_path / "gdc_manifest.txt"
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def test_read_manifest_parses_rows_with_crlf_and_blank_md5(tmp_path) -> None:
    path = _write(
        tmp_path,
        f"{HEADER}\n{ID1}\ta.svs\t{MD5.upper()}\t1688054259\treleased\n{ID2}\ta.svs\t\t7\tlive\n\n",
        newline="\r\n",
    )
    assert read_manifest(path) == [
        ManifestRow(ID1, "a.svs", MD5, 1688054259, "released"),
        ManifestRow(ID2, "a.svs", None, 7, "live"),
    ]


def test_columns_are_found_by_name(tmp_path) -> None:
    path = _write(
        tmp_path, f"state\tsize\textra\tmd5\tfilename\tid\nreleased\t5\tz\t{MD5}\tb.tsv\t{ID1}\n"
    )
    assert read_manifest(path) == [ManifestRow(ID1, "b.tsv", MD5, 5, "released")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id\tfilename\tmd5\tstate\n", r"line 1: missing column\(s\) \['size'\]"),
        ("", "empty file"),
        (f"{HEADER}\n{ID1}\ta.svs\t{MD5}\t12x\treleased\n", r"line 2: size '12x'"),
        (f"{HEADER}\n{ID1}\ta.svs\t{MD5}\t-1\treleased\n", "line 2: size '-1'"),
        (f"{HEADER}\n\n{ID1}\ta.svs\t{MD5}\t1\n", "line 3: 4 tab-separated fields, header has 5"),
        (f"{HEADER}\nnot-a-uuid\ta.svs\t{MD5}\t1\treleased\n", "line 2: bad id"),
        (f"{HEADER}\n{ID1}\ta.svs\tabc\t1\treleased\n", "line 2: md5 'abc'"),
        (f"{HEADER}\n{ID1}\t\t{MD5}\t1\treleased\n", "line 2: empty filename"),
        (
            f"{HEADER}\n{ID1}\ta\t{MD5}\t1\treleased\n{ID1}\tb\t{MD5}\t1\treleased\n",
            "line 3: id .* repeats line 2",
        ),
    ],
)
def test_malformed_manifests_name_the_line_and_problem(tmp_path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(path)
    assert str(path) in str(info.value)


def test_missing_manifest_is_a_manifest_error(tmp_path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope.txt")


def test_write_manifest_is_gdc_format_and_round_trips(tmp_path) -> None:
    rows = [
        ManifestRow(ID1, "TCGA-DM-A28K-01Z-00-DX1.svs", MD5, 1688054259, "released"),
        ManifestRow(ID2, "TCGA-DM-A28K-01Z-00-DX1.svs", None, 0, "released"),
    ]
    path = write_manifest(rows, tmp_path / "m.txt", data_release="Data Release 45.0")
    raw = path.read_bytes()
    assert b"\r" not in raw
    lines = raw.decode().split("\n")
    assert lines[0] == HEADER
    assert lines[2] == f"{ID2}\tTCGA-DM-A28K-01Z-00-DX1.svs\t\t0\treleased"
    assert lines[-1] == ""
    assert read_manifest(path) == rows
    side = json.loads(sidecar_path(path).read_text())
    assert side["data_release"] == "Data Release 45.0"
    assert side["rows"] == 2
    assert "written_at" in side
    assert manifest_data_release(path) == "Data Release 45.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.txt", "m.txt.json"]


def test_write_manifest_refuses_rows_that_would_corrupt_the_tsv(tmp_path) -> None:
    target = tmp_path / "m.txt"
    bad_rows = [
        ManifestRow(ID1, "a\tb.svs", MD5, 1, "released"),
        ManifestRow(ID1, "a\nb.svs", MD5, 1, "released"),
        ManifestRow("x", "a.svs", MD5, 1, "released"),
        ManifestRow(ID1, "a.svs", MD5, -3, "released"),
        ManifestRow(ID1, "a.svs", "zz", 1, "released"),
    ]
    for row in bad_rows:
        with pytest.raises(ManifestError, match="row 0"):
            write_manifest([row], target, data_release="r")
    with pytest.raises(ManifestError, match="twice"):
        good = ManifestRow(ID1, "a.svs", MD5, 1, "released")
        write_manifest([good, good], target, data_release="r")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_manifest_without_sidecar_has_no_release(tmp_path) -> None:
    path = _write(tmp_path, f"{HEADER}\n")
    assert read_manifest(path) == []
    assert manifest_data_release(path) is None


def test_real_gdc_manifests_parse(shared_data) -> None:
    folder = shared_data / "gdc" / "manifests"
    counts = {p.name: len(read_manifest(p)) for p in sorted(folder.glob("*.txt"))}
    assert counts["Tony3318_WSI-HSfeatures__gdc_manifest__svs_diagnostic_multiproject.txt"] == 258
    assert counts["ag48665_aws-cancer-survival-pipeline__gdc_manifest__star_counts.txt"] == 129
    assert all(n > 0 for n in counts.values())
