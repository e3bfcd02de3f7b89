from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from histo_renn_dagster.core.errors import GDCRecordError
from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile

MD5 = "0123456789abcdef0123456789abcdef"


def _sample(barcode: str, *, portions: list[dict[str, Any]], is_ffpe: bool | None = None) -> dict:
    code = barcode.split("-")[3][:2]
    names = {"01": "Primary Tumor", "06": "Metastatic", "11": "Solid Tissue Normal"}
    return {
        "sample_id": f"uuid-{barcode}",
        "submitter_id": barcode,
        "sample_type": names[code],
        "sample_type_id": code,
        "tissue_type": "Normal" if code == "11" else "Tumor",
        "is_ffpe": is_ffpe,
        "preservation_method": None if is_ffpe is None else ("FFPE" if is_ffpe else "OCT"),
        "portions": portions,
    }


def _case(case: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    site = case.split("-")[1]
    return {
        "case_id": f"uuid-{case}",
        "submitter_id": case,
        "project": {"project_id": "TCGA-BRCA"},
        "tissue_source_site": {"code": site, "name": f"Site {site}", "bcr_id": "NCH"},
        "samples": samples,
    }


def slide_hit(barcode: str, *, file_id: str | None = None) -> dict[str, Any]:
    """A /files document shaped like the emulator's (and the GDC's) for one diagnostic slide."""
    tokens = barcode.split("-")
    portion = {"submitter_id": "-".join(tokens[:5]), "slides": [{"submitter_id": barcode}]}
    sample = _sample("-".join(tokens[:4]), portions=[portion], is_ffpe=True)
    return {
        "file_id": file_id or f"file-{barcode.lower()}",
        "file_name": f"{barcode}.41DADDB8-3E3F-4F8F-8BE7-C43F8FBCFD2B.svs",
        "md5sum": MD5,
        "file_size": 123456,
        "state": "released",
        "data_format": "SVS",
        "experimental_strategy": "Diagnostic Slide",
        "cases": [_case("-".join(tokens[:3]), [sample])],
    }


def rna_hit(
    aliquot: str, *, is_ffpe: bool | None = False, file_id: str | None = None
) -> dict[str, Any]:
    """A /files document shaped like the emulator's for one STAR-Counts file."""
    tokens = aliquot.split("-")
    portion = {
        "submitter_id": "-".join(tokens[:4]) + "-" + tokens[4][:2],
        "analytes": [
            {
                "submitter_id": "-".join(tokens[:5]),
                "aliquots": [{"aliquot_id": f"uuid-{aliquot}", "submitter_id": aliquot}],
            }
        ],
    }
    sample = _sample("-".join(tokens[:4]), portions=[portion], is_ffpe=is_ffpe)
    return {
        "file_id": file_id or f"file-{aliquot.lower()}",
        "file_name": "d832db0a-348f-4e28-953a-741192fe0826.rna_seq.augmented_star_gene_counts.tsv",
        "md5sum": MD5.upper(),
        "file_size": 4193934,
        "state": "released",
        "analysis": {"workflow_type": "STAR - Counts"},
        "cases": [_case("-".join(tokens[:3]), [sample])],
    }


def _api(shared_data: Path, name: str) -> Any:
    return json.loads((shared_data / "gdc" / "api_examples" / name).read_text())["data"]


# --- real GDC hits -------------------------------------------------------------------------------


def test_slide_from_real_docs_hit_with_few_fields(shared_data: Path) -> None:
    hits = _api(shared_data, "files__fields_cases.submitter_id_file_id_file_name_file_size.json")
    svs = [h for h in hits["hits"] if h["file_name"].endswith(".svs")]
    assert len(svs) == 1
    slide = SlideFile.from_hit(svs[0])
    assert slide.file_id == "d570eccc-3c1c-4c4f-ae04-96be71fbe016"
    assert slide.slide_barcode == "TCGA-AN-A0FL-01Z-00-DX1"
    assert slide.case_barcode == "TCGA-AN-A0FL"
    assert slide.sample_barcode == "TCGA-AN-A0FL-01Z"
    assert (slide.sample_type_code, slide.sample_type) == ("01", "Primary Tumor")
    assert slide.size == 1055798681
    # not asked for in that query: absent, not invented
    assert slide.md5 is None and slide.case_id is None and slide.site_code is None


def test_non_slide_real_hits_are_rejected_naming_the_file(shared_data: Path) -> None:
    hits = _api(shared_data, "files__fields_cases.submitter_id_file_id_file_name_file_size.json")
    xml = next(h for h in hits["hits"] if h["file_name"].endswith(".xml"))
    with pytest.raises(GDCRecordError, match=xml["file_id"]):
        SlideFile.from_hit(xml)


def test_expression_from_real_expanded_hit_with_explicit_nulls(shared_data: Path) -> None:
    # GET /files/<uuid>?expand=cases.samples: a WGS BAM of a blood-derived normal, but the
    # nested shape (explicit nulls, sample_type_id, is_ffpe) is what RNA hits carry too.
    hit = _api(shared_data, "files__single_uuid_expand_cases.samples.json")
    rna = ExpressionFile.from_hit(hit)
    assert rna.file_id == "573ee7e9-b8bd-419e-808b-a027c4311731"
    assert rna.sample_barcode == "TCGA-B6-A0RI-10A"
    assert rna.case_barcode == "TCGA-B6-A0RI"  # derived: the hit's case has no submitter_id
    assert (rna.sample_type_code, rna.sample_type) == ("10", "Blood Derived Normal")
    assert rna.is_ffpe is False and rna.preservation_method is None
    assert rna.is_ffpe_like is False
    assert rna.aliquot_barcode is None and rna.workflow_type is None
    assert rna.size == 42958286722


# --- emulator-shaped hits ------------------------------------------------------------------------


def test_slide_from_full_hit() -> None:
    slide = SlideFile.from_hit(slide_hit("TCGA-BH-A0EA-01Z-00-DX1"))
    assert slide == SlideFile(
        file_id="file-tcga-bh-a0ea-01z-00-dx1",
        file_name="TCGA-BH-A0EA-01Z-00-DX1.41DADDB8-3E3F-4F8F-8BE7-C43F8FBCFD2B.svs",
        md5=MD5,
        size=123456,
        state="released",
        case_id="uuid-TCGA-BH-A0EA",
        case_barcode="TCGA-BH-A0EA",
        slide_barcode="TCGA-BH-A0EA-01Z-00-DX1",
        sample_barcode="TCGA-BH-A0EA-01Z",
        sample_type="Primary Tumor",
        sample_type_code="01",
        site_code="BH",
        site_name="Site BH",
        project_id="TCGA-BRCA",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        slide.md5 = "x"  # type: ignore[misc]
    assert slide.barcode.slide == "DX1"


def test_slide_on_a_portion_and_metastatic_slide() -> None:
    portion = SlideFile.from_hit(slide_hit("TCGA-PL-A8LV-01A-02-DX2"))
    assert portion.sample_barcode == "TCGA-PL-A8LV-01A"
    meta = SlideFile.from_hit(slide_hit("TCGA-AC-A6IX-06Z-00-DX1"))
    assert (meta.sample_type_code, meta.sample_type) == ("06", "Metastatic")


def test_slide_picks_its_sample_among_several() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    samples = hit["cases"][0]["samples"]
    samples.insert(0, _sample("TCGA-BH-A0EA-11A", portions=[]))
    samples.insert(0, _sample("TCGA-BH-A0EA-01A", portions=[]))
    samples[-1]["sample_type"] = "Primary Tumor (from the 01Z sample)"
    slide = SlideFile.from_hit(hit)
    assert slide.sample_type == "Primary Tumor (from the 01Z sample)"
    # only other vials of the same type listed: same case and code is accepted
    hit["cases"][0]["samples"] = [
        _sample("TCGA-BH-A0EA-11A", portions=[]),
        _sample("TCGA-BH-A0EA-01A", portions=[]),
    ]
    assert SlideFile.from_hit(hit).sample_type_code == "01"


def test_slide_case_mismatch_is_an_error() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    hit["cases"][0]["submitter_id"] = "TCGA-BH-A0EB"
    with pytest.raises(GDCRecordError, match=r"file-tcga-bh-a0ea-01z-00-dx1.*TCGA-BH-A0EB"):
        SlideFile.from_hit(hit)


def test_slide_sample_type_mismatch_is_an_error() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    hit["cases"][0]["samples"][0]["sample_type_id"] = "11"
    with pytest.raises(GDCRecordError, match="sample_type_id '11'"):
        SlideFile.from_hit(hit)
    hit["cases"][0]["samples"] = [_sample("TCGA-BH-A0EA-11A", portions=[])]
    with pytest.raises(GDCRecordError, match="lists only samples"):
        SlideFile.from_hit(hit)


def test_slide_site_mismatch_is_an_error() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    hit["cases"][0]["tissue_source_site"]["code"] = "A2"
    with pytest.raises(GDCRecordError, match="site is BH, but the hit's site code is 'A2'"):
        SlideFile.from_hit(hit)


def test_slide_with_several_cases_picks_the_barcode_case() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    other = _case("TCGA-A2-A25D", [])
    hit["cases"] = [other, hit["cases"][0]]
    assert SlideFile.from_hit(hit).site_code == "BH"
    hit["cases"] = [other, _case("TCGA-A2-A25E", [])]
    with pytest.raises(GDCRecordError, match="2 cases"):
        SlideFile.from_hit(hit)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("file_name"), "lacks required field file_name"),
        (lambda h: h.pop("cases"), "lacks required field cases"),
        (lambda h: h.update(cases=[]), "lacks required field cases"),
        (lambda h: h.update(file_name="slide.svs"), "does not start with a TCGA slide barcode"),
        (lambda h: h.update(md5sum="abc"), "md5sum must be 32 hex"),
        (lambda h: h.update(file_size=-1), "file_size must be a non-negative integer"),
        (lambda h: h.update(file_size=True), "file_size must be a non-negative integer"),
        (lambda h: h.update(state=3), "state must be a string"),
        (lambda h: h.update(cases="TCGA-BH-A0EA"), "cases must be a list of objects"),
    ],
)
def test_slide_bad_fields_name_the_file(mutate: Any, message: str) -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1", file_id="f-123")
    mutate(hit)
    with pytest.raises(GDCRecordError) as info:
        SlideFile.from_hit(hit)
    assert "f-123" in str(info.value)
    assert message in str(info.value)


