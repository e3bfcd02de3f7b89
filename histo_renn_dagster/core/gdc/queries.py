"""The project's two canonical ``/files`` searches (GDC_API.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass

from histo_renn_dagster.core.errors import GDCFilterError
from histo_renn_dagster.core.gdc.filters import FilterNode, and_, field

SLIDE_FIELDS: tuple[str, ...] = (
    "file_id",
    "file_name",
    "md5sum",
    "file_size",
    "state",
    "access",
    "data_format",
    "data_type",
    "data_category",
    "experimental_strategy",
    "cases.case_id",
    "cases.submitter_id",
    "cases.project.project_id",
    "cases.samples.sample_id",
    "cases.samples.submitter_id",
    "cases.samples.sample_type",
    "cases.samples.sample_type_id",
    "cases.samples.tissue_type",
    "cases.samples.portions.slides.submitter_id",
    "cases.tissue_source_site.code",
    "cases.tissue_source_site.name",
)

EXPRESSION_FIELDS: tuple[str, ...] = (
    "file_id",
    "file_name",
    "md5sum",
    "file_size",
    "state",
    "access",
    "data_format",
    "analysis.workflow_type",
    "cases.case_id",
    "cases.submitter_id",
    "cases.tissue_source_site.code",
    "cases.samples.submitter_id",
    "cases.samples.sample_type",
    "cases.samples.sample_type_id",
    "cases.samples.tissue_type",
    "cases.samples.is_ffpe",
    "cases.samples.preservation_method",
    "cases.samples.portions.analytes.aliquots.aliquot_id",
    "cases.samples.portions.analytes.aliquots.submitter_id",
)

# Paging is only stable when the order is: sort by the unique id (GDC_API.md 2.3).
_STABLE_SORT = "file_id:asc"


@dataclass(frozen=True)
class SearchSpec:
    """One search: endpoint (``"files"``), filter tree, returned fields and sort (``field:asc``)."""

    endpoint: str
    filters: FilterNode | None
    fields: tuple[str, ...]
    sort: str | None = None


def _check_project(project_id: str) -> str:
    if not isinstance(project_id, str) or not project_id.strip():
        raise GDCFilterError(
            f"project_id must be a non-empty string such as 'TCGA-BRCA', got {project_id!r}"
        )
    return project_id.strip()


def slide_files_query(project_id: str) -> SearchSpec:
    """Diagnostic (FFPE, ``DX``) SVS slides of ``project_id``."""
    project = _check_project(project_id)
    filters = and_(
        field("cases.project.project_id").isin([project]),
        field("files.data_format").isin(["SVS"]),
        field("files.experimental_strategy").isin(["Diagnostic Slide"]),
    )
    return SearchSpec("files", filters, SLIDE_FIELDS, _STABLE_SORT)


def expression_files_query(project_id: str) -> SearchSpec:
    """STAR - Counts gene expression files of ``project_id``."""
    project = _check_project(project_id)
    filters = and_(
        field("cases.project.project_id").isin([project]),
        field("files.data_type").isin(["Gene Expression Quantification"]),
        field("files.analysis.workflow_type").isin(["STAR - Counts"]),
    )
    return SearchSpec("files", filters, EXPRESSION_FIELDS, _STABLE_SORT)
