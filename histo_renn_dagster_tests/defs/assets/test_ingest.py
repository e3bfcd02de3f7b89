"""Ingest and download assets materialized through Dagster against the emulator (fixture cohort)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from histo_renn_dagster.core.gdc.manifest import manifest_data_release, read_manifest
from histo_renn_dagster.definitions import build_resources
from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.assets.slides import slide_file
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

ASSETS = [gdc_slide_manifest, gdc_expression_manifest, slide_file]


def _resources(url: str, lake: Path) -> dict:
    return build_resources(
        GDCResource(base_url=url, max_attempts=2), LayoutResource(root=str(lake))
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_manifests_register_partitions_and_record_release(gdc_emulator, tmp_path, instance):
    result = dg.materialize(
        ASSETS,
        selection=["gdc_slide_manifest", "gdc_expression_manifest"],
        instance=instance,
        resources=_resources(gdc_emulator.url, tmp_path),
    )
    assert result.success
    slides = pd.read_parquet(tmp_path / "tables" / "gdc_slide_manifest.parquet")
    catalogue = gdc_emulator.catalogue
    svs_ids = sorted(d["file_id"] for d in catalogue.files if d.get("data_format") == "SVS")
    assert sorted(slides["file_id"]) == svs_ids
    assert set(instance.get_dynamic_partitions(SLIDES_PARTITION)) == set(svs_ids)
    for row in slides.itertuples():
        assert row.md5 == catalogue.blob(row.file_id).md5
        assert row.site_code and row.case_barcode.startswith("TCGA-")

    release = catalogue.data_release
    meta = result.asset_materializations_for_node("gdc_slide_manifest")[0].metadata
    assert meta["gdc_data_release"].value == release
    assert meta["dagster/row_count"].value == len(svs_ids)
    manifest = tmp_path / "manifests" / "gdc_slide_manifest.txt"
    assert [r.id for r in read_manifest(manifest)] == sorted(svs_ids)
    assert manifest_data_release(manifest) == release

    expression = pd.read_parquet(tmp_path / "tables" / "gdc_expression_manifest.parquet")
    assert {"Primary Tumor", "Solid Tissue Normal"} <= set(expression["sample_type"])


def test_slide_file_downloads_verified_and_skips_on_rerun(gdc_emulator, tmp_path, instance):
    resources = _resources(gdc_emulator.url, tmp_path)
    assert dg.materialize(
        ASSETS, selection=["gdc_slide_manifest"], instance=instance, resources=resources
    ).success
    key = sorted(instance.get_dynamic_partitions(SLIDES_PARTITION))[0]
    run = dg.materialize(
        ASSETS, selection=["slide_file"], partition_key=key, instance=instance, resources=resources
    )
    assert run.success
    files = list((tmp_path / "slides" / key).glob("*.svs"))
    assert len(files) == 1
    assert not list((tmp_path / "slides" / key).glob("*.partial"))
    blob = gdc_emulator.catalogue.blob(key)
    assert hashlib.md5(files[0].read_bytes()).hexdigest() == blob.md5

    gdc_emulator.clear_requests()
    again = dg.materialize(
        ASSETS, selection=["slide_file"], partition_key=key, instance=instance, resources=resources
    )
    assert again.success
    meta = again.asset_materializations_for_node("slide_file")[0].metadata
    assert meta["skipped_existing"].value is True
    assert not [r for r in gdc_emulator.requests if r.path.startswith("/data")]


def test_slide_file_corruption_fails_only_that_partition(gdc_emulator, tmp_path, instance):
    resources = _resources(gdc_emulator.url, tmp_path)
    assert dg.materialize(
        ASSETS, selection=["gdc_slide_manifest"], instance=instance, resources=resources
    ).success
    bad, good = sorted(instance.get_dynamic_partitions(SLIDES_PARTITION))[:2]
    gdc_emulator.faults.set("corrupt:10@/data*inf")
    failed = dg.materialize(
        ASSETS,
        selection=["slide_file"],
        partition_key=bad,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not failed.success  # after the client's md5 retries and the step's retry policy
    assert not any((tmp_path / "slides" / bad).glob("*.svs"))
    gdc_emulator.faults.clear()
    ok = dg.materialize(
        ASSETS, selection=["slide_file"], partition_key=good, instance=instance, resources=resources
    )
    assert ok.success