def test_hit_without_file_id() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    del hit["file_id"]
    with pytest.raises(GDCRecordError, match="no file_id"):
        SlideFile.from_hit(hit)
    hit["id"] = "from-id"
    assert SlideFile.from_hit(hit).file_id == "from-id"


def test_lower_case_barcodes_in_the_hit_are_normalised() -> None:
    hit = slide_hit("TCGA-BH-A0EA-01Z-00-DX1")
    hit["file_name"] = hit["file_name"].lower()
    hit["cases"][0]["submitter_id"] = "tcga-bh-a0ea"
    slide = SlideFile.from_hit(hit)
    assert slide.slide_barcode == "TCGA-BH-A0EA-01Z-00-DX1"
    assert slide.case_barcode == "TCGA-BH-A0EA"


def test_expression_from_full_hit() -> None:
    rna = ExpressionFile.from_hit(rna_hit("TCGA-A7-A0DB-01C-02R-A277-07", is_ffpe=True))
    assert rna.case_barcode == "TCGA-A7-A0DB"
    assert rna.sample_barcode == "TCGA-A7-A0DB-01C"
    assert (rna.sample_type_code, rna.sample_type) == ("01", "Primary Tumor")
    assert rna.aliquot_barcode == "TCGA-A7-A0DB-01C-02R-A277-07"
    assert rna.aliquot_id == "uuid-TCGA-A7-A0DB-01C-02R-A277-07"
    assert rna.aliquot is not None and rna.aliquot.plate == "A277"
    assert rna.is_ffpe is True and rna.preservation_method == "FFPE" and rna.is_ffpe_like
    assert rna.workflow_type == "STAR - Counts"
    assert rna.md5 == MD5  # normalised to lower case
    assert rna.project_id == "TCGA-BRCA"
    assert rna.case_id == "uuid-TCGA-A7-A0DB"


