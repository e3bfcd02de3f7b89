"""A slice of the demo graph through a Postgres instance and Celery workers (cpu x2, gpu x1).

One scenario (module fixture) materializes four demo slides (download, tiling, embedding),
then the expression and cohort tables, through the Celery executor. One cpu worker is killed
with SIGKILL while it runs a download; the step must finish on the other cpu worker. The same
slice is then materialized the default way (in-process, SQLite) for comparison.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import h5py
import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster import definitions
from histo_renn_dagster.defs.executors import CPU_QUEUE, GPU_QUEUE, GPU_STEP_TAGS
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
from histo_renn_dagster.emulator.cohorts import load_cohort
from histo_renn_dagster.emulator.server import GDCEmulator
from histo_renn_dagster_tests.e2e.readme_commands import DEMO_SLIDES
from histo_renn_dagster_tests.e2e.support import e2e_catalogues
from histo_renn_dagster_tests.integration.cluster import (
    ScaledCluster,
    StepAttempt,
    make_cluster,
    step_attempts,
    step_windows,
)
from histo_renn_dagster_tests.integration.services import Postgres, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

SLIDES = (
    DEMO_SLIDES[0],  # TCGA-AR-A255
    DEMO_SLIDES[1],  # TCGA-PL-A8LY, the smallest: its download is the one killed
    DEMO_SLIDES[3],  # TCGA-LL-A5YO
    "f78dc3fd-21c7-4aa5-a16f-87392cc1a4d4",  # TCGA-A8-A084
)
"""Demo slides whose cases have tumour RNA with MKI67 > 0: four cohort rows, enough for a study."""
KILLED_SLIDE = SLIDES[1]
DOWNLOAD_DELAY_S = 20
# Longer than any step of this slice on a loaded CI machine, so no running step is handed out
# twice; short enough that the killed worker's step is retried within a minute.
VISIBILITY_TIMEOUT_S = 90
EMBEDDING = {"weights": "random", "k": 4}
RUN_CONFIG = {"ops": {"slide_embedding": {"config": EMBEDDING}}}
EXPECTED_QUEUE = {
    "slide_file": CPU_QUEUE,
    "slide_tiles": CPU_QUEUE,
    "slide_embedding": GPU_QUEUE,
    "renn_model": GPU_QUEUE,
}
"""Queue of each step; every other step (manifests, tables, checks) goes to the default cpu."""
RENN_PARTITION = "2"
RENN_CONFIG = {
    "ops": {
        "renn_model": {
            "config": {"seeds": [0], "losses": ["NLL"], "step_budget": 20, "hidden": [8]}
        }
    }
}
"""One small renn_model partition (one seed, one loss, a few steps) on the four-slide cohort."""
CPU_WORKERS = ("cpu1", "cpu2")
GPU_WORKERS = ("gpu1",)


@dataclass
class Scenario:
    cluster: ScaledCluster
    local_lake: Path
    killed_worker: str
    renn_errors: list[str] = field(default_factory=list)


def _has_renn() -> bool:
    # Extension point: the renn_model steps run once definitions.ASSETS registers the asset.
    return "renn_model" in {key.to_user_string() for a in definitions.ASSETS for key in a.keys}


def _gpu_tagged() -> bool:
    from histo_renn_dagster.defs.assets.features import slide_embedding

    return slide_embedding.op.tags.get(next(iter(GPU_STEP_TAGS))) == GPU_QUEUE


def _kill_worker_running(cluster: ScaledCluster, job: str, slide: str, step: str) -> str:
    """Wait until a worker executes ``step`` of ``slide``'s run, SIGKILL it, return its name."""
    found: list[StepAttempt] = []

    def running() -> bool:
        with cluster.instance() as instance:
            for run in cluster.runs(instance, job):
                if run.tags.get("dagster/partition") == slide:
                    found[:] = [
                        a for a in step_attempts(instance, run.run_id) if a.step_key == step
                    ]
        return bool(found)

    wait_until(f"{step} of {slide} on a worker", running, timeout=180, every=0.3)
    name = found[0].worker
    cluster.workers[name].kill()
    return name


def _materialize_locally(lake: Path, gdc_url: str, renn_errors: list[str]) -> None:
    """The default path: in-process execution, a throwaway SQLite instance (like `make demo`)."""
    resources = definitions.build_resources(
        GDCResource(base_url=gdc_url), LayoutResource(root=str(lake))
    )
    with dg.instance_for_test() as instance:

        def run(selection: list[str], partition: str | None = None, config=RUN_CONFIG) -> None:
            ops = {a: c for a, c in config["ops"].items() if a in selection}
            result = dg.materialize(
                definitions.ASSETS,
                selection=selection,
                partition_key=partition,
                instance=instance,
                resources=resources,
                run_config={"ops": ops},
                raise_on_error=False,
            )
            if not result.success:
                failures = [str(e.message) for e in result.all_events if e.is_step_failure]
                raise AssertionError(f"local run of {selection} failed: {failures}")

        run(["gdc_slide_manifest", "gdc_expression_manifest"])
        for slide in SLIDES:
            run(["slide_file", "slide_tiles", "slide_embedding"], slide)
        run(["expression_table", "cohort_table"])
        if _has_renn():
            try:
                run(["renn_model"], RENN_PARTITION, RENN_CONFIG)
            except AssertionError as exc:  # reported by the renn test, not by every test
                renn_errors.append(str(exc))


