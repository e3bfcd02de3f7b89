"""Publishing reserve slides into a running emulator (admin routes, thread safety, CLI)."""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from collections.abc import Iterator

import pytest
import requests

from histo_renn_dagster.commands import publish
from histo_renn_dagster.core.errors import EmulatorError, GDCHTTPError, GDCResponseError
from histo_renn_dagster.core.gdc.client import GDCClient
from histo_renn_dagster.core.gdc.discovery import list_slide_ids
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.publishing import hold_back_slides, subset_catalogue
from histo_renn_dagster.emulator.server import GDCEmulator


def _slides(catalogue: Catalogue) -> list[str]:
    return sorted(d["file_id"] for d in catalogue.files if d["data_format"] == "SVS")


def _case_of(doc: dict) -> str:
    return doc["cases"][0]["submitter_id"]


@pytest.fixture
def held_back(fixture_catalogue: Catalogue) -> Iterator[GDCEmulator]:
    served, reserve = hold_back_slides(fixture_catalogue, 3)
    with GDCEmulator(served, reserve=reserve) as emulator:
        yield emulator


def _publish(emulator: GDCEmulator, body: dict) -> requests.Response:
    return requests.post(f"{emulator.url}/_emulator/publish", json=body, timeout=10)


def test_published_slides_are_listed_and_downloadable(
    held_back: GDCEmulator, fixture_catalogue: Catalogue
) -> None:
    everything = _slides(fixture_catalogue)
    with GDCClient(held_back.url) as client:
        assert list_slide_ids(client, "TCGA-BRCA") == everything[:3]
    answer = requests.get(f"{held_back.url}/_emulator/publishable", timeout=10).json()
    assert answer["data"]["file_ids"] == everything[3:]

    response = _publish(held_back, {"count": 2})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [r["file_id"] for r in data["published"]] == everything[3:5]
    assert data["publishable"] == 1
    first = data["published"][0]
    doc = fixture_catalogue.file(first["file_id"])
    assert doc is not None
    assert first["file_name"] == doc["file_name"] and first["case"] == _case_of(doc)

    with GDCClient(held_back.url) as client:
        assert list_slide_ids(client, "TCGA-BRCA") == everything[:5]
        hit = client.file(first["file_id"], fields=["md5sum", "file_size"])
        assert hit["md5sum"] == fixture_catalogue.blob(first["file_id"]).md5
    body = requests.get(f"{held_back.url}/data/{first['file_id']}", timeout=10).content
    assert hashlib.md5(body).hexdigest() == hit["md5sum"]


def test_publishing_a_slide_brings_its_cases_rna_files(fixture_catalogue: Catalogue) -> None:
    case = "TCGA-BH-A0EA"
    of_case = [d["file_id"] for d in fixture_catalogue.files if _case_of(d) == case]
    slide = next(f for f in of_case if fixture_catalogue.file(f)["data_format"] == "SVS")
    rna = sorted(set(of_case) - {slide})
    assert len(rna) == 2
    served = subset_catalogue(
        fixture_catalogue, [d["file_id"] for d in fixture_catalogue.files if _case_of(d) != case]
    )
    with GDCEmulator(served, reserve=fixture_catalogue) as emulator:
        response = _publish(emulator, {"file_ids": [slide]})
        assert response.status_code == 200, response.text
        (record,) = response.json()["data"]["published"]
        assert record["related_files"] == rna and record["site"] == "BH"
        assert {d["file_id"] for d in emulator.catalogue.files} == {
            d["file_id"] for d in fixture_catalogue.files
        }
        assert any(c["submitter_id"] == case for c in emulator.catalogue.cases)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "either 'count'"),
        ({"count": 1, "file_ids": ["x"]}, 400, "either 'count'"),
        ({"count": 0}, 400, "'count' must be"),
        ({"count": "2"}, 400, "'count' must be"),
        ({"file_ids": "abc"}, 400, "list of file id"),
        ({"file_ids": ["no-such-file"]}, 404, "not a slide of the reserve"),
    ],
)
def test_bad_requests_are_clear_errors(
    held_back: GDCEmulator, body: dict, status: int, message: str
) -> None:
    response = _publish(held_back, body)
    assert response.status_code == status
    assert message in response.json()["message"]


def test_already_published_and_nothing_left_are_conflicts(
    held_back: GDCEmulator, fixture_catalogue: Catalogue
) -> None:
    served_slide = _slides(fixture_catalogue)[0]
    response = _publish(held_back, {"file_ids": [served_slide]})
    assert response.status_code == 409 and "already published" in response.json()["message"]
    assert _publish(held_back, {"count": 10}).status_code == 200  # the 3 left
    response = _publish(held_back, {"count": 1})
    assert response.status_code == 409 and "nothing left" in response.json()["message"]


def test_an_emulator_without_reserve_says_so(gdc_emulator: GDCEmulator) -> None:
    response = _publish(gdc_emulator, {"count": 1})
    assert response.status_code == 409 and "no reserve" in response.json()["message"]
    unknown = requests.get(f"{gdc_emulator.url}/_emulator/nope", timeout=10)
    assert unknown.status_code == 404


def test_concurrent_publishes_never_publish_a_slide_twice(
    held_back: GDCEmulator, fixture_catalogue: Catalogue
) -> None:
    results: list[list[str]] = []

    def publish_one() -> None:
        answer = _publish(held_back, {"count": 1}).json()
        results.append([r["file_id"] for r in answer["data"]["published"]])

    threads = [threading.Thread(target=publish_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    published = sorted(f for r in results for f in r)
    assert published == _slides(fixture_catalogue)[3:]
    assert len(held_back.catalogue.files) == len(fixture_catalogue.files)


def test_hold_back_rejects_impossible_counts(fixture_catalogue: Catalogue) -> None:
    with pytest.raises(EmulatorError, match="cannot hold back 7"):
        hold_back_slides(fixture_catalogue, 7)


def _command(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="histo-renn")
    publish.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_publish_slides_command_prints_one_json_line_per_slide(
    held_back: GDCEmulator, fixture_catalogue: Catalogue, capsys: pytest.CaptureFixture[str]
) -> None:
    wanted = _slides(fixture_catalogue)[4:]
    argv = ["publish-slides", "--emulator", held_back.url]
    args = _command([*argv, *[a for f in wanted for a in ("--file-id", f)]])
    assert args.handler(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file_id"] for line in lines] == wanted
    assert all(line["event"] == "published" for line in lines)
    args = _command([*argv, "--count", "5"])
    assert args.handler(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # only one was left
    args = _command([*argv, "--count", "1"])
    with pytest.raises(GDCHTTPError, match="nothing left to publish"):
        args.handler(args)


def test_publish_slides_needs_an_emulator_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HISTO_RENN_GDC_URL", raising=False)
    args = _command(["publish-slides", "--count", "1"])
    with pytest.raises(GDCResponseError, match="--emulator URL"):
        args.handler(args)
