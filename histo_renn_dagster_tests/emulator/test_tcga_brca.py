"""The real TCGA-BRCA catalogue of the emulator: ``full`` and ``demo`` cohorts."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import openslide
import pytest

from histo_renn_dagster.core.errors import CatalogueDataError
from histo_renn_dagster.core.gdc.star_counts import gene_tpms
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.demo_subset import select_demo
from histo_renn_dagster.emulator.tcga_brca import (
    SLIDE_LONG_SIDE,
    build_catalogue,
    site_scan_defaults,
    slide_spec_for,
)
from histo_renn_dagster.emulator.tcga_brca_tables import CohortTables, SlideRecord, load_tables

MKI67 = "ENSG00000148773.14"


@pytest.fixture(scope="module")
def tables() -> CohortTables:
    return load_tables()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    return build_catalogue("full", tmp_path_factory.mktemp("full-cache"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    return build_catalogue("demo", tmp_path_factory.mktemp("demo-cache"))


def _of_format(catalogue: Catalogue, data_format: str) -> list[dict[str, Any]]:
    return [f for f in catalogue.files if f["data_format"] == data_format]


def _slides(tables: CohortTables) -> dict[str, SlideRecord]:
    return {s.file_id: s for s in tables.slides}


def _aliquot(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["cases"][0]["samples"][0]["portions"][0]["analytes"][0]["aliquots"][0]


def _preference(doc: dict[str, Any]) -> tuple:
    """The documented rule, written independently: non-FFPE, vial A, analyte H>R>T, highest
    plate, then file_id."""
    sample = doc["cases"][0]["samples"][0]
    barcode = _aliquot(doc)["submitter_id"].split("-")
    vial, analyte, plate = barcode[3][2], barcode[4][2], barcode[5]
    return (
        sample["is_ffpe"],
        vial != "A",
        "HRT".index(analyte),
        tuple(-ord(ch) for ch in plate),
        doc["file_id"],
    )


def test_packaged_tables_are_the_shared_ones(shared_data: Path) -> None:
    package = Path(__file__).parents[2] / "histo_renn_dagster/emulator/data/tcga_brca"
    for name in (
        "diagnostic_slides.csv",
        "diagnostic_slides_scan_metadata.csv",
        "mki67_tpm_unstranded.csv",
    ):
        assert (package / name).read_bytes() == (shared_data / "tcga_brca" / name).read_bytes()


def test_tables_hold_the_real_cohort(tables: CohortTables) -> None:
    assert len(tables.slides) == 1133 and len(tables.cases) == 1098
    assert len({s.tss_code for s in tables.slides}) == 39
    assert sum(c.mki67 is not None for c in tables.cases) == 996
    status = Counter(s.scan.status for s in tables.slides)
    assert status == {"read": 1010, "not_read": 116, "no_mpp": 7}
    assert {s.tss_code for s in tables.slides if s.scan.status == "no_mpp"} == {"OL"}
    assert sum(s.scan.app_mag == 20.0 for s in tables.slides) == 106
    assert sum(s.barcode.on_portion for s in tables.slides) == 9
    assert [s.barcode.text for s in tables.slides if s.barcode.sample_type_code == "06"] == [
        "TCGA-E2-A15E-06Z-00-DX1"
    ]


def test_full_catalogue_serves_every_real_slide(full: Catalogue, tables: CohortTables) -> None:
    slides = _of_format(full, "SVS")
    assert len(slides) == 1133
    real = _slides(tables)
    for doc in slides:
        slide = real[doc["file_id"]]
        assert doc["file_name"] == slide.file_name
        assert (doc["data_type"], doc["data_category"], doc["type"]) == (
            "Slide Image",
            "Biospecimen",
            "slide_image",
        )
        assert doc["experimental_strategy"] == "Diagnostic Slide"
        assert (doc["access"], doc["state"]) == ("open", "released")
        case = doc["cases"][0]
        assert (case["case_id"], case["submitter_id"]) == (slide.case_id, slide.case_submitter_id)
        assert case["project"]["project_id"] == "TCGA-BRCA"
        assert case["tissue_source_site"]["code"] == slide.tss_code
        assert case["tissue_source_site"]["name"] == slide.tss_name
        sample = case["samples"][0]
        assert sample["submitter_id"] == slide.barcode.sample
        assert sample["portions"][0]["slides"][0]["submitter_id"] == slide.barcode.text
        assert "md5sum" not in doc and "file_size" not in doc
    by_barcode = {d["cases"][0]["samples"][0]["portions"][0]["slides"][0]["submitter_id"]: d
                  for d in slides}  # fmt: skip
    metastatic = by_barcode["TCGA-E2-A15E-06Z-00-DX1"]["cases"][0]["samples"][0]
    assert (metastatic["sample_type"], metastatic["sample_type_id"]) == ("Metastatic", "06")
    portion = by_barcode["TCGA-PL-A8LZ-01A-02-DX2"]["cases"][0]["samples"][0]["portions"][0]
    assert portion["submitter_id"] == "TCGA-PL-A8LZ-01A-02"


def test_star_files_follow_the_documented_plan(full: Catalogue, tables: CohortTables) -> None:
    star = _of_format(full, "TSV")
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in star:
        assert doc["analysis"]["workflow_type"] == "STAR - Counts"
        assert doc["experimental_strategy"] == "RNA-Seq"
        assert doc["file_name"].endswith(".rna_seq.augmented_star_gene_counts.tsv")
        assert not doc["file_name"].startswith(doc["file_id"])
        by_case[doc["cases"][0]["case_id"]].append(doc)
    valued = [c for c in tables.cases if c.mki67 is not None]
    tumour_cases = {
        cid
        for cid, docs in by_case.items()
        if any(d["cases"][0]["samples"][0]["tissue_type"] == "Tumor" for d in docs)
    }
    assert tumour_cases == {c.case_id for c in valued}
    normals = [d for d in star if d["cases"][0]["samples"][0]["sample_type_id"] == "11"]
    assert 0.07 * len(tables.cases) <= len(normals) <= 0.13 * len(tables.cases)
    multi = [cid for cid in tumour_cases if len(by_case[cid]) - _normals(by_case[cid]) > 1]
    assert 0.015 * len(valued) <= len(multi) <= 0.05 * len(valued)
    assert any(_aliquot(d)["submitter_id"][15] == "B" for cid in multi for d in by_case[cid])


def _normals(docs: list[dict[str, Any]]) -> int:
    return sum(d["cases"][0]["samples"][0]["sample_type_id"] == "11" for d in docs)


def test_preferred_tumour_aliquot_carries_the_real_value(demo: Catalogue, tables: CohortTables):
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in _of_format(demo, "TSV"):
        if doc["cases"][0]["samples"][0]["tissue_type"] == "Tumor":
            by_case[doc["cases"][0]["case_id"]].append(doc)
    several = {cid: docs for cid, docs in by_case.items() if len(docs) > 1}
    assert several, "the demo must exercise the aliquot rule"
    for case_id, docs in several.items():
        real = tables.case(case_id).mki67
        preferred = min(docs, key=_preference)
        values = {
            d["file_id"]: gene_tpms(demo.blob(d["file_id"]).path(), [MKI67])["ENSG00000148773"]
            for d in docs
        }
        assert values[preferred["file_id"]] == real
        assert all(v != real for fid, v in values.items() if fid != preferred["file_id"])


def test_star_blob_gives_the_real_value_and_is_deterministic(
    demo: Catalogue, tables: CohortTables, tmp_path: Path
) -> None:
    doc = next(
        d for d in _of_format(demo, "TSV") if d["cases"][0]["samples"][0]["tissue_type"] == "Tumor"
    )
    case = tables.case(doc["cases"][0]["case_id"])
    blob = demo.blob(doc["file_id"])
    assert blob.path().parent.name == doc["file_id"] and blob.path().name == doc["file_name"]
    assert gene_tpms(blob.path(), [MKI67]) == {"ENSG00000148773": case.mki67}
    again = build_catalogue("demo", tmp_path).blob(doc["file_id"])
    assert (again.md5, again.size) == (blob.md5, blob.size)
    assert again.path().read_bytes() == blob.path().read_bytes()


def test_demo_is_a_stratified_deterministic_subset(
    demo: Catalogue, full: Catalogue, tables: CohortTables
) -> None:
    assert select_demo(tables) == select_demo(tables)
    slides = _of_format(demo, "SVS")
    assert 40 <= len(slides) <= 60
    per_site = Counter(d["cases"][0]["tissue_source_site"]["code"] for d in slides)
    assert len(per_site) == 8 and min(per_site.values()) >= 4
    full_docs = {d["file_id"]: d for d in full.files}
    assert all(full_docs[d["file_id"]] == d for d in demo.files)
    real = _slides(tables)
    assert any(real[d["file_id"]].scan.status == "no_mpp" for d in slides)
    assert any(real[d["file_id"]].scan.app_mag == 20.0 for d in slides)
    patients = Counter(d["cases"][0]["case_id"] for d in slides)
    assert max(patients.values()) >= 2
    rna_cases = {d["cases"][0]["case_id"] for d in _of_format(demo, "TSV")}
    slide_cases = set(patients)
    assert len(slide_cases - rna_cases) >= 1  # a slide case without any RNA file
    assert len(rna_cases - slide_cases) >= 1  # RNA without a slide
    assert sum(tables.case(c).mki67 is not None for c in slide_cases) >= 0.75 * len(slide_cases)
    assert any(d["cases"][0]["samples"][0]["sample_type_id"] == "11" for d in demo.files)


def test_slide_specs_keep_real_scan_facts(demo: Catalogue, tables: CohortTables) -> None:
    defaults = site_scan_defaults(tables.slides)
    for slide in tables.slides[:200]:
        spec = slide_spec_for(slide, 0.0, defaults)
        assert SLIDE_LONG_SIDE[0] <= max(spec.width, spec.height) <= SLIDE_LONG_SIDE[1]
        if slide.scan.status != "not_read":
            assert (spec.mpp, spec.app_mag) == (slide.scan.mpp, slide.scan.app_mag)
            assert spec.tile_size == slide.scan.tile_size
            assert slide.scan.width is not None and slide.scan.height is not None
            assert (spec.width >= spec.height) == (slide.scan.width >= slide.scan.height)
            real = min(slide.scan.width, slide.scan.height) / max(
                slide.scan.width, slide.scan.height
            )
            ours = min(spec.width, spec.height) / max(spec.width, spec.height)
            assert ours == pytest.approx(max(real, 0.25), rel=0.02)
        else:
            assert spec.mpp is not None and spec.app_mag in (20.0, 40.0)
    low = slide_spec_for(tables.slides[0], -1.5, defaults).nuclear_density
    high = slide_spec_for(tables.slides[0], 1.5, defaults).nuclear_density
    assert low < slide_spec_for(tables.slides[0], None, defaults).nuclear_density < high


def test_demo_slide_without_mpp_opens_as_aperio(demo: Catalogue, tables: CohortTables) -> None:
    real = _slides(tables)
    doc = next(d for d in _of_format(demo, "SVS") if real[d["file_id"]].scan.status == "no_mpp")
    path = demo.blob(doc["file_id"]).path()
    assert path.name == doc["file_name"] and path.parent.parent.name == "slides"
    with openslide.OpenSlide(path) as slide:
        assert slide.properties["openslide.vendor"] == "aperio"
        assert "openslide.mpp-x" not in slide.properties
        assert float(slide.properties["aperio.AppMag"]) == real[doc["file_id"]].scan.app_mag
        assert SLIDE_LONG_SIDE[0] <= max(slide.dimensions) <= SLIDE_LONG_SIDE[1]


@pytest.mark.slow
def test_demo_slide_with_mpp_reports_the_real_mpp(demo: Catalogue, tables: CohortTables) -> None:
    real = _slides(tables)
    doc = next(d for d in _of_format(demo, "SVS") if real[d["file_id"]].scan.app_mag == 20.0)
    with openslide.OpenSlide(demo.blob(doc["file_id"]).path()) as slide:
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(
            real[doc["file_id"]].scan.mpp, abs=1e-9
        )
        assert slide.properties["aperio.AppMag"] in ("20", "20.0")


def test_bad_subset_or_project_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogueDataError, match="'tiny'"):
        build_catalogue("tiny", tmp_path)
    with pytest.raises(CatalogueDataError, match="TCGA-LUAD"):
        build_catalogue("demo", tmp_path, project_id="TCGA-LUAD")


def test_demo_through_emulator_client_and_matching(demo: Catalogue, tables: CohortTables) -> None:
    """The real query path: emulator -> GDCClient -> records -> matching picks the real values."""
    from histo_renn_dagster.core.gdc.client import GDCClient
    from histo_renn_dagster.core.gdc.matching import match_slides_to_expression
    from histo_renn_dagster.core.gdc.queries import expression_files_query, slide_files_query
    from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile
    from histo_renn_dagster.emulator.catalogue import BytesBlob
    from histo_renn_dagster.emulator.server import GDCEmulator

    # Slide pixels are not needed here (generating 48 slides takes minutes): small stand-in
    # bytes keep md5/size honest for the documents; STAR blobs stay real.
    blobs = {
        d["file_id"]: BytesBlob(d["file_id"].encode(), d["file_name"])
        if d["data_format"] == "SVS"
        else demo.blob(d["file_id"])
        for d in demo.files
    }
    served = Catalogue(demo.name, demo.data_release, demo.files, blobs)
    with GDCEmulator(served) as emulator:
        client = GDCClient(emulator.url)
        slides = [SlideFile.from_hit(h) for h in client.search(slide_files_query("TCGA-BRCA"))]
        rna = [
            ExpressionFile.from_hit(h) for h in client.search(expression_files_query("TCGA-BRCA"))
        ]
    assert len(slides) == len(_of_format(demo, "SVS")) and len(rna) == len(_of_format(demo, "TSV"))
    report = match_slides_to_expression(slides, rna)
    assert report.pairs and report.slides_without_rna and report.rna_without_slides
    assert report.normals_dropped >= 1 and report.duplicates_resolved >= 1
    normal_only = {r.case_barcode for r in rna} - {
        r.case_barcode for r in rna if r.sample_type_code != "11"
    }
    assert normal_only, "the demo must hold a case whose only RNA is normal tissue"
    assert normal_only <= {s.case_barcode for s in report.slides_without_rna}
    by_barcode = {c.submitter_id: c for c in tables.cases}
    for pair in report.pairs:
        value = gene_tpms(served.blob(pair.expression.file_id).path(), [MKI67])
        assert value["ENSG00000148773"] == by_barcode[pair.slide.case_barcode].mki67


@pytest.mark.slow
def test_every_demo_slide_opens_as_aperio_with_its_real_resolution(
    demo: Catalogue, tables: CohortTables
) -> None:
    """All 48 demo slides (about 2 s each to generate): vendor, pyramid and MPP as the real scan."""
    real = _slides(tables)
    docs = _of_format(demo, "SVS")
    assert 40 <= len(docs) <= 60
    for doc in docs:
        scan = real[doc["file_id"]].scan
        with openslide.OpenSlide(demo.blob(doc["file_id"]).path()) as slide:
            assert slide.properties["openslide.vendor"] == "aperio", doc["file_name"]
            assert slide.level_downsamples == pytest.approx((1.0, 4.0, 16.0), abs=1e-6)
            mpp = slide.properties.get("openslide.mpp-x")
            if scan.status == "no_mpp":
                assert mpp is None, doc["file_name"]
            elif scan.status == "read":
                assert float(mpp) == pytest.approx(scan.mpp, abs=1e-9), doc["file_name"]
            else:  # never read by the reference study: the site's usual resolution
                assert mpp is not None, doc["file_name"]
