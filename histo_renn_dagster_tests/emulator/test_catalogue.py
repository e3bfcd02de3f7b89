"""Blobs, catalogue validation, derived cases/projects and the fixture cohort's shapes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd
import pytest

from histo_renn_dagster.core.errors import EmulatorError
from histo_renn_dagster.emulator.catalogue import (
    BytesBlob,
    Catalogue,
    GeneratedBlob,
    catalogue_from_payloads,
    iter_blob_bytes,
)
from histo_renn_dagster.emulator.cohorts import load_cohort
from histo_renn_dagster.emulator.fixture_cohort import build_fixture_catalogue


def test_bytes_blob_spills_once_to_a_private_file() -> None:
    blob = BytesBlob(b"abc" * 1000, "../../evil name")
    assert blob.size == 3000 and blob.md5 == hashlib.md5(b"abc" * 1000).hexdigest()
    path = blob.path()
    assert path.read_bytes() == b"abc" * 1000 and blob.path() == path
    assert "evil" not in path.name
    assert b"".join(iter_blob_bytes(blob, 10, 20)) == (b"abc" * 1000)[10:20]


def test_generated_blob_generates_once_and_caches_md5_in_a_sidecar(tmp_path: Path) -> None:
    calls: list[Path] = []

    def generate(path: Path) -> None:
        calls.append(path)
        path.write_bytes(b"x" * 5000)

    target = tmp_path / "cache" / "f.bin"
    blob = GeneratedBlob(target, generate)
    assert not target.exists()  # lazy
    assert blob.md5 == hashlib.md5(b"x" * 5000).hexdigest() and blob.size == 5000
    assert blob.path() == target and calls[0] != target  # written to a temp name first
    assert target.with_name("f.bin.md5").read_text().split() == [blob.md5, "5000"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin", "f.bin.md5"]
    # a fresh process-equivalent object trusts the sidecar and never calls its generator
    again = GeneratedBlob(target, lambda p: pytest.fail("regenerated"))
    assert again.md5 == blob.md5
    assert b"".join(iter_blob_bytes(again, 4990)) == b"x" * 10
    assert len(calls) == 1


def test_generated_blob_recovers_from_a_stale_sidecar_and_a_failed_generator(
    tmp_path: Path,
) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"12345")
    target.with_name("f.bin.md5").write_text("0" * 32 + " 999\n")  # wrong size: ignored
    assert GeneratedBlob(target, lambda p: None).md5 == hashlib.md5(b"12345").hexdigest()

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        GeneratedBlob(tmp_path / "g.bin", broken).path()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "f.bin.md5"]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"file_name": "a"}, "no file_id"),
        ({"file_id": "u", "file_name": "a", "md5sum": "x"}, "md5sum"),
        ({"file_id": "u"}, "no file_name"),
        ({"file_id": "nob", "file_name": "a"}, "no blob"),
    ],
)
def test_catalogue_rejects_bad_documents(doc: dict[str, str], needle: str) -> None:
    with pytest.raises(EmulatorError, match=needle):
        Catalogue("t", "r", [doc], {"u": BytesBlob(b"")})


def test_catalogue_rejects_duplicate_ids() -> None:
    with pytest.raises(EmulatorError, match="duplicate file_id u"):
        catalogue_from_payloads([("u", "a", b""), ("u", "b", b"")])


def test_complete_file_adds_lazy_fields() -> None:
    cat = catalogue_from_payloads([("u", "a.tsv", b"hello")])
    assert "md5sum" not in cat.files[0]
    full = cat.complete_file(cat.files[0])
    assert (full["md5sum"], full["file_size"]) == (hashlib.md5(b"hello").hexdigest(), 5)


def test_fixture_cohort_shapes(fixture_catalogue: Catalogue) -> None:
    slides = [f for f in fixture_catalogue.files if f["data_format"] == "SVS"]
    rna = [f for f in fixture_catalogue.files if f["data_format"] == "TSV"]
    assert len(slides) == 6 and len(rna) == 7
    assert all(f["experimental_strategy"] == "Diagnostic Slide" for f in slides)
    assert all(f["analysis"]["workflow_type"] == "STAR - Counts" for f in rna)

    def case_of(doc: dict) -> str:
        return doc["cases"][0]["submitter_id"]

    slide_cases = [case_of(f) for f in slides]
    rna_cases = {case_of(f) for f in rna}
    assert slide_cases.count("TCGA-A2-A25D") == 2  # DX1 + DX2
    assert set(slide_cases) - rna_cases == {"TCGA-E2-A1L7"}  # slide, no RNA
    assert rna_cases - set(slide_cases) == {"TCGA-D8-A1XK"}  # RNA, no slide
    aliquots = {
        f["cases"][0]["samples"][0]["portions"][0]["analytes"][0]["aliquots"][0]["submitter_id"]: f
        for f in rna
    }
    assert "TCGA-BH-A0EA-11A-33R-A115-07" in aliquots
    normal = aliquots["TCGA-BH-A0EA-11A-33R-A115-07"]["cases"][0]["samples"][0]
    assert (normal["sample_type"], normal["sample_type_id"]) == ("Solid Tissue Normal", "11")
    ffpe = aliquots["TCGA-A7-A13D-01B-04R-A277-07"]["cases"][0]["samples"][0]
    assert ffpe["is_ffpe"] is True and ffpe["preservation_method"] == "FFPE"
    assert "TCGA-A7-A13D-01A-13R-A12P-07" in aliquots
    sites = {f["cases"][0]["tissue_source_site"]["code"] for f in fixture_catalogue.files}
    assert len(sites) == 6
    names = [f["file_name"] for f in slides]
    assert "TCGA-A2-A25D-01Z-00-DX1.41DADDB8-3E3F-4F8F-8BE7-C43F8FBCFD2B.svs" in names
    sizes = [fixture_catalogue.blob(f["file_id"]).size for f in slides]
    assert all(64 * 1024 <= s <= 300 * 1024 for s in sizes)


def test_fixture_cohort_is_deterministic(fixture_catalogue: Catalogue) -> None:
    again = build_fixture_catalogue()  # in memory this time
    assert [f["file_id"] for f in again.files] == [f["file_id"] for f in fixture_catalogue.files]
    for doc in again.files[:2] + again.files[-2:]:
        assert again.blob(doc["file_id"]).md5 == fixture_catalogue.blob(doc["file_id"]).md5


def test_fixture_star_files_have_the_real_layout(fixture_catalogue: Catalogue) -> None:
    doc = next(f for f in fixture_catalogue.files if f["data_format"] == "TSV")
    text = fixture_catalogue.blob(doc["file_id"]).path().read_text()
    lines = text.split("\n")
    assert lines[0] == "# gene-model: GENCODE v36"
    assert lines[1].split("\t") == [
        "gene_id", "gene_name", "gene_type", "unstranded", "stranded_first", "stranded_second",
        "tpm_unstranded", "fpkm_unstranded", "fpkm_uq_unstranded",
    ]  # fmt: skip
    assert [line.split("\t")[0] for line in lines[2:6]] == [
        "N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous",
    ]  # fmt: skip
    assert all(line.endswith("\t\t\t") for line in lines[2:6])
    frame = pd.read_csv(io.StringIO(text), sep="\t", comment="#")
    genes = frame[~frame["gene_id"].str.startswith("N_")]
    assert list(genes["gene_id"]) == sorted(genes["gene_id"])
    mki67 = next(line for line in lines if line.startswith("ENSG00000148773.14\tMKI67\t"))
    tpm = mki67.split("\t")[6]
    assert len(tpm.split(".")[1]) == 4 and 0 < float(tpm) < 1000


def test_derived_cases_and_projects(fixture_catalogue: Catalogue) -> None:
    cases = {c["submitter_id"]: c for c in fixture_catalogue.cases}
    assert len(cases) == 6
    a7 = cases["TCGA-A7-A13D"]
    assert sorted(a7["submitter_sample_ids"]) == [
        "TCGA-A7-A13D-01A", "TCGA-A7-A13D-01B", "TCGA-A7-A13D-01Z",
    ]  # fmt: skip
    assert len(a7["files"]) == 3 and a7["submitter_slide_ids"] == ["TCGA-A7-A13D-01Z-00-DX1"]
    assert cases["TCGA-A2-A25D"]["submitter_slide_ids"] == [
        "TCGA-A2-A25D-01Z-00-DX1", "TCGA-A2-A25D-01Z-00-DX2",
    ]  # fmt: skip
    (project,) = fixture_catalogue.projects
    assert project["project_id"] == "TCGA-BRCA"
    assert project["summary"]["case_count"] == 6 and project["summary"]["file_count"] == 13


def test_load_cohort(tmp_path: Path) -> None:
    cat = load_cohort("fixture", tmp_path)
    assert cat.name == "fixture"
    with pytest.raises(EmulatorError, match="unknown emulator cohort 'nope'"):
        load_cohort("nope", tmp_path)
