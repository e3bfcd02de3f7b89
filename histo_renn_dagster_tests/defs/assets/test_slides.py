"""slide_tiles (and slide_file's disk check) materialized through Dagster on real tiny slides."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from histo_renn_dagster.core.wsi.store import TileStore
from histo_renn_dagster.defs.assets.ingest import gdc_expression_manifest, gdc_slide_manifest
from histo_renn_dagster.defs.assets.slides import slide_file, slide_tiles
from histo_renn_dagster.defs.checks import (
    slide_tiles_nonempty_or_flagged,
    slide_tiles_store_readable,
)
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
from histo_renn_dagster.emulator.catalogue import BytesBlob, Catalogue
from histo_renn_dagster_tests.core.wsi.synthetic import tissue_image, write_pyramid

CMU = Path(__file__).resolve().parents[2] / "data" / "slides" / "CMU-1-Small-Region.svs"
IDS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]
TILES_ONLY = [slide_tiles]  # its checks are check_specs: they run in its step


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _place(lake: Path, file_id: str, source: Path | None = None, text: str | None = None) -> Path:
    """Put a file where slide_file's download would have left it."""
    folder = lake / "slides" / file_id
    folder.mkdir(parents=True)
    if source is not None:
        return Path(shutil.copy(source, folder / source.name))
    path = folder / "notes.svs"
    path.write_text(text or "")
    return path


