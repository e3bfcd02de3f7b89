"""GDCClient: retries, envelopes, paging, token handling.

Unit tests use ``ScriptedServer`` (a few canned answers on 127.0.0.1) for answers the emulator
never gives (broken envelopes, a total that changes); the rest run against the ``gdc_emulator``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from histo_renn_dagster.core.errors import GDCError, GDCHTTPError, GDCResponseError
from histo_renn_dagster.core.gdc.client import GDCClient, token_from_env
from histo_renn_dagster.core.gdc.filters import field
from histo_renn_dagster.core.gdc.http import RetryPolicy, parse_retry_after
from histo_renn_dagster.emulator.catalogue import catalogue_from_payloads
from histo_renn_dagster.emulator.server import GDCEmulator

TOKEN = "s3cr3t-T0KEN-abcdef0123456789"


class Recorder:
    """A ``sleep`` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def quick_retry(attempts: int = 4, sleep: Recorder | None = None) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=8.0, sleep=sleep or Recorder())


class ScriptedServer:
    """Answers requests from a list of ``(status, headers, body)``; records what it received."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                status, headers, payload = (
                    server.answers.pop(0) if server.answers else (599, {}, b"")
                )
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def json_answer(
    payload: object, status: int = 200, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


def page(ids: list[str], total: int, start: int = 0) -> tuple[int, dict[str, str], bytes]:
    hits = [{"id": i, "file_id": i} for i in ids]
    pagination = {
        "count": len(ids),
        "total": total,
        "size": 2,
        "from": start,
        "page": 1,
        "pages": 1,
    }
    return json_answer({"data": {"hits": hits, "pagination": pagination}, "warnings": {}})


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    servers: list[ScriptedServer] = []

    def make(answers):
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()


# --- token --------------------------------------------------------------------------------------


def test_token_from_env(tmp_path) -> None:
    assert token_from_env({}) is None
    assert token_from_env({"HISTO_RENN_GDC_TOKEN": "  "}) is None
    assert token_from_env({"HISTO_RENN_GDC_TOKEN": f" {TOKEN}\n"}) == TOKEN
    token_file = tmp_path / "gdc-user-token.txt"
    token_file.write_text(TOKEN + "\r\n")
    assert token_from_env({"HISTO_RENN_GDC_TOKEN_FILE": str(token_file)}) == TOKEN
    # The variable wins over the file.
    both = {"HISTO_RENN_GDC_TOKEN": "direct", "HISTO_RENN_GDC_TOKEN_FILE": str(token_file)}
    assert token_from_env(both) == "direct"


def test_token_errors_never_quote_the_token(tmp_path) -> None:
    with pytest.raises(GDCError, match="does not exist"):
        token_from_env({"HISTO_RENN_GDC_TOKEN_FILE": str(tmp_path / "missing.txt")})
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(GDCError, match="empty"):
        token_from_env({"HISTO_RENN_GDC_TOKEN_FILE": str(empty)})
    for bad in (TOKEN + "é", TOKEN[:5] + " " + TOKEN[5:], TOKEN + "\x00x"):
        with pytest.raises(GDCError, match="non-ASCII") as info:
            token_from_env({"HISTO_RENN_GDC_TOKEN": bad})
        assert TOKEN[:10] not in str(info.value)


# --- retry policy -------------------------------------------------------------------------------


def test_retry_policy_backoff_is_exponential_capped_and_fully_jittered() -> None:
    plain = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=False)
    assert [plain.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=5.0, rng=lambda: 0.25)
    assert [jittered.delay(n) for n in (1, 3, 9)] == [0.25, 1.0, 1.25]
    # Retry-After is honoured exactly, but never beyond max_delay.
    assert jittered.delay(1, retry_after=3.0) == 3.0
    assert jittered.delay(1, retry_after=600.0) == 5.0
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(42.0)
    earlier = format_datetime(now - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


# --- transport behaviour (scripted answers) -----------------------------------------------------


def test_retries_5xx_and_429_honouring_retry_after(scripted) -> None:
    status = {"data_release": "Data Release 45.0 - December 04, 2025", "tag": "8.5.0"}
    server = scripted(
        [
            json_answer({"message": "slow down"}, 429, **{"Retry-After": "3"}),
            (503, {"Content-Type": "text/html"}, b"<html>503</html>"),
            json_answer(status),
        ]
    )
    sleep = Recorder()
    client = GDCClient(
        server.url, retry=RetryPolicy(attempts=3, base_delay=0.5, rng=lambda: 1.0, sleep=sleep)
    )
    assert client.data_release() == "Data Release 45.0 - December 04, 2025"
    assert sleep.waits == [3.0, 1.0]
    assert len(server.requests) == 3


def test_retry_budget_exhausted_raises_with_status(scripted, caplog) -> None:
    server = scripted([json_answer({"message": "internal server error"}, 500)] * 3)
    client = GDCClient(server.url, retry=quick_retry(attempts=3))
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(GDCHTTPError, match="after 3 attempt") as info,
    ):
        client.status()
    assert info.value.status == 500
    assert "internal server error" in str(info.value)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(
        f"{server.url}/status" in r.getMessage() and "500" in r.getMessage() for r in warnings
    )


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_fail_at_once_with_the_gdc_message(scripted, status: int) -> None:
    message = "Your token is invalid or expired. Please get a new token from GDC Data Portal."
    server = scripted([json_answer({"error": message, "message": message}, status)])
    client = GDCClient(server.url, retry=quick_retry())
    with pytest.raises(GDCHTTPError, match="invalid or expired") as info:
        client.file("d74e8e4d-25c4-4e11-911c-9e77abb72854")
    assert info.value.status == status
    assert len(server.requests) == 1


def test_html_served_with_200_is_a_response_error_naming_url_and_bytes(scripted) -> None:
    html = b"<html><head><title>504 Gateway Timeout</title></head></html>"
    server = scripted([(200, {"Content-Type": "text/html"}, html)] * 2)
    client = GDCClient(server.url, retry=quick_retry(attempts=2))
    with pytest.raises(GDCResponseError, match="not JSON") as info:
        client.status()
    assert f"{server.url}/status" in str(info.value)
    assert "504 Gateway Timeout" in str(info.value)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"hits": []},
        {"data": {"hits": []}},
        {"data": {"pagination": {"count": 0, "total": 0}}},
        [1],
        {"data": {"hits": [], "pagination": {"total": 1}}},
    ],
)
def test_malformed_envelope_is_a_response_error(scripted, payload: object) -> None:
    server = scripted([json_answer(payload)])
    client = GDCClient(server.url, retry=quick_retry())
    with pytest.raises(GDCResponseError, match="from=0"):
        list(client.search("files"))
    assert len(server.requests) == 1


def test_search_posts_json_and_pages_until_total(scripted) -> None:
    server = scripted([page(["a", "b"], 5), page(["c", "d"], 5, 2), page(["e"], 5, 4)])
    client = GDCClient(server.url, retry=quick_retry(), page_size=2)
    hits = list(client.search("files", fields=["file_id", "file_name"], sort="file_id:asc"))
    assert [h["id"] for h in hits] == ["a", "b", "c", "d", "e"]
    bodies = [json.loads(r["body"]) for r in server.requests]
    assert [b["from"] for b in bodies] == [0, 2, 4]
    assert bodies[0] == {
        "format": "JSON",
        "size": 2,
        "fields": "file_id,file_name",
        "sort": "file_id:asc",
        "from": 0,
    }
    assert all(r["method"] == "POST" and r["path"] == "/files" for r in server.requests)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([page(["a", "b"], 4), page(["c", "d"], 5, 2)], "total changed from 4 to 5"),
        ([page(["a", "b"], 4), page(["b", "c"], 4, 2)], "hit b was already returned"),
        ([page(["a", "b"], 4), page([], 4, 2)], "empty page after 2 of 4"),
    ],
)
def test_inconsistent_paging_is_detected(scripted, answers, message: str) -> None:
    client = GDCClient(scripted(answers).url, retry=quick_retry(), page_size=2)
    with pytest.raises(GDCResponseError, match=message):
        list(client.search("files"))


def test_data_release_falls_back_to_tag_of_the_old_status_shape(scripted) -> None:
    old = {"commit": "74e1e358", "status": "OK", "tag": "1.2.0", "version": 1}
    server = scripted([json_answer(old), json_answer({"status": "OK"})])
    client = GDCClient(server.url, retry=quick_retry())
    assert client.data_release() == "1.2.0"
    with pytest.raises(GDCResponseError, match="neither 'data_release' nor 'tag'"):
        client.data_release()


def test_token_is_sent_only_when_set_and_never_logged(scripted, caplog) -> None:
    server = scripted(
        [
            json_answer({"message": "boom"}, 500),
            json_answer({"message": "nope"}, 403),
            json_answer({"tag": "x"}),
        ]
    )
    with caplog.at_level(logging.DEBUG):
        client = GDCClient(server.url, token=TOKEN, retry=quick_retry())
        with pytest.raises(GDCHTTPError) as info:
            client.status()
        anonymous = GDCClient(server.url, retry=quick_retry())
        anonymous.status()
    assert [r["headers"].get("X-Auth-Token") for r in server.requests] == [TOKEN, TOKEN, None]
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client) and "<set>" in repr(client)
    assert TOKEN not in str(info.value)


def test_token_is_not_forwarded_on_a_redirect_to_another_host(scripted) -> None:
    target = scripted([json_answer({"tag": "x"})])
    port = target.url.rsplit(":", 1)[1]
    origin = scripted([(302, {"Location": f"http://localhost:{port}/status"}, b"")])
    client = GDCClient(origin.url, token=TOKEN, retry=quick_retry())
    assert client.data_release() == "x"
    assert origin.requests[0]["headers"].get("X-Auth-Token") == TOKEN
    assert "X-Auth-Token" not in target.requests[0]["headers"]


def test_constructor_validation() -> None:
    with pytest.raises(GDCError, match="page_size"):
        GDCClient("http://127.0.0.1:9", page_size=0)
    with pytest.raises(GDCError, match="http"):
        GDCClient("ftp://example")


# --- against the emulator ------------------------------------------------------------------------


N_FILES = 1133


@pytest.fixture(scope="module")
def big_emulator() -> Iterator[GDCEmulator]:
    payloads = [
        (f"{k:08x}-0000-4000-8000-{(k * 7919) % 10**12:012d}", f"file-{k}.tsv", b"%d" % k)
        for k in range(N_FILES)
    ]
    with GDCEmulator(catalogue_from_payloads(payloads)) as emu:
        yield emu


@pytest.fixture
def big(big_emulator: GDCEmulator) -> GDCEmulator:
    big_emulator.faults.clear()
    big_emulator.clear_requests()
    return big_emulator


@pytest.mark.parametrize("page_size", [100, 500])
def test_paging_returns_every_hit_once(big: GDCEmulator, page_size: int) -> None:
    client = GDCClient(big.url, retry=quick_retry(), page_size=page_size)
    hits = list(
        client.search("files", fields=["file_id", "file_name", "md5sum"], sort="file_id:asc")
    )
    ids = [h["file_id"] for h in hits]
    assert len(ids) == N_FILES == len(set(ids))
    assert ids == sorted(ids)
    posts = [r for r in big.requests if r.method == "POST" and r.route == "/files"]
    assert len(posts) == -(-N_FILES // page_size)


def test_search_recovers_from_faults_with_identical_results(big: GDCEmulator) -> None:
    client = GDCClient(big.url, retry=quick_retry(attempts=5), page_size=500)
    spec = dict(
        filters=field("file_name").isin(["file-1.tsv", "file-2.tsv"]), fields="file_id,file_name"
    )
    clean = list(client.search("files", **spec))
    assert sorted(h["file_name"] for h in clean) == ["file-1.tsv", "file-2.tsv"]
    big.faults.set("429:0@/files*2;500@/files;504@/files")
    assert list(client.search("files", **spec)) == clean
    statuses = [r.status for r in big.requests if r.route == "/files"]
    assert statuses == [200, 429, 429, 500, 504, 200]


def test_search_fails_clearly_when_faults_outlast_the_budget(big: GDCEmulator) -> None:
    big.faults.set("503@/files*inf")
    client = GDCClient(big.url, retry=quick_retry(attempts=3))
    with pytest.raises(GDCHTTPError, match="after 3 attempt") as info:
        list(client.search("files"))
    assert info.value.status == 503


def test_file_metadata_status_and_token_against_the_emulator(big: GDCEmulator) -> None:
    first = "00000000-0000-4000-8000-000000000000"
    anonymous = GDCClient(big.url, retry=quick_retry())
    doc = anonymous.file(first)
    assert doc["file_name"] == "file-0.tsv" and doc["file_size"] == 1
    assert anonymous.data_release().startswith("Data Release")
    with_token = GDCClient(big.url, token=TOKEN, retry=quick_retry())
    list(with_token.search("files", page_size=1000))
    with_token.status()
    assert [r.token_sent for r in big.requests] == [False, False, True, True, True]  # 2 pages
    with pytest.raises(GDCHTTPError) as info:
        anonymous.file("ffffffff-ffff-4fff-8fff-ffffffffffff")
    assert info.value.status == 404


def test_canonical_queries_manifest_and_downloads_on_the_fixture_cohort(
    gdc_emulator, tmp_path
) -> None:
    from histo_renn_dagster.core.gdc.manifest import (
        ManifestRow,
        manifest_data_release,
        read_manifest,
        write_manifest,
    )
    from histo_renn_dagster.core.gdc.queries import expression_files_query, slide_files_query

    client = GDCClient(gdc_emulator.url, retry=quick_retry(), page_size=2)
    slides = list(client.search(slide_files_query("TCGA-BRCA")))
    expression = list(client.search(expression_files_query("TCGA-BRCA")))
    assert slides and expression
    assert {(h["data_format"], h["experimental_strategy"]) for h in slides} == {
        ("SVS", "Diagnostic Slide")
    }
    assert {h["analysis"]["workflow_type"] for h in expression} == {"STAR - Counts"}
    assert all(c["project"]["project_id"] == "TCGA-BRCA" for h in slides for c in h["cases"])
    assert all("sample_type_id" in s for h in slides for c in h["cases"] for s in c["samples"])

    rows = [
        ManifestRow(h["file_id"], h["file_name"], h["md5sum"], h["file_size"], h["state"])
        for h in slides
    ]
    manifest = write_manifest(rows, tmp_path / "slides.txt", data_release=client.data_release())
    assert manifest_data_release(manifest) == "Data Release 45.0 - December 04, 2025"
    for row in read_manifest(manifest):
        result = client.download(row.id, tmp_path / "lake", md5=row.md5, size=row.size)
        assert (result.size, result.md5, result.path.name) == (row.size, row.md5, row.filename)
    assert all(r.method != "HEAD" for r in gdc_emulator.requests)