@pytest.fixture(scope="module")
def scenario(
    postgres: Postgres, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    if not _gpu_tagged():
        pytest.fail(
            "slide_embedding has no op tag dagster-celery/queue=gpu: add "
            "op_tags=GPU_STEP_TAGS (histo_renn_dagster.defs.executors) to its asset decorator"
        )
    root = tmp_path_factory.mktemp("scaled")
    cache = os.environ.get("HISTO_RENN_E2E_CACHE")
    demo = load_cohort("demo", Path(cache) if cache else root / "emulator-cache")
    served, _ = e2e_catalogues(demo, list(SLIDES), held_back=0)
    with GDCEmulator(served) as emulator:
        env = {
            **postgres.env(),
            "HISTO_RENN_CELERY_BROKER": redis_url,
            "HISTO_RENN_CELERY_BACKEND": redis_url,
            "HISTO_RENN_GDC_URL": emulator.url,
        }
        cluster = make_cluster(root, env, visibility_timeout_s=VISIBILITY_TIMEOUT_S)
        try:
            cluster.start_workers(
                [(n, CPU_QUEUE) for n in CPU_WORKERS] + [(n, GPU_QUEUE) for n in GPU_WORKERS]
            )
            cluster.execute("manifests_celery")
            # The killed slide's download answers only after a delay: a window to kill its worker.
            emulator.faults.set(f"delay:{DOWNLOAD_DELAY_S}@/data/{KILLED_SLIDE}*1")
            runs = [
                cluster.launch("slide_run_celery", partition=s, run_config=RUN_CONFIG)
                for s in SLIDES
            ]
            killed = _kill_worker_running(cluster, "slide_run_celery", KILLED_SLIDE, "slide_file")
            for process in runs:
                cluster.finish(process)
            cluster.execute("cohort_celery")
            renn_errors: list[str] = []
            if _has_renn():
                try:
                    cluster.execute("renn_celery", partition=RENN_PARTITION, run_config=RENN_CONFIG)
                except AssertionError as exc:  # reported by the renn test, not by every test
                    renn_errors.append(str(exc)[-3000:])
            local_lake = root / "local-lake"
            _materialize_locally(local_lake, emulator.url, renn_errors)
            yield Scenario(cluster, local_lake, killed, renn_errors)
        finally:
            cluster.stop_workers()


def _all_attempts(scenario: Scenario) -> list[StepAttempt]:
    cluster = scenario.cluster
    with cluster.instance() as instance:
        run_ids = [
            run.run_id
            for job in ("manifests_celery", "slide_run_celery", "cohort_celery", "renn_celery")
            for run in cluster.runs(instance, job)
        ]
        return [a for run_id in run_ids for a in step_attempts(instance, run_id)]


def test_every_step_ran_on_its_queue(scenario: Scenario) -> None:
    attempts = _all_attempts(scenario)
    steps = {a.step_key for a in attempts}
    assert {"slide_file", "slide_tiles", "slide_embedding", "cohort_table"} <= steps
    for attempt in attempts:
        expected = EXPECTED_QUEUE.get(attempt.step_key, CPU_QUEUE)
        workers = GPU_WORKERS if expected == GPU_QUEUE else CPU_WORKERS
        assert (attempt.queue, attempt.worker in workers) == (expected, True), attempt


def test_killed_cpu_worker_step_retried_on_the_other(scenario: Scenario) -> None:
    cluster = scenario.cluster
    assert cluster.workers[scenario.killed_worker].killed
    with cluster.instance() as instance:
        (run,) = [
            r
            for r in cluster.runs(instance, "slide_run_celery")
            if r.tags.get("dagster/partition") == KILLED_SLIDE
        ]
        assert run.status == dg.DagsterRunStatus.SUCCESS
        downloads = [
            a.worker for a in step_attempts(instance, run.run_id) if a.step_key == "slide_file"
        ]
        survivor = next(n for n in CPU_WORKERS if n != scenario.killed_worker)
        assert downloads == [scenario.killed_worker, survivor]
        # The killed attempt recorded nothing: one materialization of the slide, not two.
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("slide_file"), asset_partitions=[KILLED_SLIDE]
            ),
            limit=10,
        ).records
        assert len(records) == 1


def _lake_files(lake: Path) -> set[str]:
    return {str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file()}


def test_nothing_lost_or_duplicated_in_the_lake(scenario: Scenario) -> None:
    shared = _lake_files(scenario.cluster.lake)
    assert shared == _lake_files(scenario.local_lake)
    assert not [f for f in shared if f.endswith((".partial", ".tmp"))]
    assert {f"slides/{s}" for s in SLIDES} <= {str(Path(f).parent) for f in shared}


