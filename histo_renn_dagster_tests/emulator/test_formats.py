"""TSV/XML/manifest rendering, compared with the real GDC captures where we have them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.dom import minidom

from histo_renn_dagster.emulator.formats import flatten, render_manifest, render_tsv, render_xml


def test_flatten_indexes_lists() -> None:
    hit = {"id": "x", "cases": [{"samples": [{"a": 1}, {"a": None}]}], "acl": ["open"], "e": []}
    assert flatten(hit) == {
        "id": "x",
        "cases.0.samples.0.a": 1,
        "cases.0.samples.1.a": None,
        "acl.0": "open",
        "e": None,
    }


def test_tsv_header_matches_real_naming_scheme(shared_data: Path) -> None:
    examples = shared_data / "gdc" / "api_examples"
    real_lines = (examples / "files__POST_format_tsv_response.tsv").read_text().split("\n")
    real_header = real_lines[0].split("\t")
    payload = json.loads((examples / "files__POST_payload_tsv_by_file_id.json").read_text())
    fields = payload["fields"].split(",")
    # Rebuild each real row as a nested hit with exactly the requested fields, render it, and
    # compare header and cells: same flattened names, sorted, id included, LF endings.
    hits = []
    for line in real_lines[1:]:
        if not line:
            continue
        row = dict(zip(real_header, line.split("\t"), strict=True))
        aliquot = {
            "aliquot_id": row["cases.0.samples.0.portions.0.analytes.0.aliquots.0.aliquot_id"],
            "submitter_id": row["cases.0.samples.0.portions.0.analytes.0.aliquots.0.submitter_id"],
        }
        sample_keys = (
            "sample_id",
            "sample_type",
            "submitter_id",
            "tissue_type",
            "tumor_descriptor",
        )
        sample: dict[str, Any] = {k: row[f"cases.0.samples.0.{k}"] for k in sample_keys}
        sample["portions"] = [{"analytes": [{"aliquots": [aliquot]}]}]
        case: dict[str, Any] = {
            "case_id": row["cases.0.case_id"],
            "submitter_id": row["cases.0.submitter_id"],
        }
        case["samples"] = [sample]
        top = ("data_category", "data_type", "file_id", "file_name")
        hits.append({"id": row["id"], **{k: row[k] for k in top}, "cases": [case]})
    ours = render_tsv(hits, fields).decode()
    assert ours.split("\n")[0].split("\t") == real_header
    assert real_header == sorted(real_header) and "id" in real_header
    assert ours == "\n".join(line for line in real_lines if line) + "\n"
    assert "\r" not in ours


def test_simple_tsv_matches_real_cases_example(shared_data: Path) -> None:
    real = shared_data / "gdc/api_examples/cases__fields_submitter_id_size5_format_TSV.tsv"
    lines = [line.split("\t") for line in real.read_text().splitlines() if line]
    hits = [{"id": i, "submitter_id": s} for i, s in lines[1:]]
    assert render_tsv(hits).decode().splitlines() == ["\t".join(x) for x in lines]


def test_empty_tsv_still_has_a_header() -> None:
    assert render_tsv([], ["file_name"]).decode() == "file_name\tid\n"


def test_xml_has_the_real_structure(shared_data: Path) -> None:
    real = shared_data / "gdc/api_examples/cases__fields_submitter_id_size5_format_XML.xml"
    real_doc = minidom.parseString(real.read_bytes())

    def text(item: minidom.Element, tag: str) -> str:
        return item.getElementsByTagName(tag)[0].childNodes[0].nodeValue or ""

    items = real_doc.getElementsByTagName("item")
    hits = [{"id": text(i, "id"), "submitter_id": text(i, "submitter_id")} for i in items]
    pagination = {
        "count": 5,
        "total": 86962,
        "size": 5,
        "from": 0,
        "sort": "",
        "page": 1,
        "pages": 17393,
    }
    payload = {"data": {"hits": hits, "pagination": pagination}, "warnings": {}}
    ours = render_xml(payload, pretty=True).decode()
    assert ours.split() == real.read_text().split()  # same elements, text and nesting
    compact = render_xml(payload, pretty=False).decode()
    assert compact.startswith('<?xml version="1.0" ?><response><data><hits><item><id>')


def test_manifest_layout() -> None:
    docs = [
        {
            "file_id": "u1",
            "file_name": "a.svs",
            "md5sum": "0" * 32,
            "file_size": 12,
            "state": "released",
        }
    ]
    assert render_manifest(docs).decode() == (
        "id\tfilename\tmd5\tsize\tstate\nu1\ta.svs\t" + "0" * 32 + "\t12\treleased\n"
    )
