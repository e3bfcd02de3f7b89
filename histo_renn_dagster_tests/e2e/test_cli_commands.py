"""The README's command-line examples (readme_commands.py) run as written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from histo_renn_dagster.core.cohort.table import write_table
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.definitions import defs
from histo_renn_dagster.emulator.server import GDCEmulator
from histo_renn_dagster_tests.core.renn.cohort_fixture import synthetic_cohort_table
from histo_renn_dagster_tests.e2e.readme_commands import (
    MINIBATCH_COMMANDS,
    PUBLISH_COMMANDS,
    QUEUED_COMMANDS,
    SLIDE_A,
    SLIDE_B,
    SYNC_COMMANDS,
)
from histo_renn_dagster_tests.e2e.support import instance_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _has_asset(name: str) -> bool:
    return dg.AssetKey(name) in defs.resolve_asset_graph().materializable_asset_keys


def _has_job(name: str) -> bool:
    return any(getattr(job, "name", None) == name for job in defs.jobs or []) or any(
        name in {j.name for j in s.jobs} for s in defs.sensors or [] if s.has_jobs
    )


def _has_sensor(name: str) -> bool:
    return any(s.name == name for s in defs.sensors or [])


@pytest.fixture(scope="module")
def env(e2e_emulator: GDCEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    yield instance_env(tmp_path_factory.mktemp("cli-home"), e2e_emulator.url)


def _run(command: str, env: dict) -> str:
    result = run_cli(command, env)
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    return result.stdout


def _materialized(env: dict, asset: str) -> set[str]:
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def test_in_process_commands(env: dict) -> None:
    for _, command in SYNC_COMMANDS:
        _run(command, env)
    assert {SLIDE_A, SLIDE_B} <= _materialized(env, "slide_file")
    assert Path(env["DAGSTER_HOME"], "lake", "tables", "gdc_slide_manifest.parquet").exists()


def test_queued_commands(env: dict) -> None:
    if not _has_job("slide_run"):
        pytest.skip("definitions.py does not register new_slides_sensor (job slide_run) yet")
    _run(SYNC_COMMANDS[0][1], env)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        before = len(instance.get_runs()) + len(instance.get_backfills())
    for _, command in QUEUED_COMMANDS:
        _run(command, env)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_runs()) + len(instance.get_backfills()) > before


def test_minibatch_commands(env: dict) -> None:
    if not _has_asset("renn_model"):
        pytest.skip("renn_model is not defined yet")
    # renn_model reads cohort_table; stand in a small one in the shape the cohort asset writes
    # (the whole slide chain is exercised by the demo and the other e2e tests).
    write_table(
        synthetic_cohort_table(per_site=6, dim=4),
        LakeLayout(Path(env["DAGSTER_HOME"]) / "lake").table_path("cohort_table"),
    )
    for _, command in MINIBATCH_COMMANDS:
        _run(command, env)
    assert "8" in _materialized(env, "renn_model")


def test_publish_and_sensor_commands(env: dict, e2e_emulator: GDCEmulator) -> None:
    if not _has_sensor("new_slides_sensor"):
        pytest.skip("definitions.py does not register new_slides_sensor yet")
    publish, sensor_start = (command for _, command in PUBLISH_COMMANDS)
    available = len(e2e_emulator.publisher.publishable())
    if available == 0:
        pytest.skip("the e2e emulator has nothing left to publish")
    lines = [json.loads(line) for line in _run(publish, env).splitlines()]
    assert len(lines) == min(2, available) and all(line["event"] == "published" for line in lines)
    _run(sensor_start, env)