def _h5_content(path: Path, lake: Path) -> dict[str, object]:
    content: dict[str, object] = {}
    with h5py.File(path, "r") as h5:
        for key, value in h5.attrs.items():
            content[f"@{key}"] = str(value).replace(str(lake), "<lake>")
        h5.visititems(
            lambda name, obj: (
                content.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return content


def _assert_same_h5(a: Path, b: Path, lakes: tuple[Path, Path]) -> None:
    left, right = _h5_content(a, lakes[0]), _h5_content(b, lakes[1])
    assert left.keys() == right.keys(), a.name
    for key, value in left.items():
        other = right[key]
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            np.testing.assert_allclose(value, other, rtol=1e-5, atol=1e-6, err_msg=f"{a}: {key}")
        elif isinstance(value, np.ndarray) and value.dtype == object:  # JPEG bytes per tile
            assert len(value) == len(other), f"{a}: {key}"  # type: ignore[arg-type]
            for x, y in zip(value, other, strict=True):  # type: ignore[call-overload]
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{a}: {key}")
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other, err_msg=f"{a}: {key}")
        else:
            assert value == other, f"{a}: {key}"


def test_results_equal_the_default_local_run(scenario: Scenario) -> None:
    shared, local = scenario.cluster.lake, scenario.local_lake
    for slide in SLIDES:
        for kind in ("tiles", "embeddings"):
            _assert_same_h5(
                shared / kind / f"{slide}.h5", local / kind / f"{slide}.h5", (shared, local)
            )
    for table in ("gdc_slide_manifest", "expression_table", "cohort_table"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(shared / "tables" / f"{table}.parquet"),
            pd.read_parquet(local / "tables" / f"{table}.parquet"),
            check_exact=False,
            rtol=1e-5,
        )
    cohort = pd.read_parquet(shared / "tables" / "cohort_table.parquet")
    assert len(cohort) > 0


def test_gpu_pool_limit_holds_across_runs_and_workers(scenario: Scenario) -> None:
    cluster = scenario.cluster
    with cluster.instance() as instance:
        windows = sorted(
            w
            for run in cluster.runs(instance, "slide_run_celery")
            for w in step_windows(instance, run.run_id, "slide_embedding")
        )
    assert len(windows) == len(SLIDES)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, windows


def test_run_and_event_history_is_in_postgres(scenario: Scenario, postgres: Postgres) -> None:
    import psycopg2

    cluster = scenario.cluster
    with cluster.instance() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        ids = [
            r.run_id
            for job in ("manifests_celery", "slide_run_celery", "cohort_celery", "renn_celery")
            for r in cluster.runs(instance, job)
        ]
    conn = psycopg2.connect(
        host=postgres.host,
        port=postgres.port,
        user=postgres.user,
        password=postgres.password,
        dbname=postgres.db,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT run_id, status FROM runs WHERE run_id = ANY(%s)", (ids,))
            statuses = dict(cursor.fetchall())
            cursor.execute(
                "SELECT count(*) FROM event_logs WHERE run_id = ANY(%s) AND dagster_event_type = "
                "'ASSET_MATERIALIZATION'",
                (ids,),
            )
            (materializations,) = cursor.fetchone()
    finally:
        conn.close()
    renn = int(_has_renn())
    renn_ok = renn and not scenario.renn_errors
    assert len(ids) == 1 + len(SLIDES) + 1 + renn
    assert set(statuses) == set(ids)
    failed = {s for s in statuses.values() if s != "SUCCESS"}
    assert failed == (set() if renn_ok or not renn else {"FAILURE"})
    # manifests (2) + 3 per slide + expression_table + cohort_table (+ one renn_model partition)
    assert materializations == 2 + 3 * len(SLIDES) + 2 + int(renn_ok)


def test_renn_model_partition_ran_on_the_gpu_queue(scenario: Scenario) -> None:
    """Extension point: covered once definitions.ASSETS registers renn_model."""
    if not _has_renn():
        pytest.skip("renn_model is not registered in definitions.ASSETS yet")
    assert not scenario.renn_errors, "\n".join(scenario.renn_errors)
    cluster = scenario.cluster
    with cluster.instance() as instance:
        (run,) = cluster.runs(instance, "renn_celery")
        attempts = [a for a in step_attempts(instance, run.run_id) if a.step_key == "renn_model"]
    assert [(a.queue, a.worker in GPU_WORKERS) for a in attempts] == [(GPU_QUEUE, True)]
    shared, local = cluster.lake, scenario.local_lake
    tables = sorted(p.relative_to(shared) for p in shared.glob("models/**/*.parquet"))
    assert tables
    for table in tables:
        left, right = pd.read_parquet(shared / table), pd.read_parquet(local / table)
        volatile = [c for c in left.columns if c.startswith("wall") or c.endswith("_s")]
        pd.testing.assert_frame_equal(
            left.drop(columns=volatile), right.drop(columns=volatile), check_exact=False, rtol=1e-5
        )
