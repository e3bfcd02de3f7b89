"""Filter engine, projection, sort and pagination of the emulator (pure, no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from histo_renn_dagster.core.errors import GDCQueryError
from histo_renn_dagster.emulator.filter_engine import compile_filters, values_at
from histo_renn_dagster.emulator.query import (
    Endpoint,
    SearchRequest,
    group_schema,
    pagination,
    parse_search,
    run_search,
)

DOCS: list[dict[str, Any]] = [
    {
        "file_id": "a",
        "data_type": "Slide Image",
        "file_size": 10,
        "version": "1",
        "acl": ["open"],
        "cases": [
            {
                "submitter_id": "TCGA-A2-A25D",
                "samples": [
                    {"sample_type": "Primary Tumor", "is_ffpe": True},
                    {"sample_type": "Solid Tissue Normal", "is_ffpe": False},
                ],
            }
        ],
    },
    {
        "file_id": "b",
        "data_type": "Gene Expression Quantification",
        "file_size": 250,
        "version": "2",
        "acl": ["open"],
        "cases": [{"submitter_id": "TCGA-BH-A0EA", "samples": [{"sample_type": "Primary Tumor"}]}],
    },
    {
        "file_id": "c",
        "data_type": "Gene Expression Quantification",
        "file_size": 3000,
        "acl": ["phs000178"],
        "cases": [
            {"submitter_id": "TCGA-BH-A0EB", "samples": [{"sample_type": "Solid Tissue Normal"}]}
        ],
    },
]


def ids(filters: dict[str, Any]) -> list[str]:
    compiled = compile_filters(filters, "files")
    return [d["file_id"] for d in DOCS if compiled.predicate(d)]


def leaf(op: str, field: str, value: Any) -> dict[str, Any]:
    return {"op": op, "content": {"field": field, "value": value}}


def test_values_at_flattens_nested_lists() -> None:
    assert values_at(DOCS[0], "cases.samples.sample_type") == [
        "Primary Tumor",
        "Solid Tissue Normal",
    ]
    assert values_at(DOCS[0], "acl") == ["open"]
    assert values_at(DOCS[2], "cases.samples.is_ffpe") == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (leaf("=", "data_type", "Slide Image"), ["a"]),
        (leaf("=", "files.data_type", ["Slide Image"]), ["a"]),  # prefix + one-element list
        (leaf("!=", "data_type", "Slide Image"), ["b", "c"]),
        (leaf("in", "cases.submitter_id", ["TCGA-A2-A25D", "TCGA-BH-A0EA"]), ["a", "b"]),
        (leaf("in", "cases.submitter_id", "TCGA-BH-A0EB"), ["c"]),  # scalar accepted
        (leaf("<", "file_size", 250), ["a"]),
        (leaf("<=", "file_size", [250]), ["a", "b"]),
        (leaf(">", "file_size", "250"), ["c"]),  # numbers as strings
        (leaf(">=", "file_size", "250"), ["b", "c"]),
        (leaf("=", "version", 2), ["b"]),  # number against a string field
        (leaf("=", "cases.samples.is_ffpe", "true"), ["a"]),
        (leaf("is", "version", "MISSING"), ["c"]),
        (leaf("not", "version", "MISSING"), ["a", "b"]),
        (leaf("=", "cases.submitter_id", "TCGA-BH-*"), ["b", "c"]),
        (leaf("=", "data_type", "*Quantification"), ["b", "c"]),
        (leaf("=", "data_type", "gene expression quantification"), []),  # case-sensitive
        # any-semantics over nested lists: file a has a tumour AND a normal sample
        (leaf("=", "cases.samples.sample_type", "Solid Tissue Normal"), ["a", "c"]),
        # exclude drops only docs whose values are ALL excluded; excludeifany drops on any
        (leaf("exclude", "cases.samples.sample_type", ["Solid Tissue Normal"]), ["a", "b"]),
        (leaf("excludeifany", "cases.samples.sample_type", ["Solid Tissue Normal"]), ["b"]),
        (leaf("=", "no.such.field", "x"), []),
        (
            {
                "op": "and",
                "content": [
                    leaf("in", "data_type", ["Gene Expression Quantification"]),
                    leaf("=", "cases.samples.sample_type", "Primary Tumor"),
                ],
            },
            ["b"],
        ),
        (
            {
                "op": "or",
                "content": [leaf("=", "file_id", "a"), leaf(">", "file_size", 1000)],
            },
            ["a", "c"],
        ),
        ({"op": "and", "content": []}, ["a", "b", "c"]),
    ],
)
def test_filter_ops(filters: dict[str, Any], expected: list[str]) -> None:
    assert ids(filters) == expected


@pytest.mark.parametrize(
    ("filters", "needle"),
    [
        ({"op": "like", "content": {"field": "x", "value": 1}}, "unknown op"),
        ({"content": []}, "'op'"),
        ({"op": "and", "content": {"field": "x"}}, "list of nodes"),
        ({"op": "=", "content": {"value": 1}}, "content"),
        ({"op": "=", "content": {"field": "x"}}, "no 'value'"),
        ({"op": "in", "content": {"field": "x", "value": []}}, "empty value"),
        ({"op": "<", "content": {"field": "x", "value": [1, 2]}}, "one value"),
        ({"op": "is", "content": {"field": "x", "value": "present"}}, "MISSING"),
    ],
)
def test_malformed_filters_are_query_errors(filters: dict[str, Any], needle: str) -> None:
    with pytest.raises(GDCQueryError, match=needle):
        compile_filters(filters, "files")


def endpoint(docs: list[dict[str, Any]] | None = None) -> Endpoint:
    docs = DOCS if docs is None else docs
    groups, nested = group_schema(docs)
    return Endpoint("files", "file_id", docs, groups=groups, nested=nested)


def test_parse_search_accepts_strings_and_filter_strings() -> None:
    request = parse_search(
        {
            "filters": json.dumps(leaf("=", "files.data_type", "Slide Image")),
            "size": "5",
            "from": "2",
            "pretty": "TRUE",
            "format": "tsv",
            "fields": "files.file_id, cases.submitter_id",
            "sort": "files.file_size:desc,file_id",
        },
        "files",
    )
    assert (request.size, request.from_, request.pretty, request.format) == (5, 2, True, "TSV")
    assert request.fields == ("file_id", "cases.submitter_id")
    assert request.sort == (("file_size", True), ("file_id", False))


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"size": "ten"}, "size"),
        ({"from": "-1"}, "from"),
        ({"format": "CSV"}, "format"),
        ({"sort": "file_size:up"}, "asc or desc"),
        ({"filters": "{not json"}, "not valid JSON"),
        ({"filters": "[1]"}, "JSON object"),
        ({"filters": {"op": "nope", "content": {}}}, "unknown op"),
    ],
)
def test_parse_search_rejects_bad_parameters(params: dict[str, Any], needle: str) -> None:
    with pytest.raises(GDCQueryError, match=needle):
        parse_search(params, "files")


def test_fields_projection_keeps_nested_lists_and_only_requested_leaves() -> None:
    request = SearchRequest(fields=("cases.samples.sample_type", "file_size"), size=10)
    hits = run_search(endpoint(), request).hits
    assert hits[0] == {
        "id": "a",
        "file_size": 10,
        "cases": [
            {"samples": [{"sample_type": "Primary Tumor"}, {"sample_type": "Solid Tissue Normal"}]}
        ],
    }
    assert next(iter(hits[0])) == "id"


def test_default_fields_are_root_scalars_with_explicit_nulls() -> None:
    hit = run_search(endpoint(), SearchRequest(size=10)).hits[2]
    assert hit["version"] is None  # known field, absent on this doc
    assert "cases" not in hit
    assert hit["acl"] == ["phs000178"]


def test_expand_adds_a_group_with_nulls_to_the_defaults() -> None:
    hit = run_search(endpoint(), SearchRequest(expand=("cases.samples",))).hits[2]
    assert hit["cases"] == [{"samples": [{"sample_type": "Solid Tissue Normal", "is_ffpe": None}]}]
    assert hit["data_type"] == "Gene Expression Quantification"
    with pytest.raises(GDCQueryError, match="unknown field group"):
        run_search(endpoint(), SearchRequest(expand=("diagnoses",)))


def test_sort_by_field_and_default_id_order() -> None:
    def order(sort: tuple[tuple[str, bool], ...]) -> list[str]:
        return [h["id"] for h in run_search(endpoint(), SearchRequest(sort=sort)).hits]

    shuffled = endpoint([DOCS[2], DOCS[0], DOCS[1]])
    assert [h["id"] for h in run_search(shuffled, SearchRequest()).hits] == ["a", "b", "c"]
    assert order((("file_size", True),)) == ["c", "b", "a"]
    assert order((("cases.submitter_id", True),)) == ["c", "b", "a"]
    assert order((("version", False),)) == ["a", "b", "c"]  # missing sorts last
    assert order((("version", True),)) == ["b", "a", "c"]
    assert order((("data_type", False), ("file_size", True))) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("total", "size", "from_", "page", "pages"),
    [(0, 10, 0, 0, 0), (0, 0, 0, 0, 0), (79, 0, 0, 1, 79), (10, 3, 9, 4, 4), (10, 5, 10, 3, 2)],
)
def test_pagination_edge_cases(total: int, size: int, from_: int, page: int, pages: int) -> None:
    got = pagination(total, 0, size, from_, "")
    assert (got["page"], got["pages"]) == (page, pages)


def test_pagination_reproduces_every_real_capture(shared_data: Path) -> None:
    checked = 0
    for path in sorted((shared_data / "gdc" / "api_examples").glob("*.json")):
        body = json.loads(path.read_text())
        real = body.get("data", {}).get("pagination") if isinstance(body, dict) else None
        if real is None:
            continue
        ours = pagination(real["total"], real["count"], real["size"], real["from"], "")
        assert (ours["page"], ours["pages"]) == (real["page"], real["pages"]), path.name
        assert set(ours) == set(real), path.name
        checked += 1
    assert checked >= 10


def test_facets_count_documents_and_ignore_their_own_filter() -> None:
    request = SearchRequest(
        filters=leaf("=", "data_type", "Slide Image"),
        facets=("data_type", "cases.samples.sample_type"),
        size=0,
    )
    result = run_search(endpoint(), request)
    assert result.hits == []
    assert result.aggregations is not None
    assert result.aggregations["data_type"]["buckets"] == [
        {"doc_count": 2, "key": "Gene Expression Quantification"},
        {"doc_count": 1, "key": "Slide Image"},
    ]
    assert result.aggregations["cases.samples.sample_type"]["buckets"] == [
        {"doc_count": 1, "key": "Primary Tumor"},
        {"doc_count": 1, "key": "Solid Tissue Normal"},
    ]
