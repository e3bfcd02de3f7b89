"""Build the cohort table from local files, with the same core code as the assets.

Two inputs are supported (``histo-renn cohort``):

1. **gdc-client downloads**: a GDC portal sample sheet (``gdc_sample_sheet.<date>.tsv``: ``File ID,
   File Name, Data Category, Data Type, Project ID, Case ID, Sample ID, Sample Type``, extra
   columns such as ``Preservation Method`` allowed) and the directory gdc-client downloaded into
   (``<dir>/<file_id>/<file_name>``, or flat ``<dir>/<file_name>``). SVS rows become slides, STAR
   rows expression files; the sheet has no aliquot barcodes, so among several RNA files of one
   tumour sample the rule decides by preservation method (when the sheet has it), vial, then file
   id. The site code is the barcode's tissue source site; names come from a site table
   (``code,name`` or ``tss_code,tss_name`` CSV), else the code doubles as the name.
2. **The reference's CSV tables**: a slide catalogue (``case_id, submitter_id, project, tss_code,
   tss_name, file_name, file_id``) and case-level values (``case_id, submitter_id, <TPM column>``).
   Case-level values carry no sample type; each is taken as the case's primary tumour (01) sample
   (rule ``case_level_table``), the only tumour sample type those tables were built from.

Embeddings, when given, are ``<file_id>.h5`` files in one directory (the lake's naming).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from histo_renn_dagster.core.cohort.expression import (
    MKI67,
    Exclusion,
    ExpressionTable,
    Gene,
    build_expression_table,
    select_tumour_expression,
)
from histo_renn_dagster.core.errors import CohortError, HistoRennError
from histo_renn_dagster.core.gdc.barcodes import parse_barcode
from histo_renn_dagster.core.gdc.paths import file_destination, safe_file_name
from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile

SHEET_COLUMNS = (
    "File ID",
    "File Name",
    "Data Category",
    "Data Type",
    "Project ID",
    "Case ID",
    "Sample ID",
    "Sample Type",
)
CATALOGUE_COLUMNS = ("case_id", "submitter_id", "tss_code", "tss_name", "file_name", "file_id")
CASE_LEVEL_RULE = "case_level_table"
STAR_SUFFIX = ".rna_seq.augmented_star_gene_counts.tsv"


def _read_csv(path: str | Path, sep: str, what: str, required: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise CohortError(f"{what} {str(path)!r} cannot be read: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CohortError(
            f"{what} {str(path)!r} lacks column(s) {', '.join(missing)}; "
            f"found {list(frame.columns)}"
        )
    for column in frame.columns:
        frame[column] = frame[column].str.strip()
    return frame


@dataclass(frozen=True)
class SampleSheet:
    slides: tuple[SlideFile, ...]
    expression: tuple[ExpressionFile, ...]
    rejected: tuple[Exclusion, ...]
    other_files: int  # rows that are neither SVS slides nor STAR-Counts files


def _sheet_record(row: Mapping[str, str], site_names: Mapping[str, str] | None) -> Any:
    file_id, name = row["File ID"], row["File Name"]
    if "," in row["Case ID"] or "," in row["Sample ID"]:
        raise CohortError(f"{file_id}: several samples ({row['Sample ID']}); expected one")
    sample: dict[str, Any] = {"submitter_id": row["Sample ID"], "sample_type": row["Sample Type"]}
    if row.get("Preservation Method"):
        sample["preservation_method"] = row["Preservation Method"]
    case: dict[str, Any] = {
        "submitter_id": row["Case ID"],
        "project": {"project_id": row["Project ID"]},
        "samples": [sample],
    }
    if name.lower().endswith(".svs"):
        tss = parse_barcode(row["Case ID"]).tss
        names = site_names if site_names is not None else {}
        case["tissue_source_site"] = {"code": tss, "name": names.get(tss)}
        return SlideFile.from_hit({"file_id": file_id, "file_name": name, "cases": [case]})
    return ExpressionFile.from_hit({"file_id": file_id, "file_name": name, "cases": [case]})


def read_sample_sheet(path: str | Path, site_names: Mapping[str, str] | None = None) -> SampleSheet:
    """Slides and STAR files of a GDC sample sheet; unusable rows are rejected with a reason."""
    frame = _read_csv(path, "\t", "sample sheet", SHEET_COLUMNS)
    slides: list[SlideFile] = []
    expression: list[ExpressionFile] = []
    rejected: list[Exclusion] = []
    other = 0
    for row in frame.to_dict("records"):
        name = row["File Name"]
        if not (name.lower().endswith(".svs") or name.endswith(STAR_SUFFIX)):
            other += 1
            continue
        try:
            record = _sheet_record(row, site_names)
        except HistoRennError as exc:
            rejected.append(Exclusion(row["File ID"], "unusable sample sheet row", str(exc)))
            continue
        if isinstance(record, SlideFile):
            slides.append(record)
        else:
            expression.append(record)
    return SampleSheet(tuple(slides), tuple(expression), tuple(rejected), other)


def locate_file(data_dir: str | Path, file_id: str, file_name: str) -> Path | None:
    """``<dir>/<file_id>/<file_name>`` (gdc-client layout) or ``<dir>/<file_name>``, if present."""
    for candidate in (
        file_destination(data_dir, file_id, file_name),
        Path(data_dir) / safe_file_name(file_name),
    ):
        if candidate.is_file():
            return candidate
    return None


def read_site_table(path: str | Path) -> dict[str, str]:
    """``{code: name}`` from a CSV with ``code,name`` or ``tss_code,tss_name`` columns."""
    head = _read_csv(path, ",", "site table", ())
    pair = next(
        (p for p in (("code", "name"), ("tss_code", "tss_name")) if set(p) <= set(head.columns)),
        None,
    )
    if pair is None:
        raise CohortError(
            f"site table {str(path)!r} needs columns code,name or tss_code,tss_name; "
            f"found {list(head.columns)}"
        )
    sites: dict[str, str] = {}
    for code, name in zip(head[pair[0]], head[pair[1]], strict=True):
        if not code or not name:
            raise CohortError(f"site table {str(path)!r}: empty code or name ({code!r}, {name!r})")
        if sites.setdefault(code.upper(), name) != name:
            raise CohortError(
                f"site table {str(path)!r}: code {code} has two names {sites[code.upper()]!r} "
                f"and {name!r}"
            )
    return sites


def expression_from_sample_sheet(
    sheet: SampleSheet, data_dir: str | Path, genes: Sequence[Gene]
) -> ExpressionTable:
    """The expression table of the sheet's STAR files found under ``data_dir``."""
    selection = select_tumour_expression(sheet.expression)
    paths = {}
    for choice in selection.samples:
        found = locate_file(data_dir, choice.chosen.file_id, choice.chosen.file_name)
        if found is not None:
            paths[choice.chosen.file_id] = found
    return build_expression_table(selection, paths, genes)


