"""The emulator over real HTTP on 127.0.0.1, compared with real GDC captures where we have them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from histo_renn_dagster.emulator.catalogue import Catalogue, catalogue_from_payloads
from histo_renn_dagster.emulator.server import GDCEmulator

SLIDE_QUERY = {
    "filters": {
        "op": "and",
        "content": [
            {"op": "in", "content": {"field": "cases.project.project_id", "value": ["TCGA-BRCA"]}},
            {"op": "in", "content": {"field": "files.data_format", "value": ["SVS"]}},
            {
                "op": "in",
                "content": {"field": "files.experimental_strategy", "value": ["Diagnostic Slide"]},
            },
        ],
    },
    "fields": "file_id,file_name,md5sum,file_size,cases.submitter_id,cases.samples.sample_type,"
    "cases.tissue_source_site.code",
    "format": "JSON",
    "size": 500,
    "from": 0,
    "sort": "file_id:asc",
}


def real(shared_data: Path, name: str) -> Any:
    return json.loads((shared_data / "gdc" / "api_examples" / name).read_text())


def test_status_has_the_current_shape(gdc_emulator: GDCEmulator) -> None:
    body = requests.get(f"{gdc_emulator.url}/status", timeout=10).json()
    assert {"commit", "data_release", "status", "tag", "version"} <= set(body)
    assert body["status"] == "OK" and body["version"] == 1 and "data" not in body
    assert body["data_release"].startswith("Data Release 45.0")
    assert body["data_release_version"]["major"] == 45


def test_search_envelope_matches_real_capture(gdc_emulator: GDCEmulator, shared_data: Path) -> None:
    reference = real(shared_data, "files__from0_size2_sort_file_size_asc.json")
    body = requests.get(
        f"{gdc_emulator.url}/files", params={"from": 0, "size": 2, "sort": "file_size:asc"}
    ).json()
    assert set(body) == set(reference) == {"data", "warnings"}
    assert set(body["data"]) == set(reference["data"])
    assert set(body["data"]["pagination"]) == set(reference["data"]["pagination"])
    assert body["warnings"] == {}
    real_keys = set(reference["data"]["hits"][0])
    assert real_keys <= set(body["data"]["hits"][0])  # every real default field is served
    assert "md5sum" not in body["data"]["hits"][0]  # not a default in current releases
    sizes = [h["file_size"] for h in body["data"]["hits"]]
    assert sizes == sorted(sizes) and isinstance(sizes[0], int)


def test_single_entity_envelope(gdc_emulator: GDCEmulator, shared_data: Path) -> None:
    reference = real(shared_data, "files__single_uuid_20f45e04.json")
    doc = gdc_emulator.catalogue.files[0]
    body = requests.get(f"{gdc_emulator.url}/files/{doc['file_id']}").json()
    assert set(body) == set(reference)
    assert set(reference["data"]) <= set(body["data"])
    assert "hits" not in body["data"] and "pagination" not in body["data"]
    assert body["data"]["file_size"] == gdc_emulator.catalogue.blob(doc["file_id"]).size
    case = requests.get(f"{gdc_emulator.url}/v0/cases/{doc['cases'][0]['case_id']}").json()
    assert case["data"]["submitter_id"] == doc["cases"][0]["submitter_id"]


def test_unknown_ids_are_404_json(gdc_emulator: GDCEmulator) -> None:
    for path in ("/files/nope", "/cases/nope", "/data/nope", "/manifest/nope", "/nowhere"):
        response = requests.get(gdc_emulator.url + path, timeout=10)
        assert response.status_code == 404, path
        assert "message" in response.json()


def test_canonical_slide_query_post_json(gdc_emulator: GDCEmulator) -> None:
    response = requests.post(f"{gdc_emulator.url}/files", json=SLIDE_QUERY, timeout=10)
    hits = response.json()["data"]["hits"]
    assert len(hits) == 6
    assert [h["file_id"] for h in hits] == sorted(h["file_id"] for h in hits)
    for hit in hits:
        blob = gdc_emulator.catalogue.blob(hit["file_id"])
        assert (hit["md5sum"], hit["file_size"]) == (blob.md5, blob.size)
        assert set(hit) == {"id", "file_id", "file_name", "md5sum", "file_size", "cases"}
        assert set(hit["cases"][0]) == {"submitter_id", "samples", "tissue_source_site"}


def test_filters_as_string_in_json_form_body_and_get(gdc_emulator: GDCEmulator) -> None:
    as_string = {**SLIDE_QUERY, "filters": json.dumps(SLIDE_QUERY["filters"]), "size": "500"}
    form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in SLIDE_QUERY.items()}
    answers = [
        requests.post(f"{gdc_emulator.url}/files", json=as_string).json(),
        requests.post(f"{gdc_emulator.url}/files", data=form).json(),
        requests.get(f"{gdc_emulator.url}/files", params=form).json(),
        requests.post(f"{gdc_emulator.url}/v0/files", json=SLIDE_QUERY).json(),
    ]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["data"]["pagination"]["total"] == 6


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"data": b"{broken", "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({"json": {"filters": {"op": "~", "content": {}}}}, "unknown op"),
        ({"json": {"filters": "{nope"}}, "filters"),
        ({"json": {"size": "lots"}}, "size"),
        ({"json": {"format": "YAML"}}, "format"),
        ({"json": {"expand": "no_such_group"}}, "field group"),
    ],
)
def test_malformed_requests_are_400_json(
    gdc_emulator: GDCEmulator, kwargs: dict[str, Any], needle: str
) -> None:
    response = requests.post(f"{gdc_emulator.url}/files", timeout=10, **kwargs)
    assert response.status_code == 400
    assert needle in response.json()["message"]


def test_empty_result_pagination(gdc_emulator: GDCEmulator, shared_data: Path) -> None:
    reference = real(shared_data, "cases__excludeifany_empty_result.json")
    query = {"filters": {"op": "=", "content": {"field": "submitter_id", "value": "TCGA-XX"}}}
    body = requests.post(f"{gdc_emulator.url}/cases", json=query).json()
    assert body["data"]["pagination"] == reference["data"]["pagination"]
    assert body["data"]["hits"] == []


def test_size_zero_with_facets(gdc_emulator: GDCEmulator) -> None:
    params = {"size": "0", "facets": "data_format,cases.tissue_source_site.code"}
    body = requests.get(f"{gdc_emulator.url}/files", params=params).json()["data"]
    assert body["hits"] == []
    assert body["pagination"]["pages"] == body["pagination"]["total"] == 13
    assert body["pagination"]["page"] == 1
    assert body["aggregations"]["data_format"]["buckets"] == [
        {"doc_count": 7, "key": "TSV"},
        {"doc_count": 6, "key": "SVS"},
    ]


def test_tsv_and_xml_formats(gdc_emulator: GDCEmulator) -> None:
    params = {
        "format": "TSV",
        "fields": "file_name,cases.samples.sample_type",
        "size": 100,
        "filters": json.dumps(SLIDE_QUERY["filters"]),
    }
    response = requests.get(f"{gdc_emulator.url}/files", params=params)
    assert response.headers["Content-Type"].startswith("text/tab-separated-values")
    lines = response.text.split("\n")
    assert lines[0].split("\t") == ["cases.0.samples.0.sample_type", "file_name", "id"]
    assert len(lines) == 8 and lines[-1] == ""
    xml = requests.get(f"{gdc_emulator.url}/files", params={**params, "format": "xml"}).text
    assert xml.startswith('<?xml version="1.0" ?><response><data><hits><item>')
    pretty = requests.get(f"{gdc_emulator.url}/projects", params={"pretty": "true"}).text
    assert pretty.startswith('{\n  "data"')


def test_return_type_manifest_lists_every_hit(gdc_emulator: GDCEmulator) -> None:
    body = {**SLIDE_QUERY, "size": 1, "return_type": "manifest"}
    response = requests.post(f"{gdc_emulator.url}/files", json=body)
    lines = response.text.splitlines()
    assert lines[0] == "id\tfilename\tmd5\tsize\tstate" and len(lines) == 7
    assert response.headers["Content-Disposition"].startswith("attachment; filename=gdc_manifest.")
    ids = [line.split("\t")[0] for line in lines[1:3]]
    by_path = requests.get(f"{gdc_emulator.url}/manifest/{','.join(ids)}").text
    by_post = requests.post(f"{gdc_emulator.url}/manifest", json={"ids": ids}).text
    assert by_path == by_post == "\n".join(lines[:3]) + "\n"


def test_legacy_files_is_empty(gdc_emulator: GDCEmulator) -> None:
    body = requests.get(f"{gdc_emulator.url}/v0/legacy/files").json()
    assert body["data"]["hits"] == [] and body["data"]["pagination"]["total"] == 0


def test_mapping_lists_fields_and_groups(gdc_emulator: GDCEmulator) -> None:
    body = requests.get(f"{gdc_emulator.url}/files/_mapping").json()
    assert {"_mapping", "defaults", "expand", "fields", "multi", "nested"} <= set(body)
    assert "cases.samples.sample_type" in body["fields"] and "md5sum" in body["fields"]
    assert "cases.samples" in body["expand"] and "cases" in body["nested"]


def test_paging_loop_returns_every_hit_exactly_once(
    gdc_emulator_factory: Callable[..., GDCEmulator],
) -> None:
    payloads = [(f"{i:08d}-0000-4000-8000-{i:012d}", f"f{i}.tsv", b"") for i in range(1133)]
    emulator = gdc_emulator_factory(catalogue_from_payloads(payloads[::-1]))
    seen: list[str] = []
    offset, pages = 0, 0
    with requests.Session() as session:
        while True:
            body = {"size": "100", "from": str(offset), "fields": "file_name"}
            data = session.post(f"{emulator.url}/files", json=body).json()["data"]
            page = data["pagination"]
            assert page["total"] == 1133 and page["pages"] == 12
            assert page["page"] == offset // 100 + 1
            seen += [hit["id"] for hit in data["hits"]]
            offset += page["count"]
            pages += 1
            if page["count"] == 0 or offset >= page["total"]:
                break
    assert pages == 12 and seen == sorted(p[0] for p in payloads)


def test_download_headers_and_ranges(gdc_emulator: GDCEmulator) -> None:
    doc = next(f for f in gdc_emulator.catalogue.files if f["data_format"] == "SVS")
    blob = gdc_emulator.catalogue.blob(doc["file_id"])
    data = blob.path().read_bytes()
    url = f"{gdc_emulator.url}/data/{doc['file_id']}"
    full = requests.get(url, headers={"X-Auth-Token": "secret-token"})
    assert full.status_code == 200 and full.content == data
    assert full.headers["Content-Disposition"] == f"attachment; filename={doc['file_name']}"
    assert full.headers["Content-Length"] == str(len(data))
    assert full.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    assert full.headers["Content-Type"] == "application/octet-stream"
    assert full.headers["Accept-Ranges"] == "bytes"
    cases = [("bytes=0-0", 0, 0), ("bytes=100-199", 100, 199), ("bytes=1000-", 1000, len(data) - 1)]
    cases += [("bytes=-10", len(data) - 10, len(data) - 1), ("bytes=5-99999999", 5, len(data) - 1)]
    for header, start, end in cases:
        part = requests.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
        assert part.content == data[start : end + 1]
    for header in (f"bytes={len(data)}-", "bytes=-0"):
        refused = requests.get(url, headers={"Range": header})
        assert refused.status_code == 416
        assert refused.headers["Content-Range"] == f"bytes */{len(data)}"
    assert requests.head(url).status_code == 400
    log = gdc_emulator.requests
    assert log[0].token_sent is True and all(not r.token_sent for r in log[1:])
    assert "secret-token" not in repr(log)


def test_bundles_are_tar_gz_or_tar_with_manifest(gdc_emulator: GDCEmulator) -> None:
    docs = gdc_emulator.catalogue.files[:3]
    ids = [d["file_id"] for d in docs]
    answers = [
        requests.get(f"{gdc_emulator.url}/data/{','.join(ids)}"),
        requests.post(f"{gdc_emulator.url}/data", json={"ids": ids}),
        requests.post(f"{gdc_emulator.url}/data", data={"ids": ids}),
        requests.post(f"{gdc_emulator.url}/data?tarfile", json={"ids": ids}),
    ]
    for index, response in enumerate(answers):
        plain = index == 3
        assert response.content[:2] != b"\x1f\x8b" if plain else response.content[:2] == b"\x1f\x8b"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment; filename=gdc_download_")
        assert disposition.endswith(".tar" if plain else ".tar.gz")
        with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
            names = tar.getnames()
            manifest = tar.extractfile("MANIFEST.txt").read().decode()  # type: ignore[union-attr]
            members = {n: tar.extractfile(n).read() for n in names if n != "MANIFEST.txt"}  # type: ignore[union-attr]
        assert sorted(names) == sorted(
            ["MANIFEST.txt", *(f"{d['file_id']}/{d['file_name']}" for d in docs)]
        )
        rows = [line.split("\t") for line in manifest.splitlines()]
        assert rows[0] == ["id", "filename", "md5", "size", "state"]
        for row in rows[1:]:
            data = members[f"{row[0]}/{row[1]}"]
            assert (hashlib.md5(data).hexdigest(), str(len(data)), row[4]) == (
                row[2],
                row[3],
                "released",
            )
    bad = requests.post(f"{gdc_emulator.url}/data", json={"ids": []})
    assert bad.status_code == 400 and "uuids" in bad.json()["message"]


def test_hostile_file_name_is_served_verbatim(
    gdc_emulator_factory: Callable[..., GDCEmulator],
) -> None:
    cat = catalogue_from_payloads([("11111111-1111-4111-8111-111111111111", "../../x", b"pwn")])
    emulator = gdc_emulator_factory(cat)
    file_id = cat.files[0]["file_id"]
    response = requests.get(f"{emulator.url}/data/{file_id}")
    assert response.headers["Content-Disposition"] == "attachment; filename=../../x"
    bundle = requests.get(f"{emulator.url}/data/{file_id},{file_id}")  # duplicates collapse
    with tarfile.open(fileobj=io.BytesIO(bundle.content)) as tar:
        assert tar.getnames() == ["MANIFEST.txt", f"{file_id}/../../x"]


def test_controlled_files_need_a_token(gdc_emulator_factory: Callable[..., GDCEmulator]) -> None:
    cat: Catalogue = catalogue_from_payloads(
        [("22222222-2222-4222-8222-222222222222", "c.bam", b"x")], access="controlled"
    )
    url = f"{gdc_emulator_factory(cat).url}/data/{cat.files[0]['file_id']}"
    assert requests.get(url).status_code == 403
    assert requests.get(url, headers={"X-Auth-Token": "t"}).content == b"x"


def test_single_entity_expand_matches_real_shape(
    gdc_emulator: GDCEmulator, shared_data: Path
) -> None:
    reference = real(shared_data, "files__single_uuid_expand_cases.samples.json")["data"]
    doc = next(f for f in gdc_emulator.catalogue.files if f["data_format"] == "TSV")
    url = f"{gdc_emulator.url}/files/{doc['file_id']}"
    body = requests.get(url, params={"expand": "cases.samples"}).json()["data"]
    assert set(body["cases"][0]) == set(reference["cases"][0]) == {"samples"}
    real_sample, our_sample = reference["cases"][0]["samples"][0], body["cases"][0]["samples"][0]
    shared = {"sample_type_id", "sample_id", "sample_type", "is_ffpe", "preservation_method"}
    assert shared <= set(real_sample) & set(our_sample)
    assert our_sample["tumor_code"] is None  # explicit null, as in the real capture
    assert "portions" not in our_sample  # a group expands its own scalars only
    assert {"file_name", "file_size", "data_format"} <= set(body)  # defaults stay
    fields = requests.get(url, params={"fields": "file_name,analysis.workflow_type"}).json()
    assert fields["data"] == {
        "file_name": doc["file_name"],
        "analysis": {"workflow_type": "STAR - Counts"},
    }
