from __future__ import annotations

import csv

import pytest

from histo_renn_dagster.core.errors import BarcodeError
from histo_renn_dagster.core.gdc.barcodes import (
    SAMPLE_TYPE_NAMES,
    is_control_code,
    is_normal_code,
    is_tumour_code,
    parse_barcode,
    parse_barcode_of_kind,
    slide_barcode_from_file_name,
)


def test_aliquot_barcode_has_every_part() -> None:
    bc = parse_barcode("TCGA-BH-A0EA-01A-11R-A115-07")
    assert bc.kind == "aliquot"
    assert (bc.project, bc.tss, bc.participant) == ("TCGA", "BH", "A0EA")
    assert bc.case == "TCGA-BH-A0EA"
    assert (bc.sample_type_code, bc.vial, bc.sample) == ("01", "A", "TCGA-BH-A0EA-01A")
    assert (bc.portion, bc.analyte, bc.plate, bc.center) == ("11", "R", "A115", "07")
    assert bc.slide is None
    assert bc.sample_type_name == "Primary Tumor"
    assert bc.is_tumour and not bc.is_normal


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("TCGA-BH-A0EA", "case"),
        ("TCGA-BH-A0EA-01A", "sample"),
        ("TCGA-BH-A0EA-01", "sample"),
        ("TCGA-BH-A0EA-01A-11", "portion"),
        ("TCGA-BH-A0EA-01A-11R", "analyte"),
        ("TCGA-A7-A0DB-01A-11R-A00Z-07", "aliquot"),
        ("TCGA-A7-A0DB-01C-02R-A277-07", "aliquot"),
        ("TCGA-BH-A0EA-01Z-00-DX1", "slide"),
        ("TCGA-PL-A8LV-01A-02-DX2", "slide"),
        ("TCGA-BH-A0EA-01A-01-TSA", "slide"),
        ("TCGA-BH-A0EA-01A-01-BSA", "slide"),
        ("TCGA-BH-A0EA-01A-01-MSA", "slide"),
    ],
)
def test_kinds(text: str, kind: str) -> None:
    bc = parse_barcode(text)
    assert bc.kind == kind
    assert bc.text == text


def test_sample_without_vial_has_no_vial() -> None:
    bc = parse_barcode("TCGA-BH-A0EA-11")
    assert (bc.sample, bc.vial, bc.sample_type_code) == ("TCGA-BH-A0EA-11", None, "11")
    assert bc.is_normal


def test_diagnostic_slide_on_sample_z() -> None:
    bc = parse_barcode("TCGA-BH-A0EA-01Z-00-DX1")
    assert (bc.sample, bc.vial, bc.portion, bc.slide) == ("TCGA-BH-A0EA-01Z", "Z", "00", "DX1")
    assert bc.slide_kind == "DX" and bc.is_diagnostic_slide
    assert bc.analyte is None and bc.plate is None


def test_slide_hanging_off_a_portion_keeps_its_vial() -> None:
    bc = parse_barcode("TCGA-PL-A8LV-01A-02-DX2")
    assert (bc.sample, bc.vial, bc.portion, bc.slide) == ("TCGA-PL-A8LV-01A", "A", "02", "DX2")
    assert bc.is_diagnostic_slide


def test_metastatic_slide() -> None:
    bc = parse_barcode("TCGA-XX-XXXX-06Z-00-DX1")
    assert bc.sample_type_code == "06"
    assert bc.sample_type_name == "Metastatic"
    assert bc.is_tumour


@pytest.mark.parametrize("slide", ["TSA", "BSA", "MSA"])
def test_frozen_slides_are_not_diagnostic(slide: str) -> None:
    bc = parse_barcode(f"TCGA-BH-A0EA-01A-01-{slide}")
    assert bc.slide == slide
    assert not bc.is_diagnostic_slide


def test_lower_and_mixed_case_are_normalised_to_upper() -> None:
    upper = parse_barcode("TCGA-A7-A0DB-01C-02R-A277-07")
    assert parse_barcode("tcga-a7-a0db-01c-02r-a277-07") == upper
    assert parse_barcode("Tcga-A7-a0Db-01c-02R-a277-07") == upper
    assert parse_barcode("tcga-bh-a0ea-01z-00-dx1").text == "TCGA-BH-A0EA-01Z-00-DX1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "TCGA",
        "TCGA-BH",
        "TCGA-BH-A0E",  # participant needs 4 characters
        "TARGET-10-PAKSWW",
        " TCGA-BH-A0EA",  # whitespace is rejected, not stripped
        "TCGA-BH-A0EA\n",
        "TCGA_BH_A0EA",
        "TCGA-BH-A0EA-1A",
        "TCGA-BH-A0EA-00A",  # no sample type 00
        "TCGA-BH-A0EA-01-11R",  # portion without the vial
        "TCGA-BH-A0EA-01A-11Q-A115-07",  # unknown analyte
        "TCGA-BH-A0EA-01A-11R-A115",  # plate without centre
        "TCGA-BH-A0EA-01Z-00-XX1",  # unknown slide kind
        "TCGA-BH-A0EA-01Z-00-DX1.svs",
    ],
)
def test_bad_barcodes_raise_with_the_text(text: str) -> None:
    with pytest.raises(BarcodeError) as info:
        parse_barcode(text)
    assert repr(text) in str(info.value)