def test_expression_picks_the_sample_holding_the_aliquot() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07")
    samples = hit["cases"][0]["samples"]
    samples.insert(0, _sample("TCGA-BH-A0EA-11A", portions=[]))
    rna = ExpressionFile.from_hit(hit)
    assert rna.sample_barcode == "TCGA-BH-A0EA-01A"
    assert rna.sample_type_code == "01"


def test_expression_normal_sample() -> None:
    rna = ExpressionFile.from_hit(rna_hit("TCGA-BH-A0EA-11A-33R-A115-07"))
    assert (rna.sample_type_code, rna.sample_type) == ("11", "Solid Tissue Normal")


def test_expression_is_ffpe_as_string_and_unknown() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07", is_ffpe=None)
    assert ExpressionFile.from_hit(hit).is_ffpe_like is None
    hit["cases"][0]["samples"][0]["is_ffpe"] = "TRUE"
    assert ExpressionFile.from_hit(hit).is_ffpe is True
    hit["cases"][0]["samples"][0]["is_ffpe"] = "maybe"
    with pytest.raises(GDCRecordError, match="is_ffpe must be true/false"):
        ExpressionFile.from_hit(hit)


def test_expression_sample_and_aliquot_disagree() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07", file_id="f-9")
    hit["cases"][0]["samples"][0]["submitter_id"] = "TCGA-BH-A0EA-01B"
    with pytest.raises(GDCRecordError, match=r"f-9.*not from the hit's sample TCGA-BH-A0EA-01B"):
        ExpressionFile.from_hit(hit)


