"""Every fault kind, observed the way clients see it: raw requests / http.client / a subprocess."""

from __future__ import annotations

import hashlib
import http.client
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from histo_renn_dagster.emulator.server import GDCEmulator


def slide(emulator: GDCEmulator) -> tuple[str, bytes]:
    doc = next(f for f in emulator.catalogue.files if f["data_format"] == "SVS")
    return doc["file_id"], emulator.catalogue.blob(doc["file_id"]).path().read_bytes()


def connect(emulator: GDCEmulator) -> http.client.HTTPConnection:
    parts = urlsplit(emulator.url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)


def test_first_two_files_calls_get_429_then_it_stops(gdc_emulator: GDCEmulator) -> None:
    gdc_emulator.faults.set("429:3@/files*2")
    url = gdc_emulator.url
    assert requests.get(f"{url}/status").status_code == 200  # other routes untouched
    first, second, third = (requests.post(f"{url}/files", json={"size": 1}) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3" and "message" in first.json()
    assert [r.fault is not None for r in gdc_emulator.requests] == [False, True, True, False]


def test_500_is_json_and_gateway_errors_are_html(gdc_emulator: GDCEmulator) -> None:
    gdc_emulator.faults.set("500@/files;502@/files;503@/files;504@/files;418@/files")
    answers = [requests.get(f"{gdc_emulator.url}/files") for _ in range(5)]
    assert [a.status_code for a in answers] == [500, 502, 503, 504, 418]
    assert answers[0].json() == {"message": "internal server error"}
    for html in answers[1:4]:
        assert html.headers["Content-Type"] == "text/html"
        assert html.text.startswith("<html>")
    assert "<title>504 Gateway Timeout</title>" in answers[3].text
    assert "message" in answers[4].json()


def test_drop_resets_the_connection_mid_body(gdc_emulator: GDCEmulator) -> None:
    file_id, data = slide(gdc_emulator)
    gdc_emulator.faults.set("drop:50000@/data")
    conn = connect(gdc_emulator)
    with pytest.raises(ConnectionResetError):
        conn.request("GET", f"/data/{file_id}")
        response = conn.getresponse()
        response.read()
    conn.close()
    again = requests.get(f"{gdc_emulator.url}/data/{file_id}")  # the rule is spent
    assert again.content == data


def test_truncate_sends_fewer_bytes_than_content_length(gdc_emulator: GDCEmulator) -> None:
    file_id, data = slide(gdc_emulator)
    gdc_emulator.faults.set("truncate:1000@/data")
    conn = connect(gdc_emulator)
    conn.request("GET", f"/data/{file_id}")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Length") == str(len(data))
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    assert info.value.partial == data[:1000]
    conn.close()


def test_corrupt_flips_one_byte(gdc_emulator: GDCEmulator) -> None:
    file_id, data = slide(gdc_emulator)
    gdc_emulator.faults.set("corrupt:100@/data")
    response = requests.get(f"{gdc_emulator.url}/data/{file_id}")
    body = response.content
    assert response.status_code == 200 and len(body) == len(data)
    assert body[100] == data[100] ^ 0xFF and body[:100] == data[:100] and body[101:] == data[101:]
    assert response.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    assert hashlib.md5(body).hexdigest() != response.headers["Content-MD5"]


def test_norange_answers_200_with_the_whole_body(gdc_emulator: GDCEmulator) -> None:
    file_id, data = slide(gdc_emulator)
    gdc_emulator.faults.set("norange@/data")
    url = f"{gdc_emulator.url}/data/{file_id}"
    assert requests.get(url).status_code == 200  # no Range: the rule waits
    ignored = requests.get(url, headers={"Range": "bytes=10-"})
    assert ignored.status_code == 200 and ignored.content == data
    assert "Content-Range" not in ignored.headers
    assert requests.get(url, headers={"Range": "bytes=10-"}).status_code == 206


def test_faults_hit_streamed_bundles_and_search_bodies(gdc_emulator: GDCEmulator) -> None:
    ids = [f["file_id"] for f in gdc_emulator.catalogue.files[:2]]
    gdc_emulator.faults.set("drop:600@/data;truncate:10@/files")
    with pytest.raises(requests.exceptions.RequestException):
        requests.post(f"{gdc_emulator.url}/data", json={"ids": ids}).content  # noqa: B018
    with pytest.raises(requests.exceptions.RequestException):
        requests.post(f"{gdc_emulator.url}/files", json={"size": 5}).json()


def test_delay_still_answers(gdc_emulator: GDCEmulator) -> None:
    gdc_emulator.faults.set("delay:0.05@/status")
    assert requests.get(f"{gdc_emulator.url}/status").json()["status"] == "OK"
    assert gdc_emulator.requests[-1].fault == "delay:0.05@/status*1"


def test_serve_forever_announces_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "histo_renn_dagster.emulator.server",
        "--cohort",
        "fixture",
        "--port",
        "0",
        "--cache-dir",
        str(tmp_path),
        "--faults",
        "503@/status",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/status", timeout=10).status_code == 503
        assert requests.get(f"{url}/status", timeout=10).json()["status"] == "OK"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
