"""The scaled deployment's configuration, checked without services (needs the ``scale`` extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from dagster._core.definitions.partitions.context import partition_loading_context

from histo_renn_dagster.defs.executors import (
    BACKEND_ENV,
    BROKER_ENV,
    CELERY_QUEUE_TAG,
    CELERY_SETTINGS,
    CPU_QUEUE,
    GPU_QUEUE,
    ScaleExtraMissingError,
    celery_executor,
    celery_jobs,
)
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.server import GDCEmulator

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_ENV = {
    "HISTO_RENN_PG_HOST": "127.0.0.1",
    "HISTO_RENN_PG_PORT": "5432",
    "HISTO_RENN_PG_USER": "dagster",
    "HISTO_RENN_PG_PASSWORD": "secret",
    "HISTO_RENN_PG_DB": "dagster",
}


@pytest.fixture(scope="module")
def scaled() -> dg.Definitions:
    pytest.importorskip("dagster_celery", reason="pip install -e '.[scale]'")
    from histo_renn_dagster.defs.executors import scaled_definitions

    return scaled_definitions()


def test_worker_yaml_repeats_the_executor_settings() -> None:
    config = yaml.safe_load((REPO_ROOT / "deploy" / "celery" / "worker.yaml").read_text())
    block = config["execution"]["config"]
    assert block["broker"] == {"env": BROKER_ENV}
    assert block["backend"] == {"env": BACKEND_ENV}
    assert block["config_source"] == CELERY_SETTINGS


def test_postgres_instance_yaml_is_valid_dagster_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("dagster_postgres", reason="pip install -e '.[scale]'")
    from dagster._core.instance.config import dagster_instance_config

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text(
        (REPO_ROOT / "deploy" / "postgres" / "dagster.yaml").read_text()
    )
    config, _ = dagster_instance_config(str(tmp_path))
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert {v["env"] for v in db.values() if isinstance(v, dict)} == set(PG_ENV)
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_asset_jobs_default_to_celery(scaled: dg.Definitions) -> None:
    implicit = scaled.resolve_implicit_global_asset_job_def()
    assert implicit.executor_def.name == "celery_cpu_gpu"
    for name in ("manifests_celery", "slide_run_celery", "cohort_celery"):
        assert scaled.resolve_job_def(name).executor_def.name == "celery_cpu_gpu"


def test_slide_steps_carry_their_queue(scaled: dg.Definitions) -> None:
    job = scaled.resolve_job_def("slide_run_celery")
    tags = {node.name: node.tags.get(CELERY_QUEUE_TAG) for node in job.graph.nodes}
    assert (tags["slide_file"], tags["slide_tiles"], tags["slide_embedding"]) == (
        CPU_QUEUE,
        CPU_QUEUE,
        GPU_QUEUE,
    ), "add op_tags=CPU_STEP_TAGS / GPU_STEP_TAGS to the slide asset decorators"
    assert all(tag in (None, CPU_QUEUE) for name, tag in tags.items() if name != "slide_embedding")


def test_celery_jobs_only_for_defined_assets() -> None:
    executor = dg.in_process_executor
    names = [j.name for j in celery_jobs(["slide_file", "cohort_table"], executor)]
    assert names == ["slide_run_celery", "cohort_celery"]
    with_renn = [j.name for j in celery_jobs(["renn_model"], executor)]
    assert with_renn == ["renn_celery"]


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dagster_celery", None)
    with pytest.raises(ScaleExtraMissingError, match=r"pip install -e '\.\[scale\]'"):
        celery_executor()


def test_new_slides_sensor_requests_celery_slide_runs(
    scaled: dg.Definitions, fixture_catalogue: Catalogue, tmp_path: Path
) -> None:
    sensor = scaled.resolve_sensor_def("new_slides_sensor")
    targets = sorted(t.job_name for t in sensor.targets)
    assert targets == ["manifest_refresh", "slide_run_celery"]
    for name in targets:
        assert scaled.resolve_job_def(name).executor_def.name == "celery_cpu_gpu", name
    assert scaled.resolve_job_def("slide_run").executor_def is dg.in_process_executor

    # A tick as the daemon evaluates it, the slides registered and in the manifest (an earlier
    # tick's work): each gets a Celery run.
    layout = LayoutResource(root=str(tmp_path))
    slides = [d["file_id"] for d in fixture_catalogue.files if d["data_format"] == "SVS"]
    table = layout.lake().table_path("gdc_slide_manifest")
    table.parent.mkdir(parents=True)
    pd.DataFrame({"file_id": slides}).to_parquet(table)
    with GDCEmulator(fixture_catalogue) as emulator, dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SLIDES_PARTITION, slides)
        resources = {"gdc": GDCResource(base_url=emulator.url), "layout": layout}
        with (
            dg.build_sensor_context(
                instance=instance, resources=resources, definitions=scaled
            ) as context,
            partition_loading_context(dynamic_partitions_store=instance),
        ):
            result = sensor.evaluate_tick(context)
    requested = [(r.job_name, r.partition_key) for r in result.run_requests or []]
    assert requested and {job for job, _ in requested} == {"slide_run_celery"}
    assert {key for _, key in requested} == set(slides)