def _tile(instance, lake: Path, key: str, config: dict | None = None) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(SLIDES_PARTITION, [key])
    return dg.materialize(
        TILES_ONLY,
        partition_key=key,
        instance=instance,
        resources={"layout": LayoutResource(root=str(lake))},
        run_config={"ops": {"slide_tiles": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def _meta(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.asset_materializations_for_node("slide_tiles")
    return {k: v.value for k, v in event.metadata.items()}


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(e.step_failure_data.error.message) for e in result.all_events if e.is_step_failure
    )


def test_download_then_tile_real_slide_with_disk_check(
    gdc_emulator_factory, fixture_catalogue: Catalogue, tmp_path: Path, instance
) -> None:
    # The fixture cohort serves random bytes as slides; serve the real CMU slide for one of them.
    doc = next(d for d in fixture_catalogue.files if d["data_format"] == "SVS")
    blobs = {**fixture_catalogue.blobs, doc["file_id"]: BytesBlob(CMU.read_bytes(), "cmu")}
    catalogue = Catalogue("cmu", fixture_catalogue.data_release, fixture_catalogue.files, blobs)
    emulator = gdc_emulator_factory(catalogue)
    layout = LayoutResource(root=str(tmp_path))
    resources = {
        "gdc": GDCResource(base_url=emulator.url, max_attempts=2),
        "layout": layout,
        "io_manager": ParquetIOManager(layout=layout),
    }
    assets = [gdc_slide_manifest, gdc_expression_manifest, slide_file, *TILES_ONLY]
    assert dg.materialize(
        assets, selection=["gdc_slide_manifest"], instance=instance, resources=resources
    ).success
    key = doc["file_id"]

    too_big = dg.materialize(
        assets,
        selection=["slide_file"],
        partition_key=key,
        instance=instance,
        resources=resources,
        run_config={"ops": {"slide_file": {"config": {"reserve_gb": 1e9}}}},
        raise_on_error=False,
    )
    assert not too_big.success
    message = _failure(too_big)
    assert key in message and "bytes are free" in message and "reserve" in message
    assert not [r for r in emulator.requests if r.path.startswith("/data")]  # refused up front

    run = dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(slide_file, slide_tiles)
        | dg.AssetSelection.checks_for_assets(slide_tiles),
        partition_key=key,
        instance=instance,
        resources=resources,
    )
    assert run.success
    meta = _meta(run)
    assert meta["tiles"] == meta["dagster/row_count"] == 1 and meta["no_tissue"] is False
    assert (meta["mpp_source"], meta["mpp0"], meta["effective_mpp"]) == ("openslide", 0.499, 0.499)
    assert 0.3 < meta["tissue_area_mm2"] < 1.0
    assert meta["seconds_tiling"] > 0 and meta["slide_deleted"] is False
    assert meta["previews"].count("](data:image/jpeg;base64,") == 2
    store = tmp_path / "tiles" / f"{key}.h5"
    assert meta["store_path"] == str(store)
    previews = tmp_path / "tiles" / "previews" / key
    assert sorted(p.name for p in previews.iterdir()) == ["mask_overlay.png", "thumbnail.png"]
    assert _checks(run) == {
        "slide_tiles_store_readable": True,
        "slide_tiles_nonempty_or_flagged": True,
    }
    with TileStore(store) as tiles:
        assert [tuple(c) for c in tiles.coords] == [(1196, 1794)] and tiles.attrs["slide_id"] == key


def test_non_slide_fails_only_its_partition_and_leaves_nothing(tmp_path: Path, instance) -> None:
    good, bad, truncated = IDS[:3]
    _place(tmp_path, good, CMU)
    _place(tmp_path, bad, text="this is not a slide\n")
    cut = _place(tmp_path, truncated, CMU)
    cut.write_bytes(CMU.read_bytes()[:1_900_000])

    for key, expect in ((bad, "not a whole-slide image"), (truncated, "truncated file")):
        failed = _tile(instance, tmp_path, key)
        assert not failed.success
        message = _failure(failed)
        assert key in message and expect in message
    assert _tile(instance, tmp_path, good).success
    assert sorted(p.name for p in (tmp_path / "tiles").iterdir()) == sorted(
        ["previews", f"{good}.h5"]
    )
    assert [p.name for p in (tmp_path / "tiles" / "previews").iterdir()] == [good]
    assert instance.get_materialized_partitions(dg.AssetKey("slide_tiles")) == {good}


def test_mpp_override_csv(tmp_path: Path, instance) -> None:
    bare_id = IDS[0]
    img = tissue_image(1200, 1200, [(0, 0, 598, 598)])
    bare = write_pyramid(tmp_path / "bare.tif", img, downsamples=(1,), aperio=False)
    _place(tmp_path, bare_id, bare)

    failed = _tile(instance, tmp_path, bare_id)
    assert not failed.success and "no resolution found" in _failure(failed)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mpp_overrides.csv").write_text(f"file_id,mpp\n{bare_id},0.5\n")
    ok = _tile(instance, tmp_path, bare_id)
    assert ok.success
    meta = _meta(ok)
    assert (meta["mpp_source"], meta["mpp0"], meta["tiles"]) == ("override", 0.5, 1)


def test_zero_tissue_is_a_flagged_empty_store(tmp_path: Path, instance) -> None:
    key = IDS[0]
    blank = write_pyramid(tmp_path / "blank.svs", np.full((1300, 1300, 3), 240, np.uint8))
    _place(tmp_path, key, blank)
    run = _tile(instance, tmp_path, key)
    assert run.success
    meta = _meta(run)
    assert meta["tiles"] == 0 and meta["no_tissue"] is True and "no tile" in meta["warnings"]
    evaluations = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert all(e.passed for e in evaluations.values())
    assert evaluations["slide_tiles_nonempty_or_flagged"].metadata["flagged_empty"].value is True


def test_delete_slide_after_verified_store_and_drop_flagged(tmp_path: Path, instance) -> None:
    key = IDS[0]
    slide = _place(tmp_path, key, CMU)
    (slide.parent / f"{slide.name}.md5").write_text("0" * 32)  # the download's sidecar
    size = slide.stat().st_size
    run = _tile(instance, tmp_path, key, {"delete_slide_after_verify": True, "drop_flagged": True})
    assert run.success
    meta = _meta(run)
    assert meta["slide_deleted"] is True and meta["slide_bytes_freed"] == size + 32
    assert not (tmp_path / "slides" / key).exists()
    assert (tmp_path / "tiles" / f"{key}.h5").is_file() and meta["qc_dropped"] == 0
    again = _tile(instance, tmp_path, key)
    assert not again.success and "materialize slide_file" in _failure(again)


def test_checks_run_in_the_tiling_step_with_a_status_per_slide(tmp_path: Path, instance) -> None:
    # check_specs on slide_tiles: no separate check steps (each step is a task on a Celery
    # worker), and each result still lands on its own slide partition.
    names = {"slide_tiles_store_readable", "slide_tiles_nonempty_or_flagged"}
    for key in IDS[:2]:
        _place(tmp_path, key, CMU)
        run = _tile(instance, tmp_path, key)
        assert run.success
        assert {e.step_key for e in run.all_events if e.step_key} == {"slide_tiles"}
        evaluations = run.get_asset_check_evaluations()
        assert {(e.check_name, e.partition, e.passed) for e in evaluations} == {
            (name, key, True) for name in names
        }
    spec = next(s for s in slide_tiles.check_specs if s.name == "slide_tiles_store_readable")
    assert spec.blocking  # a store that fails it never reaches slide_embedding


def test_check_functions_report_a_broken_store(tmp_path: Path) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an HDF5 file")
    for check in (slide_tiles_store_readable, slide_tiles_nonempty_or_flagged):
        result = check(broken)
        assert not result.passed and str(broken) in str(result.description), check.__name__


def test_failed_blocking_check_fails_the_tiling_step(
    tmp_path: Path, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a store that fails slide_tiles_store_readable does: the step fails (so slide_embedding
    # never reads the store), with the failed evaluation recorded on the slide.
    from histo_renn_dagster.defs import checks

    unreadable = dg.AssetCheckResult(passed=False, description="tile 3 does not decode")
    monkeypatch.setitem(
        checks._SLIDE_TILES_CHECK_FNS, "slide_tiles_store_readable", lambda _: unreadable
    )
    key = IDS[0]
    _place(tmp_path, key, CMU)
    run = _tile(instance, tmp_path, key)
    assert not run.success and "blocking asset check" in _failure(run)
    assert {(e.check_name, e.partition, e.passed) for e in run.get_asset_check_evaluations()} == {
        ("slide_tiles_store_readable", key, False),
        ("slide_tiles_nonempty_or_flagged", key, True),
    }
