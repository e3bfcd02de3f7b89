"""Resumable verified downloads.

Header parsing and answers the emulator never gives (no Content-Disposition, a 206 starting at the
wrong byte) use the scripted server of ``test_client``; fault recovery runs against the emulator.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from histo_renn_dagster.core.errors import (
    ChecksumError,
    DownloadError,
    GDCHTTPError,
    UnsafePathError,
)
from histo_renn_dagster.core.gdc.client import GDCClient
from histo_renn_dagster.core.gdc.http import (
    CHUNK_SIZE,
    RetryPolicy,
    parse_content_disposition,
    parse_content_range,
)
from histo_renn_dagster.emulator.catalogue import catalogue_from_payloads
from histo_renn_dagster.emulator.server import GDCEmulator
from histo_renn_dagster_tests.core.gdc.test_client import json_answer, quick_retry, scripted  # noqa: F401

FILE_ID = "3f1c2b6a-5d4e-4f8a-9b0c-1d2e3f4a5b6c"
DATA = bytes(range(256)) * 40
MD5 = hashlib.md5(DATA).hexdigest()


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("attachment; filename=TCGA-A1.svs", "TCGA-A1.svs"),
        ('attachment; filename="quoted name.svs"', "quoted name.svs"),
        ('attachment; filename="esc\\"aped.svs"', 'esc"aped.svs'),
        ("attachment; filename=a;b.svs", "a;b.svs"),
        ("attachment; filename=a.svs; size=3", "a.svs"),
        ("attachment; filename*=UTF-8''%C3%BCml%20aut.tsv", "üml aut.tsv"),
        ("attachment; filename=../../x", "../../x"),
        ("attachment; filename=Ã¼.svs", "ü.svs"),  # UTF-8 bytes decoded as latin-1 by http.client
        ("attachment", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_disposition(header: str | None, name: str | None) -> None:
    assert parse_content_disposition(header) == name


def test_parse_content_range() -> None:
    assert parse_content_range("bytes 5-9/10") == (5, 9, 10)
    assert parse_content_range("bytes 0-0/*") == (0, 0, None)
    assert parse_content_range("bytes */10") is None
    assert parse_content_range(None) is None


def _bytes_answer(
    data: bytes, status: int = 200, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/octet-stream", **headers}, data


def test_missing_content_disposition_falls_back_to_files_metadata(scripted, tmp_path) -> None:  # noqa: F811
    meta = {
        "data": {
            "file_id": FILE_ID,
            "file_name": "../meta name.tsv",
            "md5sum": MD5,
            "file_size": len(DATA),
        }
    }
    server = scripted([_bytes_answer(DATA), json_answer(meta)])
    result = GDCClient(server.url, retry=quick_retry()).download(FILE_ID, tmp_path)
    assert result.path == tmp_path / FILE_ID / "meta name.tsv"
    assert result.path.read_bytes() == DATA
    assert (result.md5, result.size, result.skipped, result.attempts) == (MD5, len(DATA), False, 1)
    assert [r["path"] for r in server.requests] == [f"/data/{FILE_ID}", f"/files/{FILE_ID}"]
    assert server.requests[0]["headers"]["Accept-Encoding"] == "identity"


def test_206_from_the_wrong_offset_restarts_from_zero(scripted, tmp_path) -> None:  # noqa: F811
    folder = tmp_path / FILE_ID
    folder.mkdir()
    (folder / "f.tsv.partial").write_bytes(DATA[:100])
    disposition = {"Content-Disposition": "attachment; filename=f.tsv", "Content-MD5": MD5}
    server = scripted(
        [
            _bytes_answer(
                DATA[50:],
                206,
                **{"Content-Range": f"bytes 50-{len(DATA) - 1}/{len(DATA)}"},
                **disposition,
            ),
            _bytes_answer(DATA, **disposition),
        ]
    )
    result = GDCClient(server.url, retry=quick_retry()).download(FILE_ID, tmp_path)
    assert result.path.read_bytes() == DATA
    assert result.attempts == 2
    ranges = [r["headers"].get("Range") for r in server.requests]
    assert ranges == ["bytes=100-", None]


def test_complete_partial_answered_416_is_finished_without_new_bytes(scripted, tmp_path) -> None:  # noqa: F811
    folder = tmp_path / FILE_ID
    folder.mkdir()
    (folder / "f.tsv.partial").write_bytes(DATA)
    server = scripted(
        [
            json_answer(
                {"message": "range not satisfiable"},
                416,
                **{"Content-Range": f"bytes */{len(DATA)}"},
            )
        ]
    )
    result = GDCClient(server.url, retry=quick_retry()).download(FILE_ID, tmp_path, md5=MD5)
    assert result.path == folder / "f.tsv"
    assert result.path.read_bytes() == DATA
    assert sorted(p.name for p in folder.iterdir()) == ["f.tsv", "f.tsv.md5"]


def test_size_disagreeing_with_the_server_is_a_checksum_error(scripted, tmp_path) -> None:  # noqa: F811
    disposition = {"Content-Disposition": "attachment; filename=f.tsv", "Content-MD5": MD5}
    server = scripted([_bytes_answer(DATA, **disposition)] * 2)
    with pytest.raises(
        ChecksumError, match=f"{FILE_ID}.*expected {len(DATA) + 1} bytes, got {len(DATA)} bytes"
    ):
        GDCClient(server.url, retry=quick_retry(attempts=2)).download(
            FILE_ID, tmp_path, size=len(DATA) + 1
        )
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_without_any_md5_the_download_is_refused(scripted, tmp_path) -> None:  # noqa: F811
    meta = {"data": {"file_id": FILE_ID, "file_name": "f.tsv"}}
    server = scripted(
        [
            _bytes_answer(DATA, **{"Content-Disposition": "attachment; filename=f.tsv"}),
            json_answer(meta),
        ]
    )
    with pytest.raises(DownloadError, match="cannot verify"):
        GDCClient(server.url, retry=quick_retry()).download(FILE_ID, tmp_path)
    assert not (tmp_path / FILE_ID / "f.tsv").exists()


def test_bad_arguments_fail_before_any_request(scripted, tmp_path) -> None:  # noqa: F811
    server = scripted([])
    client = GDCClient(server.url, retry=quick_retry())
    with pytest.raises(UnsafePathError):
        client.download("../" + FILE_ID, tmp_path)
    with pytest.raises(DownloadError, match="md5"):
        client.download(FILE_ID, tmp_path, md5="xyz")
    with pytest.raises(DownloadError, match="size"):
        client.download(FILE_ID, tmp_path, size=-1)
    assert server.requests == []


def test_completed_file_with_valid_sidecar_is_skipped_without_network(scripted, tmp_path) -> None:  # noqa: F811
    disposition = {"Content-Disposition": "attachment; filename=f.tsv", "Content-MD5": MD5}
    server = scripted([_bytes_answer(DATA, **disposition)])
    client = GDCClient(server.url, retry=quick_retry())
    first = client.download(FILE_ID, tmp_path)
    sidecar = json.loads((first.path.parent / "f.tsv.md5").read_text())
    assert sidecar["md5"] == MD5 and sidecar["size"] == len(DATA)
    again = client.download(FILE_ID, tmp_path)
    assert again.skipped and again.attempts == 0 and again.path == first.path and again.md5 == MD5
    # Without the sidecar the md5 is recomputed when the caller knows it.
    (first.path.parent / "f.tsv.md5").unlink()
    assert client.download(FILE_ID, tmp_path, md5=MD5, size=len(DATA)).skipped
    # A modified file (same size, new mtime) is no longer trusted.
    os.utime(first.path, ns=(1, 1))
    first.path.write_bytes(b"x" * len(DATA))
    with pytest.raises(DownloadError):
        client.download(FILE_ID, tmp_path, md5=MD5)  # the scripted server has no answers left
    assert len(server.requests) == 1 + 1 + 3


# --- against the emulator --------------------------------------------------------------------


SLIDE_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
SLIDE_NAME = "TCGA-A1-A0SB-01Z-00-DX1.B34C267B-CAAA-4AB6-AD5C-276C26F997A1.svs"
# Three chunks and a bit, so faults can hit chunk boundaries; random-looking but deterministic.
SLIDE = hashlib.sha256(b"slide").digest() * ((3 * CHUNK_SIZE + 4321) // 32 + 1)
SLIDE = SLIDE[: 3 * CHUNK_SIZE + 4321]
SLIDE_MD5 = hashlib.md5(SLIDE).hexdigest()


class NoSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def emulator():
    catalogue = catalogue_from_payloads([(SLIDE_ID, SLIDE_NAME, SLIDE)], data_format="SVS")
    with GDCEmulator(catalogue) as emu:
        yield emu


def _client(
    emu: GDCEmulator, attempts: int = 4, sleep: NoSleep | None = None, **kwargs
) -> GDCClient:
    retry = RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=8.0, sleep=sleep or NoSleep())
    return GDCClient(emu.url, retry=retry, **kwargs)


def _data_requests(emu: GDCEmulator) -> list:
    return [r for r in emu.requests if r.route.startswith("/data")]


def _files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("faults", "attempts"),
    [
        ("429:0@/data", 2),
        ("429:2@/data", 2),
        ("500@/data", 2),
        ("503@/data", 2),
        ("504@/data", 2),
        ("drop:5000@/data", 2),
        (f"drop:{CHUNK_SIZE}@/data", 2),
        ("truncate@/data", 2),
        ("corrupt:100@/data", 2),
        (f"corrupt:{len(SLIDE) - 1}@/data", 2),
        ("truncate:70000@/data;norange@/data", 2),
        ("500@/data;truncate:9000@/data;corrupt:5@/data", 4),
    ],
)
def test_faults_recover_byte_identical(emulator, tmp_path, faults: str, attempts: int) -> None:
    emulator.faults.set(faults)
    sleep = NoSleep()
    result = _client(emulator, sleep=sleep).download(SLIDE_ID, tmp_path)
    assert result.path == tmp_path / SLIDE_ID / SLIDE_NAME
    assert result.path.read_bytes() == SLIDE
    assert (result.md5, result.size, result.skipped, result.attempts) == (
        SLIDE_MD5,
        len(SLIDE),
        False,
        attempts,
    )
    assert _files_under(tmp_path) == [f"{SLIDE_ID}/{SLIDE_NAME}", f"{SLIDE_ID}/{SLIDE_NAME}.md5"]
    assert emulator.faults.pending() == []
    assert len(_data_requests(emulator)) == attempts
    assert all(r.method != "HEAD" for r in emulator.requests)
    if faults.startswith("429:2"):
        assert sleep.waits == [2.0]  # Retry-After honoured


def test_norange_fault_restarts_from_zero_after_a_200(emulator, tmp_path) -> None:
    emulator.faults.set("truncate:70000@/data;norange@/data")
    _client(emulator).download(SLIDE_ID, tmp_path)
    first, second = _data_requests(emulator)
    assert (first.range, second.range, second.status) == (None, "bytes=70000-", 200)


@pytest.mark.parametrize(
    ("faults", "error", "message"),
    [
        ("429:0@/data*inf", DownloadError, "HTTP 429"),
        ("500@/data*inf", DownloadError, "HTTP 500: internal server error"),
        ("504@/data*inf", DownloadError, "HTTP 504: .*Gateway Timeout"),
        ("drop:5000@/data*inf", DownloadError, "after 3 attempt"),
        ("truncate:5000@/data*inf", DownloadError, "after 3 attempt"),
        ("corrupt:7@/data*inf", ChecksumError, f"expected {SLIDE_MD5}, got [0-9a-f]{{32}}"),
    ],
)
def test_persistent_faults_fail_clearly_after_the_budget(
    emulator, tmp_path, faults, error, message
) -> None:
    emulator.faults.set(faults)
    with pytest.raises(error, match=message) as info:
        _client(emulator, attempts=3).download(SLIDE_ID, tmp_path)
    assert info.value.file_id == SLIDE_ID
    assert SLIDE_ID in str(info.value)
    assert len(_data_requests(emulator)) == 3
    assert not (tmp_path / SLIDE_ID / SLIDE_NAME).exists()
    assert all(name.endswith(".partial") for name in _files_under(tmp_path))


def test_md5_mismatch_with_the_given_md5_is_retried_then_reported(emulator, tmp_path) -> None:
    wrong = "0" * 32
    with pytest.raises(ChecksumError) as info:
        _client(emulator, attempts=2).download(SLIDE_ID, tmp_path, md5=wrong)
    text = str(info.value)
    assert SLIDE_ID in text and f"expected {wrong}" in text and f"got {SLIDE_MD5}" in text
    assert len(_data_requests(emulator)) == 2
    assert _files_under(tmp_path) == []


def test_403_and_404_fail_at_once(emulator, tmp_path) -> None:
    unknown = "ffffffff-ffff-4fff-8fff-ffffffffffff"
    with pytest.raises(GDCHTTPError, match="not found") as info:
        _client(emulator).download(unknown, tmp_path)
    assert info.value.status == 404
    emulator.faults.set("403@/data")
    with pytest.raises(GDCHTTPError) as info:
        _client(emulator).download(SLIDE_ID, tmp_path)
    assert info.value.status == 403
    assert len(_data_requests(emulator)) == 2


@pytest.mark.parametrize("kind", ["truncate", "drop"])
@pytest.mark.parametrize(
    "offset", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, len(SLIDE) - 1]
)
def test_interrupted_download_is_never_final_and_rerun_resumes(
    emulator, tmp_path, kind, offset
) -> None:
    emulator.faults.set(f"{kind}:{offset}@/data")
    client = _client(emulator, attempts=1)
    with pytest.raises(DownloadError):
        client.download(SLIDE_ID, tmp_path)
    final = tmp_path / SLIDE_ID / SLIDE_NAME
    partial = final.with_name(final.name + ".partial")
    assert not final.exists()
    kept = partial.read_bytes()
    assert SLIDE.startswith(kept) and len(kept) <= offset
    if kind == "truncate":  # an orderly close: every byte that arrived is kept
        assert len(kept) == offset

    result = client.download(SLIDE_ID, tmp_path)
    assert result.path == final and final.read_bytes() == SLIDE and not partial.exists()
    last = _data_requests(emulator)[-1]
    if kept:
        assert (last.range, last.status) == (f"bytes={len(kept)}-", 206)
    else:
        assert last.range is None


def test_hostile_file_names_cannot_write_outside_the_destination(tmp_path) -> None:
    names = [
        "../../escape.svs",
        "/etc/absolute.svs",
        "..\\..\\windows.svs",
        "a/b/../../../c.svs",
        "ctrl\x01\x1b[31mred.svs",
        "x" * 300 + ".svs",
        "..",
        "dup.svs",
        "dup.svs",
    ]
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(len(names))]
    payloads = [
        (i, n, f"content {k}".encode()) for k, (i, n) in enumerate(zip(ids, names, strict=True))
    ]
    dest = tmp_path / "lake" / "slides"
    with GDCEmulator(catalogue_from_payloads(payloads)) as emu:
        client = _client(emu)
        for k, file_id in enumerate(ids):
            try:
                result = client.download(file_id, dest)
            except UnsafePathError:
                assert names[k] == ".."
                continue
            assert result.path.parent == dest / file_id
            assert result.path.read_bytes() == f"content {k}".encode()
            assert len(result.path.name.encode()) <= 255 - len(".partial")
    # Nothing anywhere but inside dest/<id>/.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]
    assert sorted(p.name for p in dest.iterdir()) == sorted(ids[:6] + ids[7:])
    assert (dest / ids[7] / "dup.svs").read_bytes() != (dest / ids[8] / "dup.svs").read_bytes()
    assert (dest / ids[0] / "escape.svs").is_file()


def test_completed_files_are_skipped_on_rerun_without_a_data_request(emulator, tmp_path) -> None:
    client = _client(emulator)
    first = client.download(SLIDE_ID, tmp_path)
    emulator.clear_requests()
    again = client.download(SLIDE_ID, tmp_path)
    assert again.skipped and again.attempts == 0 and again.path == first.path
    (first.path.parent / (first.path.name + ".md5")).unlink()
    with_md5 = client.download(SLIDE_ID, tmp_path, md5=SLIDE_MD5, size=len(SLIDE))
    assert with_md5.skipped and with_md5.md5 == SLIDE_MD5
    # A stale sidecar (the file's mtime moved, bytes unchanged) is rebuilt by rehashing.
    os.utime(first.path, ns=(5_000_000_000, 5_000_000_000))
    assert client.download(SLIDE_ID, tmp_path, md5=SLIDE_MD5).skipped
    assert (
        json.loads((first.path.parent / (first.path.name + ".md5")).read_text())["mtime_ns"]
        == 5_000_000_000
    )
    assert emulator.requests == []
    # A different expected md5 means the file on disk is not the wanted one: fetch again.
    with pytest.raises(ChecksumError):
        client.download(SLIDE_ID, tmp_path, md5="1" * 32)
    assert len(_data_requests(emulator)) == client.retry.attempts


def test_read_timeout_is_retried(emulator, tmp_path) -> None:
    emulator.faults.set("delay:1@/data")
    result = _client(emulator, timeout=(2.0, 0.2)).download(SLIDE_ID, tmp_path)
    assert result.path.read_bytes() == SLIDE and result.attempts == 2


def test_token_header_only_when_set(emulator, tmp_path) -> None:
    _client(emulator).download(SLIDE_ID, tmp_path / "a")
    _client(emulator, token="tok-123").download(SLIDE_ID, tmp_path / "b")
    assert [r.token_sent for r in _data_requests(emulator)] == [False, True]