def test_expression_case_mismatch() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07")
    hit["cases"][0]["submitter_id"] = "TCGA-A2-A25D"
    with pytest.raises(GDCRecordError, match="hit's case is TCGA-A2-A25D"):
        ExpressionFile.from_hit(hit)


def test_expression_sample_type_id_mismatch() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07")
    hit["cases"][0]["samples"][0]["sample_type_id"] = "11"
    with pytest.raises(GDCRecordError, match="sample_type_id '11'"):
        ExpressionFile.from_hit(hit)


def test_expression_with_two_aliquots_is_ambiguous() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07", file_id="f-2")
    other = rna_hit("TCGA-BH-A0EA-01A-11R-A999-07")["cases"][0]["samples"][0]
    hit["cases"][0]["samples"].append(other)
    with pytest.raises(GDCRecordError, match=r"f-2.*2 aliquots"):
        ExpressionFile.from_hit(hit)


def test_expression_without_sample() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07", file_id="f-3")
    hit["cases"][0]["samples"] = []
    with pytest.raises(GDCRecordError, match=r"f-3.*lacks required field cases\[\].samples"):
        ExpressionFile.from_hit(hit)


def test_expression_with_bad_aliquot_barcode() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07", file_id="f-4")
    aliquot = hit["cases"][0]["samples"][0]["portions"][0]["analytes"][0]["aliquots"][0]
    aliquot["submitter_id"] = "TCGA-BH-A0EA-01A-11R"
    with pytest.raises(GDCRecordError, match=r"f-4.*expected a TCGA aliquot barcode"):
        ExpressionFile.from_hit(hit)


def test_expression_with_only_an_aliquot_derives_the_sample() -> None:
    hit = rna_hit("TCGA-BH-A0EA-01A-11R-A115-07")
    sample = hit["cases"][0]["samples"][0]
    for key in ("submitter_id", "sample_type", "sample_type_id"):
        del sample[key]
    del hit["cases"][0]["submitter_id"]
    rna = ExpressionFile.from_hit(copy.deepcopy(hit))
    assert rna.sample_barcode == "TCGA-BH-A0EA-01A"
    assert rna.case_barcode == "TCGA-BH-A0EA"
    assert rna.sample_type == "Primary Tumor"
