"""Filter builder JSON and the canonical queries of GDC_API.md section 3."""

from __future__ import annotations

import json

import pytest

from histo_renn_dagster.core.errors import GDCFilterError
from histo_renn_dagster.core.gdc.filters import and_, field, or_
from histo_renn_dagster.core.gdc.queries import (
    SearchSpec,
    expression_files_query,
    slide_files_query,
)


def test_leaf_operators_produce_gdc_json() -> None:
    f = field("cases.samples.sample_type")
    assert f.isin(["Primary Tumor", "Metastatic"]).to_dict() == {
        "op": "in",
        "content": {"field": "cases.samples.sample_type", "value": ["Primary Tumor", "Metastatic"]},
    }
    assert f.isin("Primary Tumor").to_dict()["content"]["value"] == ["Primary Tumor"]
    assert f.eq("x").to_dict() == {"op": "=", "content": {"field": f.name, "value": "x"}}
    assert f.ne("x").to_dict()["op"] == "!="
    ops = {g(3).to_dict()["op"] for g in (f.lt, f.le, f.gt, f.ge)}
    assert ops == {"<", "<=", ">", ">="}
    assert f.ge(3).to_dict()["content"]["value"] == 3
    assert f.missing().to_dict() == {"op": "is", "content": {"field": f.name, "value": "MISSING"}}
    assert f.present().to_dict()["op"] == "not"
    assert f.exclude(["a"]).to_dict() == {
        "op": "exclude",
        "content": {"field": f.name, "value": ["a"]},
    }
    assert f.excludeifany(("a", "b")).to_dict()["content"]["value"] == ["a", "b"]


def test_combinations_nest_and_serialise_to_json() -> None:
    node = and_(
        field("cases.project.project_id").isin(["TCGA-BRCA"]),
        or_(field("file_size").lt(10), and_(field("file_size").ge(100))),
    )
    expected = {
        "op": "and",
        "content": [
            {"op": "in", "content": {"field": "cases.project.project_id", "value": ["TCGA-BRCA"]}},
            {
                "op": "or",
                "content": [
                    {"op": "<", "content": {"field": "file_size", "value": 10}},
                    {
                        "op": "and",
                        "content": [{"op": ">=", "content": {"field": "file_size", "value": 100}}],
                    },
                ],
            },
        ],
    }
    assert node.to_dict() == expected
    assert json.loads(json.dumps(node.to_dict())) == expected
    hash(node)  # frozen nodes are hashable so they fit in frozen SearchSpec records


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a.", "a b", "a/b", 3])
def test_bad_field_names_are_refused(name: object) -> None:
    with pytest.raises(GDCFilterError, match="field name"):
        field(name)  # type: ignore[arg-type]


def test_bad_values_and_empty_combinations_are_refused() -> None:
    with pytest.raises(GDCFilterError, match="empty value list"):
        field("a").isin([])
    with pytest.raises(GDCFilterError, match="'a'"):
        field("a").eq(None)  # type: ignore[arg-type]
    with pytest.raises(GDCFilterError, match="'in' on field 'a'"):
        field("a").isin([{"x": 1}])  # type: ignore[list-item]
    with pytest.raises(GDCFilterError, match="at least one"):
        and_()
    with pytest.raises(GDCFilterError, match="forget"):
        or_(field("a"))  # type: ignore[arg-type]


def test_slide_query_matches_the_canonical_request() -> None:
    spec = slide_files_query("TCGA-BRCA")
    assert isinstance(spec, SearchSpec)
    assert spec.endpoint == "files"
    assert spec.sort == "file_id:asc"
    assert spec.filters is not None
    assert spec.filters.to_dict() == {
        "op": "and",
        "content": [
            {"op": "in", "content": {"field": "cases.project.project_id", "value": ["TCGA-BRCA"]}},
            {"op": "in", "content": {"field": "files.data_format", "value": ["SVS"]}},
            {
                "op": "in",
                "content": {"field": "files.experimental_strategy", "value": ["Diagnostic Slide"]},
            },
        ],
    }
    for name in (
        "file_id",
        "md5sum",
        "file_size",
        "cases.samples.sample_type_id",
        "cases.samples.portions.slides.submitter_id",
        "cases.tissue_source_site.code",
    ):
        assert name in spec.fields
    assert len(set(spec.fields)) == len(spec.fields)


def test_expression_query_matches_the_canonical_request() -> None:
    spec = expression_files_query("TCGA-BRCA")
    assert spec.filters is not None
    leaves = {
        (c["content"]["field"], tuple(c["content"]["value"]))
        for c in spec.filters.to_dict()["content"]
    }
    assert leaves == {
        ("cases.project.project_id", ("TCGA-BRCA",)),
        ("files.data_type", ("Gene Expression Quantification",)),
        ("files.analysis.workflow_type", ("STAR - Counts",)),
    }
    for name in (
        "cases.samples.sample_type_id",
        "cases.samples.preservation_method",
        "cases.tissue_source_site.code",
        "analysis.workflow_type",
        "cases.samples.portions.analytes.aliquots.submitter_id",
        "md5sum",
    ):
        assert name in spec.fields
    assert len(set(spec.fields)) == len(spec.fields)


@pytest.mark.parametrize("project", ["", "  ", None])
def test_queries_need_a_project(project: object) -> None:
    with pytest.raises(GDCFilterError, match="project_id"):
        slide_files_query(project)  # type: ignore[arg-type]
