"""expression_table and cohort_table materialized through Dagster against the GDC emulator."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster.core.gdc.barcodes import is_tumour_code
from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile
from histo_renn_dagster.core.gdc.star_counts import gene_tpms
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.definitions import build_resources
from histo_renn_dagster.defs.assets.cohort import cohort_checks, cohort_table, expression_table
from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
from histo_renn_dagster.emulator.cohorts import load_cohort
from histo_renn_dagster_tests.core.cohort.helpers import write_embedding

ASSETS = [gdc_slide_manifest, gdc_expression_manifest, expression_table, cohort_table]
MKI67 = "ENSG00000148773"


def _resources(url: str, lake: Path) -> dict:
    return build_resources(
        GDCResource(base_url=url, max_attempts=2), LayoutResource(root=str(lake))
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _embed(lake: Path, file_ids, dim: int = 8) -> None:
    layout = LakeLayout(lake)
    for i, fid in enumerate(sorted(file_ids)):
        write_embedding(layout.embedding_path(fid), np.arange(dim, dtype=np.float32) + i)


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_fixture_cohort_end_to_end(gdc_emulator, tmp_path, instance):
    catalogue = gdc_emulator.catalogue
    resources = _resources(gdc_emulator.url, tmp_path)
    assert dg.materialize(
        ASSETS,
        selection=["gdc_slide_manifest", "gdc_expression_manifest"],
        instance=instance,
        resources=resources,
    ).success
    # Before any embedding exists the table is empty but valid, and says why.
    early = dg.materialize(
        [*ASSETS, *cohort_checks],
        selection=["expression_table", "cohort_table"],
        instance=instance,
        resources=resources,
    )
    assert early.success and all(c.passed for c in early.get_asset_check_evaluations())
    assert _meta(early, "cohort_table")["not_embedded"] == 5
    assert pd.read_parquet(tmp_path / "tables" / "cohort_table.parquet").empty

    slides = pd.read_parquet(tmp_path / "tables" / "gdc_slide_manifest.parquet")
    embedded = [
        fid
        for fid, bc in zip(slides["file_id"], slides["slide_barcode"], strict=True)
        if bc != "TCGA-AO-A0J6-01Z-00-DX1"
    ]  # one slide not embedded yet
    _embed(tmp_path, embedded)

    result = dg.materialize(
        [*ASSETS, *cohort_checks],
        selection=["expression_table", "cohort_table"],
        instance=instance,
        resources=resources,
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 7 and all(c.passed for c in checks)

    expression = pd.read_parquet(tmp_path / "tables" / "expression_table.parquet")
    meta = _meta(result, "expression_table")
    assert meta["normals_dropped"] == 1 and meta["duplicates_resolved"] == 1
    assert meta["tumour_samples"] == 5 and meta["cases"] == 5
    assert set(expression["sample_type_code"]) == {"01"}
    assert {"tpm_MKI67", "tpm_ERBB2", "tpm_ESR1", "tpm_PGR"} <= set(expression.columns)
    # Every STAR file read is the chosen one, downloaded md5-verified into the lake.
    for row in expression.itertuples():
        star = next((tmp_path / "expression" / row.file_id).glob("*.tsv"))
        assert gene_tpms(star, [MKI67])[MKI67] == row.tpm_MKI67

    table = pd.read_parquet(tmp_path / "tables" / "cohort_table.parquet")
    rna = {
        d["file_id"]: ExpressionFile.from_hit(d)
        for d in catalogue.files
        if d["data_format"] == "TSV"
    }
    # Normals never leak: BH-A0EA's row carries its 01A file, not the 11A normal.
    bh = table.set_index("unit_id").loc["TCGA-BH-A0EA-01"]
    assert rna[bh["expression_file_id"]].sample_barcode == "TCGA-BH-A0EA-01A"
    # Multi-aliquot rule: A7-A13D uses the frozen 01A aliquot, not the FFPE 01B one.
    a13d = table.set_index("unit_id").loc["TCGA-A7-A13D-01"]
    assert a13d["aliquot_barcode"] == "TCGA-A7-A13D-01A-13R-A12P-07"
    # A2-A25D has two slides, one unit; AO-A0J6 is not embedded yet; E2-A1L7 has no RNA.
    assert table["unit_id"].tolist() == ["TCGA-A2-A25D-01", "TCGA-A7-A13D-01", "TCGA-BH-A0EA-01"]
    assert table.set_index("unit_id").loc["TCGA-A2-A25D-01", "n_slides"] == 2
    cmeta = _meta(result, "cohort_table")
    assert cmeta["not_embedded"] == 1 and cmeta["dagster/row_count"] == 3
    assert cmeta["excluded"] == {"embedding not materialized": 1, "no tumour RNA": 1}
    assert cmeta["embedding_dim"] == 8 and cmeta["sites"] == 3
    assert cmeta["y_variance"] == pytest.approx(table["y"].var())
    schema = {c.name: c.type for c in cmeta["dagster/column_schema"].columns}
    assert schema["emb_0007"] == "float32" and schema["y"] == "float64"


@pytest.mark.slow
def test_demo_cohort_every_embedded_tumour_slide_is_in_the_table(
    gdc_emulator_factory, tmp_path, tmp_path_factory, instance
):
    catalogue = load_cohort("demo", tmp_path_factory.mktemp("demo-cache"))
    emulator = gdc_emulator_factory(catalogue)
    lake = tmp_path / "lake"
    # The slide manifest comes straight from the catalogue documents: listing slides through
    # /files would make the emulator generate every SVS to compute its md5 (minutes).
    records = [SlideFile.from_hit(d) for d in catalogue.files if d["data_format"] == "SVS"]
    manifest = pd.DataFrame([r.__dict__ for r in records])
    (lake / "tables").mkdir(parents=True)
    manifest.to_parquet(lake / "tables" / "gdc_slide_manifest.parquet", index=False)
    _embed(lake, manifest["file_id"][:-3])  # the last three slides are not embedded yet

    result = dg.materialize(
        [*ASSETS, *cohort_checks],
        selection=["gdc_expression_manifest", "expression_table", "cohort_table"],
        instance=instance,
        resources=_resources(emulator.url, lake),
        run_config={"ops": {"cohort_table": {"config": {"unit": "slide"}}}},
    )
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    expression = pd.read_parquet(lake / "tables" / "expression_table.parquet")
    table = pd.read_parquet(lake / "tables" / "cohort_table.parquet")
    rna = [ExpressionFile.from_hit(d) for d in catalogue.files if d["data_format"] == "TSV"]
    tumour_keys = {
        (r.case_barcode, r.sample_type_code) for r in rna if is_tumour_code(r.sample_type_code)
    }
    embedded = set(manifest["file_id"][:-3])
    expected = {
        s.file_id
        for s in records
        if s.file_id in embedded and (s.case_barcode, s.sample_type_code) in tumour_keys
    }
    assert set(table["unit_id"]) == expected and len(expected) > 30
    meta = _meta(result, "expression_table")
    assert meta["normals_dropped"] == sum(1 for r in rna if r.sample_type_code == "11") > 0
    assert meta["duplicates_resolved"] > 0  # second aliquots exist in the demo cohort
    for row in table.itertuples():  # no tumour slide paired with a non-tumour sample
        assert row.sample_barcode[13:15] == row.sample_type_code == "01"
    assert len(expression) == len(tumour_keys)
