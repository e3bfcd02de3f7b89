"""Local inputs: a GDC sample sheet + gdc-client directory, and the reference's CSV tables."""

from __future__ import annotations

import pytest

from histo_renn_dagster.core.cohort.expression import resolve_genes
from histo_renn_dagster.core.cohort.from_local import (
    SHEET_COLUMNS,
    expression_from_case_values,
    expression_from_sample_sheet,
    locate_file,
    read_sample_sheet,
    read_site_table,
)
from histo_renn_dagster.core.cohort.table import CohortSpec, build_cohort_table
from histo_renn_dagster.core.errors import CohortError
from histo_renn_dagster.emulator.fixture_cohort import SITES
from histo_renn_dagster_tests.core.cohort.helpers import (
    gdc_client_dir,
    sheet_rows,
    write_sheet,
)


def test_sample_sheet_builds_the_same_tumour_matching(fixture_catalogue, tmp_path):
    rows = sheet_rows(fixture_catalogue)
    extra = dict(rows[0], **{"File ID": "x", "File Name": "a.maf.gz"})
    pair = dict(rows[-1], **{"Sample ID": "TCGA-D8-A1XK-01A, TCGA-D8-A1XK-10A"})
    sheet = read_sample_sheet(write_sheet(tmp_path / "sheet.tsv", [*rows, extra, pair]), SITES)
    assert len(sheet.slides) == 6 and len(sheet.expression) == 7 and sheet.other_files == 1
    assert [r.reason for r in sheet.rejected] == ["unusable sample sheet row"]
    assert {s.site_name for s in sheet.slides} == {SITES[s.site_code] for s in sheet.slides}

    data = gdc_client_dir(fixture_catalogue, tmp_path / "gdc")
    expression = expression_from_sample_sheet(sheet, data, resolve_genes(["ERBB2"]))
    keys = expression.frame.set_index("sample_key")
    assert expression.selection.normals_dropped == 1
    assert keys.loc["TCGA-BH-A0EA-01", "sample_barcode"] == "TCGA-BH-A0EA-01A"
    # No aliquot barcodes in a sample sheet: the vial decides between 01A and 01B.
    assert keys.loc["TCGA-A7-A13D-01", "sample_barcode"] == "TCGA-A7-A13D-01A"
    assert keys.loc["TCGA-A7-A13D-01", "rule"] == "vial"

    result = build_cohort_table(
        list(sheet.slides), expression.frame, CohortSpec(), embeddings=None, site_names=SITES
    )
    assert result.frame["unit_id"].tolist() == [
        "TCGA-A2-A25D-01",
        "TCGA-A7-A13D-01",
        "TCGA-AO-A0J6-01",
        "TCGA-BH-A0EA-01",
    ]
    assert {e.reason for e in result.exclusions} == {"no tumour RNA"}  # E2-A1L7


def test_missing_star_file_and_flat_layout(fixture_catalogue, tmp_path):
    sheet = read_sample_sheet(write_sheet(tmp_path / "s.tsv", sheet_rows(fixture_catalogue)))
    data = gdc_client_dir(fixture_catalogue, tmp_path / "flat", flat=True)
    first = sheet.expression[0]
    assert locate_file(data, first.file_id, first.file_name) == data / first.file_name
    (data / first.file_name).unlink()
    table = expression_from_sample_sheet(sheet, data, resolve_genes([]))
    assert [e.reason for e in table.exclusions] == ["STAR file not available"]
    assert len(table.frame) == 4


def test_sheet_and_site_table_errors(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("File ID\tFile Name\nx\ty\n")
    with pytest.raises(CohortError, match="lacks column"):
        read_sample_sheet(bad)
    assert list(SHEET_COLUMNS)[:2] == ["File ID", "File Name"]
    sites = tmp_path / "sites.csv"
    sites.write_text("tss_code,tss_name,other\nA2,Walter Reed,1\nA2,Walter Reed,2\n")
    assert read_site_table(sites) == {"A2": "Walter Reed"}
    sites.write_text("code,name\nA2,Walter Reed\nA2,Elsewhere\n")
    with pytest.raises(CohortError, match="two names"):
        read_site_table(sites)
    sites.write_text("a,b\n1,2\n")
    with pytest.raises(CohortError, match="code,name"):
        read_site_table(sites)


def test_case_values_stay_text_until_judged(tmp_path):
    values = tmp_path / "v.csv"
    values.write_text(
        "case_id,submitter_id,MKI67_tpm_unst\n"
        "c1,TCGA-A2-A25D,12.5\nc2,TCGA-BH-A0EA,\nc3,TCGA-E2-A1L7,abc\n"
    )
    frame = expression_from_case_values(values)
    assert frame["tpm_MKI67"].tolist() == ["12.5", None, "abc"]
    assert set(frame["sample_type_code"]) == {"01"} and set(frame["rule"]) == {"case_level_table"}
    values.write_text("case_id,submitter_id,v\nc1,TCGA-A2-A25D,1\nc1,TCGA-A2-A25D,2\n")
    with pytest.raises(CohortError, match="twice"):
        expression_from_case_values(values)
    values.write_text("case_id,submitter_id,a,b\nc1,TCGA-A2-A25D,1,2\n")
    with pytest.raises(CohortError, match="value column"):
        expression_from_case_values(values)