def test_non_string_is_rejected() -> None:
    with pytest.raises(BarcodeError, match="must be a string"):
        parse_barcode(None)  # type: ignore[arg-type]


def test_parse_barcode_of_kind() -> None:
    assert parse_barcode_of_kind("TCGA-BH-A0EA-01A", "sample").kind == "sample"
    with pytest.raises(BarcodeError, match=r"expected a TCGA aliquot barcode.*a sample barcode"):
        parse_barcode_of_kind("TCGA-BH-A0EA-01A", "aliquot")
    with pytest.raises(ValueError, match="unknown barcode kind"):
        parse_barcode_of_kind("TCGA-BH-A0EA", "vial")


def test_sample_type_table_and_ranges() -> None:
    assert SAMPLE_TYPE_NAMES["01"] == "Primary Tumor"
    assert SAMPLE_TYPE_NAMES["06"] == "Metastatic"
    assert SAMPLE_TYPE_NAMES["10"] == "Blood Derived Normal"
    assert SAMPLE_TYPE_NAMES["11"] == "Solid Tissue Normal"
    assert SAMPLE_TYPE_NAMES["20"] == "Control Analyte"
    assert SAMPLE_TYPE_NAMES["61"] == "Cell Line Derived Xenograft Tissue"
    assert len(SAMPLE_TYPE_NAMES) == 19
    for code in SAMPLE_TYPE_NAMES:
        flags = (is_tumour_code(code), is_normal_code(code), is_control_code(code))
        assert sum(flags) <= 1, code
    assert all(is_tumour_code(f"{n:02d}") for n in range(1, 10))
    assert all(is_normal_code(f"{n:02d}") for n in range(10, 20))
    assert all(is_control_code(f"{n:02d}") for n in range(20, 30))
    assert not is_tumour_code("11") and not is_tumour_code("10") and not is_tumour_code("50")
    with pytest.raises(BarcodeError, match="two digits"):
        is_tumour_code("1")


def test_unlisted_sample_type_code_parses_without_a_name() -> None:
    bc = parse_barcode("TCGA-BH-A0EA-15A")
    assert bc.sample_type_name is None
    assert bc.is_normal


def test_slide_barcode_from_file_name() -> None:
    name = "TCGA-A6-6648-01Z-00-DX1.88b9a490-0bed-43f3-bd74-1bf2810f6884.svs"
    assert slide_barcode_from_file_name(name) == "TCGA-A6-6648-01Z-00-DX1"
    upper_uuid = "TCGA-AN-A0FL-01Z-00-DX1.20A041C6-A306-4599-A7D1-65032A252AA9.svs"
    assert slide_barcode_from_file_name(upper_uuid) == "TCGA-AN-A0FL-01Z-00-DX1"
    assert (
        slide_barcode_from_file_name("tcga-pl-a8lv-01a-02-dx2.x.svs") == "TCGA-PL-A8LV-01A-02-DX2"
    )


@pytest.mark.parametrize(
    "name",
    [
        "",
        "dadd1789-0000-4000-8000-000000000000.rna_seq.augmented_star_gene_counts.tsv",
        "TCGA-BH-A0EA-01A-11R-A115-07.svs",  # an aliquot, not a slide
        "TCGA-BH-A0EA.svs",
        "../TCGA-BH-A0EA-01Z-00-DX1.abc.svs",
    ],
)
def test_slide_barcode_from_bad_file_name(name: str) -> None:
    with pytest.raises(BarcodeError) as info:
        slide_barcode_from_file_name(name)
    assert repr(name) in str(info.value)


def test_every_real_brca_slide_name_parses(shared_data) -> None:
    with (shared_data / "tcga_brca" / "diagnostic_slides.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1133
    kinds = set()
    for row in rows:
        barcode = slide_barcode_from_file_name(row["file_name"])
        bc = parse_barcode(barcode)
        assert bc.case == row["submitter_id"]
        assert bc.tss == row["tss_code"]
        assert bc.is_diagnostic_slide
        kinds.add((bc.sample_type_code, bc.vial == "Z"))
    # primary tumours on vial Z, the portion-attached vial-A slides and the metastatic slide
    assert {("01", True), ("01", False), ("06", True)} <= kinds