def slides_from_catalogue(path: str | Path) -> tuple[list[SlideFile], list[Exclusion]]:
    """Slides of the reference's catalogue CSV (``diagnostic_slides.csv``)."""
    frame = _read_csv(path, ",", "slide catalogue", CATALOGUE_COLUMNS)
    slides, rejected = [], []
    for row in frame.to_dict("records"):
        case: dict[str, Any] = {"case_id": row["case_id"], "submitter_id": row["submitter_id"]}
        if row.get("project"):
            case["project"] = {"project_id": row["project"]}
        if row["tss_code"]:
            case["tissue_source_site"] = {"code": row["tss_code"], "name": row["tss_name"]}
        hit = {"file_id": row["file_id"], "file_name": row["file_name"], "cases": [case]}
        try:
            slides.append(SlideFile.from_hit(hit))
        except HistoRennError as exc:
            rejected.append(Exclusion(row["file_id"], "unusable catalogue row", str(exc)))
    return slides, rejected


def expression_from_case_values(
    path: str | Path, value_column: str | None = None, gene: Gene = MKI67
) -> pd.DataFrame:
    """Case-level values as an expression table of primary tumour (01) samples.

    ``value_column`` defaults to the only column besides ``case_id`` and ``submitter_id``. Values
    stay text here: empty becomes None ("missing TPM"), anything else is judged by the cohort
    builder, so "abc" is excluded as "non-numeric TPM" rather than turned into NaN.
    """
    frame = _read_csv(path, ",", "case value table", ("case_id", "submitter_id"))
    if value_column is None:
        rest = [c for c in frame.columns if c not in ("case_id", "submitter_id")]
        if len(rest) != 1:
            raise CohortError(
                f"case value table {str(path)!r}: name the value column, one of {rest}"
            )
        value_column = rest[0]
    if value_column not in frame.columns:
        raise CohortError(f"case value table {str(path)!r} has no column {value_column!r}")
    repeated = frame.loc[frame["submitter_id"].str.upper().duplicated(), "submitter_id"]
    if len(repeated):
        raise CohortError(
            f"case value table {str(path)!r} lists case(s) {sorted(set(repeated))[:5]} twice"
        )
    rows = []
    for row in frame.to_dict("records"):
        case = parse_barcode(row["submitter_id"]).case
        rows.append(
            {
                "sample_key": f"{case}-01",
                "case_id": row["case_id"] or None,
                "case_barcode": case,
                "sample_barcode": f"{case}-01",
                "sample_type_code": "01",
                "sample_type": "Primary Tumor",
                "file_id": None,
                "aliquot_barcode": None,
                "rule": CASE_LEVEL_RULE,
                gene.column: row[value_column] or None,
            }
        )
    return pd.DataFrame(rows, dtype=object)  # keeps None as None (pandas 3 infers str + NaN)
