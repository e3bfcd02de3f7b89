"""Scale benchmark: the control plane at TCGA size, orchestration overhead, a wall-time projection.

Run from the repository root: ``.venv/bin/python benchmarks/scale.py [--sizes 1133 11000]``.
With ``pip install -e .[scale]`` and Debian's ``postgresql`` installed (or ``$HISTO_RENN_PG_URL``
set), every instance measurement runs on SQLite and on PostgreSQL side by side.

(a) registering N ``slides`` partitions (one call, as the sensor does) and reading them back;
(b) ``new_slides_sensor`` ticks against a GDC emulator listing N slides: the first tick, the ticks
    until every slide is registered (the sensor registers <= 1000 per tick) and the tick after
    that (nothing new to register, run requests only); each against Dagster's 60 s sensor limit;
(c) a backfill of ``slide_embedding`` over N partitions through the real backfill daemon code:
    runs created (the multi_run(64) backfill policy batches 64 slides a run) and time to enqueue;
(d) per-slide orchestration overhead: one demo slide's download + tiling + embedding as core calls
    vs as a Dagster run (in-process, as ``make demo``) and, with Redis installed, as a
    ``slide_run_celery`` run on a cpu + a gpu worker (worker time and task count); min of
    ``--repeats``; extrapolated to a real-size slide (``--sizes`` with no value runs (d)+(e) only);
(e) a projection of the 1133-slide cohort's wall time on N CPU workers + 1 GPU worker.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import numpy as np  # noqa: E402

from histo_renn_dagster.emulator.catalogue import BytesBlob, Catalogue  # noqa: E402
from histo_renn_dagster.emulator.server import GDCEmulator  # noqa: E402

SENSOR_LIMIT_S = 60.0
COHORT_SLIDES = 1133
# A TCGA-BRCA diagnostic slide: ~0.9 GB on average (1133 slides ~ 1 TB); ~2,500 tissue tiles of
# 598 px at 0.5 um/px (a 40x slide of ~100k x 80k px, ~40 % tissue). Override on the command line.
REAL_SLIDE_BYTES = 0.9e9
REAL_SLIDE_TILES = 2500
EMBED_K = 32
TASK_SECONDS = re.compile(r"Task execute_plan\[[^\]]+\] succeeded in ([0-9.]+)s")
TASK_RECEIVED = re.compile(r"Task execute_plan\[[^\]]+\] received")
OVERHEAD_SLIDE = "0b2e87e5-8168-4e31-ace7-ef06fb4a1e68"  # the demo's largest of its first three


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


@contextmanager
def _sqlite_instance() -> Iterator[dg.DagsterInstance]:
    with tempfile.TemporaryDirectory(prefix="scale-sqlite-") as home:
        (Path(home) / "dagster.yaml").write_text((ROOT / "storage" / "dagster.yaml").read_text())
        with dg.DagsterInstance.from_config(home) as instance:
            yield instance


@contextmanager
def _postgres_instance(url: str) -> Iterator[dg.DagsterInstance]:
    from urllib.parse import urlsplit

    import psycopg2

    parts = urlsplit(url)
    db = f"bench_{uuid.uuid4().hex[:8]}"

    admin = dict(host=parts.hostname, port=parts.port, user=parts.username, password=parts.password)
    conn = psycopg2.connect(dbname=parts.path.lstrip("/") or "postgres", **admin)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {db}")
    env = {
        "HISTO_RENN_PG_HOST": str(parts.hostname),
        "HISTO_RENN_PG_PORT": str(parts.port or 5432),
        "HISTO_RENN_PG_USER": str(parts.username),
        "HISTO_RENN_PG_PASSWORD": str(parts.password or ""),
        "HISTO_RENN_PG_DB": db,
    }
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory(prefix="scale-pg-") as home:
            yaml_text = (ROOT / "deploy" / "postgres" / "dagster.yaml").read_text()
            (Path(home) / "dagster.yaml").write_text(yaml_text)
            with dg.DagsterInstance.from_config(home) as instance:
                yield instance
    finally:
        os.environ.clear()
        os.environ.update(saved)
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        conn.close()


def _slide_ids(n: int) -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"histo-renn-scale/{i}")) for i in range(n)]


# (a) -----------------------------------------------------------------------------------------


def bench_partitions(instance: dg.DagsterInstance, n: int) -> dict[str, float]:
    from histo_renn_dagster.defs.partitions import SLIDES_PARTITION

    keys = _slide_ids(n)
    add_s, _ = _timed(lambda: instance.add_dynamic_partitions(SLIDES_PARTITION, keys))
    read_s, got = _timed(lambda: instance.get_dynamic_partitions(SLIDES_PARTITION))
    assert len(got) == n
    again_s, _ = _timed(lambda: instance.add_dynamic_partitions(SLIDES_PARTITION, keys[-10:]))
    return {"add_s": add_s, "read_s": read_s, "add_10_existing_s": again_s}


# (b) -----------------------------------------------------------------------------------------


def _listing_catalogue(template: Catalogue, n: int) -> Catalogue:
    """The fixture cohort's first slide document, cloned N times under new ids (1-byte blobs:
    the sensor lists ids only, so nothing is ever downloaded)."""
    slide = next(d for d in template.files if d["data_format"] == "SVS")
    files, blobs = [], {}
    for i, file_id in enumerate(_slide_ids(n)):
        doc = {**slide, "file_id": file_id, "file_name": f"TCGA-XX-{i:04d}-01Z-00-DX1.svs"}
        files.append(doc)
        blobs[file_id] = BytesBlob(b"x", file_id)
    return Catalogue("scale", template.data_release, files, blobs)


def bench_sensor(instance: dg.DagsterInstance, catalogue: Catalogue, lake: Path) -> dict[str, Any]:
    import pandas as pd

    from histo_renn_dagster import definitions
    from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
    from histo_renn_dagster.defs.sensors import new_slides_sensor

    layout = LayoutResource(root=str(lake))
    table = layout.lake().table_path("gdc_slide_manifest")
    table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"file_id": [d["file_id"] for d in catalogue.files]}).to_parquet(table)
    ticks: list[float] = []
    registered_per_tick: list[int] = []
    cursor = None
    with GDCEmulator(catalogue) as emulator:
        resources = {"gdc": GDCResource(base_url=emulator.url), "layout": layout}
        for _ in range(100):
            before = len(instance.get_dynamic_partitions("slides"))
            with dg.build_sensor_context(
                instance=instance,
                cursor=cursor,
                resources=resources,
                definitions=definitions.defs,
            ) as context:
                seconds, result = _timed(lambda c=context: new_slides_sensor(c))
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            cursor = result.cursor
            ticks.append(seconds)
            registered_per_tick.append(len(instance.get_dynamic_partitions("slides")) - before)
            if not result.dynamic_partitions_requests and ticks and len(ticks) > 1:
                break
    return {
        "ticks": len(ticks),
        "first_tick_s": ticks[0],
        "max_tick_s": max(ticks),
        "last_tick_s": ticks[-1],
        "registered": sum(registered_per_tick),
    }


# (c) -----------------------------------------------------------------------------------------


def bench_backfill(instance: dg.DagsterInstance, n: int) -> dict[str, Any]:
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    keys = _slide_ids(n)
    instance.add_dynamic_partitions("slides", keys)
    backfill_id = uuid.uuid4().hex[:8]
    target = ModuleTarget(
        module_name="histo_renn_dagster.definitions",
        attribute="defs",
        working_directory=str(ROOT),
        location_name="histo_renn_dagster",
    )
    logger = logging.getLogger("scale.backfill")
    logger.setLevel(logging.WARNING)
    with create_test_daemon_workspace_context(target, instance) as context:
        asset_graph = context.create_request_context().asset_graph
        started = time.perf_counter()
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=asset_graph,
            partition_names=keys,
            asset_selection=[dg.AssetKey("slide_embedding")],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        expected = math.ceil(n / 64)
        iterations, created = 0, 0
        # The backfill stays REQUESTED until its runs finish (nothing executes them here), so
        # stop once every run is created, or when an iteration adds none.
        while created < expected and iterations < 50:
            iterations += 1
            list(execute_backfill_iteration(context, logger))
            now = instance.get_runs_count(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            if now == created and iterations > 1:
                break
            created = now
        seconds = time.perf_counter() - started
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    return {
        "runs": len(runs),
        "expected_runs": expected,
        "enqueue_s": seconds,
        "iterations": iterations,
        "ranged_runs": sum("dagster/asset_partition_range_end" in r.tags for r in runs),
    }


# (d) + (e) -----------------------------------------------------------------------------------


def _core_slide(gdc_url: str, blob: Any, slide: str, lake_dir: Path) -> tuple[float, int]:
    """One slide's work as plain core calls, no Dagster: download, tiling, embedding (k = 8,
    random weights, the backbone built as each embedding step builds it). Returns the tiling
    seconds and the tile count."""
    from histo_renn_dagster.core.features import EmbeddingSpec, embed_store_files, load_backbone
    from histo_renn_dagster.core.features.compute import ComputeSpec, resolve_compute
    from histo_renn_dagster.core.gdc.client import GDCClient
    from histo_renn_dagster.core.layout import LakeLayout
    from histo_renn_dagster.core.wsi.store import verify_tile_store
    from histo_renn_dagster.core.wsi.tiling import TilingSpec, tile_slide

    shutil.rmtree(lake_dir, ignore_errors=True)
    lake = LakeLayout(lake_dir)
    with GDCClient(gdc_url) as client:
        result = client.download(slide, lake.slides_dir, md5=blob.md5, size=blob.size)
    tiled = tile_slide(result.path, lake.tiles_path(slide), TilingSpec(), slide_id=slide)
    verify_tile_store(tiled.out, expected_tiles=tiled.tiles)
    backbone = load_backbone("inception_v3", "random", seed=0)
    resolved = resolve_compute(ComputeSpec(device="auto"))
    list(
        embed_store_files(
            [(lake.tiles_path(slide), lake.embedding_path(slide))],
            backbone,
            EmbeddingSpec(k=8, seed=0),
            resolved,
        )
    )
    return tiled.seconds, tiled.tiles


def bench_overhead(workdir: Path, repeats: int = 3) -> dict[str, float]:
    """One demo slide: core calls vs one in-process Dagster run of the same three assets, timed
    in pairs (core, then run) so both see the same machine load; the median pair counts."""
    from histo_renn_dagster import definitions
    from histo_renn_dagster.defs.resources import GDCResource, LayoutResource
    from histo_renn_dagster.emulator.cohorts import load_cohort
    from histo_renn_dagster.emulator.publishing import subset_catalogue

    demo = load_cohort("demo", workdir / "emulator-cache")
    slide = OVERHEAD_SLIDE
    doc = next(d for d in demo.files if d["file_id"] == slide)
    served = subset_catalogue(demo, [slide])
    blob = served.blobs[slide]
    blob.path()  # generate before timing
    with GDCEmulator(served) as emulator:

        def core() -> tuple[float, int]:
            return _core_slide(emulator.url, blob, slide, workdir / "core-lake")

        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

        def run(lake_dir: Path) -> None:
            layout = LayoutResource(root=str(lake_dir))
            resources = definitions.build_resources(GDCResource(base_url=emulator.url), layout)
            with dg.instance_for_test() as instance:
                for selection, key in (
                    (["gdc_slide_manifest"], None),
                    (["slide_file", "slide_tiles", "slide_embedding"], slide),
                ):
                    config = {"slide_embedding": {"config": {"weights": "random", "k": 8}}}
                    started = time.perf_counter()
                    result = dg.materialize(
                        definitions.ASSETS,
                        selection=selection,
                        partition_key=key,
                        instance=instance,
                        resources=resources,
                        run_config={**quiet, "ops": config if key else {}},
                    )
                    assert result.success
                    timings.append(time.perf_counter() - started)

        timings: list[float] = []
        core()  # warm-up: imports, first model build
        core_times, run_times = [], []
        for i in range(repeats):
            seconds, (tiling_s, tiles) = _timed(core)
            core_times.append(seconds)
            run(workdir / f"dagster-lake-{i}")
            run_times.append(timings[-1])
    return {
        "core_s": float(np.median(core_times)),
        "run_s": float(np.median(run_times)),
        "overhead_s": max(float(np.median(np.subtract(run_times, core_times))), 0.0),
        "tiles": tiles,
        "tiling_s": tiling_s,
        "bytes": float(doc.get("file_size") or blob.size),
    }


def bench_celery(workdir: Path, pg_url: str, repeats: int = 3) -> dict[str, Any]:
    """The same demo slide as ``slide_run_celery`` runs: Postgres instance, Redis, one cpu and
    one gpu worker (the integration tests' helpers), launched with ``dagster job execute``. One
    warm-up run, then ``repeats`` measured runs, each right after the same work as core calls
    (paired, so both see the same machine load); the median pair counts."""
    from histo_renn_dagster.emulator.cohorts import load_cohort
    from histo_renn_dagster.emulator.publishing import subset_catalogue
    from histo_renn_dagster_tests.integration.cluster import make_cluster
    from histo_renn_dagster_tests.integration.services import postgres_from_url, start_redis

    demo = load_cohort("demo", workdir / "emulator-cache")
    slide = OVERHEAD_SLIDE
    served = subset_catalogue(demo, [slide])
    redis = start_redis()
    try:
        with GDCEmulator(served) as emulator:
            env = {
                **postgres_from_url(pg_url).env(),
                "HISTO_RENN_CELERY_BROKER": redis.url,
                "HISTO_RENN_CELERY_BACKEND": redis.url,
                "HISTO_RENN_GDC_URL": emulator.url,
            }
            cluster = make_cluster(workdir / "celery", env, visibility_timeout_s=3600)
            try:
                cluster.start_workers([("cpu1", "cpu"), ("gpu1", "gpu")])
                cluster.execute("manifests_celery")
                config = {"ops": {"slide_embedding": {"config": {"weights": "random", "k": 8}}}}
                core_lake = workdir / "celery-core-lake"
                # (core, worker busy, run wall, tasks, Dagster step time) per measured run
                pairs: list[tuple[float, float, float, int, float]] = []
                # The first run warms the workers (imports, model build); the others are measured.
                for i in range(1 + repeats):
                    core_s, _ = _timed(
                        lambda: _core_slide(emulator.url, served.blobs[slide], slide, core_lake)
                    )
                    offsets = {n: w.log.stat().st_size for n, w in cluster.workers.items()}
                    run_s, _ = _timed(
                        lambda: cluster.execute(
                            "slide_run_celery", partition=slide, run_config=config
                        )
                    )
                    tasks = _task_seconds(cluster, offsets)
                    if i:
                        steps_s = _step_seconds(cluster, "slide_run_celery")
                        pairs.append((core_s, sum(tasks), run_s, len(tasks), steps_s))
            finally:
                cluster.stop_workers()
    finally:
        redis.stop()
    core, busy, run, tasks, steps = (np.array(column) for column in zip(*pairs, strict=True))
    return {
        "core_s": float(np.median(core)),
        "run_s": float(np.median(run)),
        "overhead_s": max(float(np.median(run - core)), 0.0),
        "worker_busy_s": float(np.median(busy)),
        "tasks": int(tasks.max()),
        "wrapper_s": max(float(np.median(busy - steps)), 0.0),
        "worker_overhead_s": max(float(np.median(busy - core)), 0.0),
        "worker_overhead_all_s": [float(x) for x in busy - core],
    }


def _task_seconds(cluster: Any, offsets: dict[str, int]) -> list[float]:
    """Run time of each Celery task the workers logged since ``offsets`` (a worker logs a task's
    line just after it reports the result, so wait until every received task has one)."""
    deadline = time.monotonic() + 10
    while True:
        received, seconds = 0, []
        for name, worker in cluster.workers.items():
            text = worker.log.read_bytes()[offsets[name] :].decode(errors="replace")
            received += len(TASK_RECEIVED.findall(text))
            seconds += [float(x) for x in TASK_SECONDS.findall(text)]
        if len(seconds) >= received or time.monotonic() > deadline:
            return seconds
        time.sleep(0.1)


def _step_seconds(cluster: Any, job: str) -> float:
    """Dagster's own duration of every step of the newest run of ``job`` (STEP_SUCCESS events):
    subtracted from the Celery task times it leaves each task's cost outside its step."""
    from dagster._core.events import DagsterEventType

    with cluster.instance() as instance:
        run = cluster.runs(instance, job)[0]
        entries = instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
        return sum(e.dagster_event.event_specific_data.duration_ms for e in entries) / 1e3


def project(
    measured: dict[str, float],
    *,
    cpu_workers: int,
    slides: int,
    slide_bytes: float,
    slide_tiles: int,
    download_mb_s: float,
    gpu_tiles_s: float,
    worker_overhead_s: float,
    run_overhead_s: float,
) -> dict[str, float]:
    """Wall time of the cohort from per-slide costs. Workers are the bottleneck: the CPU stage
    (download + tiling) is spread over the CPU workers, the GPU stage (k tiles a slide) runs on
    one worker, each step also pays the worker-side orchestration cost; the stages overlap, so the
    slower one sets the pace and one slide's latency (with the run's own overhead) is added."""
    tile_s = measured["tiling_s"] / max(measured["tiles"], 1)
    cpu_per_slide = slide_bytes / (download_mb_s * 1e6) + slide_tiles * tile_s
    gpu_per_slide = EMBED_K / gpu_tiles_s + 2.0  # + reading the store; model loaded once a run
    cpu_stage = slides * (cpu_per_slide + worker_overhead_s) / cpu_workers
    gpu_stage = slides * (gpu_per_slide + worker_overhead_s / 3)  # 1 of ~3 step hops per slide
    wall = max(cpu_stage, gpu_stage) + cpu_per_slide + gpu_per_slide + run_overhead_s
    return {
        "cpu_per_slide_s": cpu_per_slide,
        "gpu_per_slide_s": gpu_per_slide,
        "overhead_fraction": worker_overhead_s / (cpu_per_slide + gpu_per_slide),
        "wall_h": wall / 3600,
    }


def _postgres_url(args: argparse.Namespace) -> tuple[str | None, Callable[[], None]]:
    if args.no_postgres:
        return None, lambda: None
    if os.environ.get("HISTO_RENN_PG_URL"):
        return os.environ["HISTO_RENN_PG_URL"], lambda: None
    try:
        import dagster_postgres  # noqa: F401

        from histo_renn_dagster_tests.integration.services import missing_services, start_postgres
    except ImportError:
        return None, lambda: None
    if any("postgres" in m for m in missing_services()):
        return None, lambda: None
    server = start_postgres()
    return server.url, server.stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[COHORT_SLIDES, 11000])
    parser.add_argument(
        "--backfill-sizes",
        type=int,
        nargs="*",
        default=None,
        help="sizes for (c) (default: --sizes); a backfill run takes seconds to create",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="(d): timed repeats of the core calls and of the Celery slide run (min counts)",
    )
    parser.add_argument("--cpu-workers", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--slide-bytes", type=float, default=REAL_SLIDE_BYTES)
    parser.add_argument("--slide-tiles", type=int, default=REAL_SLIDE_TILES)
    parser.add_argument("--download-mb-s", type=float, default=50.0, help="per CPU worker")
    parser.add_argument(
        "--gpu-tiles-s", type=float, default=1500.0, help="Inception-v3 tiles/s on the GPU"
    )
    parser.add_argument(
        "--run-overhead-s",
        type=float,
        default=10.0,
        help="a slide run's latency overhead when no Celery cluster can be started to measure it",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    backfill_sizes = args.sizes if args.backfill_sizes is None else args.backfill_sizes
    pg_url, stop_pg = _postgres_url(args)
    backends: list[tuple[str, Callable[[], Any]]] = [("sqlite", _sqlite_instance)]
    if pg_url:
        backends.append(("postgres", lambda: _postgres_instance(pg_url)))
    print(f"backends: {', '.join(b for b, _ in backends)}; sizes: {args.sizes}")
    try:
        from histo_renn_dagster.emulator.fixture_cohort import build_fixture_catalogue

        with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
            template = build_fixture_catalogue(Path(tmp) / "fixture")
            for n in args.sizes:
                catalogue = _listing_catalogue(template, n)
                for name, factory in backends:
                    with factory() as instance:
                        p = bench_partitions(instance, n)
                    print(
                        f"(a) {name:8s} N={n:6d}: add {p['add_s']:.2f} s "
                        f"({1e3 * p['add_s'] / n:.2f} ms/partition), read back {p['read_s']:.3f} s, "
                        f"re-add 10 existing {p['add_10_existing_s']:.3f} s"
                    )
                    with factory() as instance:
                        s = bench_sensor(instance, catalogue, Path(tmp) / f"lake-{name}-{n}")
                    print(
                        f"(b) {name:8s} N={n:6d}: {s['ticks']} ticks to register {s['registered']}; "
                        f"first {s['first_tick_s']:.2f} s, max {s['max_tick_s']:.2f} s, then "
                        f"{s['last_tick_s']:.2f} s; max/limit {s['max_tick_s'] / SENSOR_LIMIT_S:.3f}"
                    )
                    if n not in backfill_sizes:
                        continue
                    with factory() as instance:
                        b = bench_backfill(instance, n)
                    print(
                        f"(c) {name:8s} N={n:6d}: backfill of slide_embedding -> {b['runs']} runs "
                        f"(ceil(N/64) = {b['expected_runs']}, {b['ranged_runs']} partition-range runs), enqueued in {b['enqueue_s']:.2f} s "
                        f"({b['iterations']} daemon iterations); one run per slide would be {n}"
                    )
            o = bench_overhead(Path(tmp), args.repeats)
            print(
                f"(d) demo slide ({o['bytes'] / 1e6:.1f} MB, {o['tiles']} tiles): core "
                f"{o['core_s']:.2f} s, in-process run {o['run_s']:.2f} s, overhead "
                f"{o['overhead_s']:.2f} s = {o['overhead_s'] / o['core_s']:.1%} of compute "
                f"(medians of {args.repeats} pairs)"
            )
            worker_overhead_s, run_overhead_s = o["overhead_s"], args.run_overhead_s
            if pg_url and shutil.which("redis-server"):
                c = bench_celery(Path(tmp), pg_url, args.repeats)
                worker_overhead_s = c["worker_overhead_s"]
                run_overhead_s = c["overhead_s"]
                print(
                    f"(d) same slide as a Celery run (Postgres, Redis, cpu + gpu worker, warm, "
                    f"`dagster job execute`; medians of {args.repeats} pairs with core calls): "
                    f"core {c['core_s']:.2f} s, run {c['run_s']:.2f} s (latency overhead "
                    f"{c['overhead_s']:.2f} s); {c['tasks']} worker tasks, busy "
                    f"{c['worker_busy_s']:.2f} s ({c['wrapper_s']:.2f} s outside the steps' own "
                    f"time); worker-side overhead {c['worker_overhead_s']:.2f} s (pairs: "
                    f"{', '.join(f'{x:.2f}' for x in c['worker_overhead_all_s'])}) = "
                    f"{c['worker_overhead_s'] / c['core_s']:.1%} of this small slide's compute"
                )
            tile_s = o["tiling_s"] / max(o["tiles"], 1)
            real = args.slide_bytes / (args.download_mb_s * 1e6) + args.slide_tiles * tile_s
            print(
                f"(d) real-size slide ({args.slide_bytes / 1e9:.1f} GB, {args.slide_tiles} tiles): "
                f"~{real:.0f} s of CPU-stage compute; worker-side overhead "
                f"{worker_overhead_s / real:.1%}, in-process run overhead "
                f"{o['overhead_s'] / real:.1%} of it"
            )
            for workers in args.cpu_workers:
                p = project(
                    o,
                    cpu_workers=workers,
                    slides=COHORT_SLIDES,
                    slide_bytes=args.slide_bytes,
                    slide_tiles=args.slide_tiles,
                    download_mb_s=args.download_mb_s,
                    gpu_tiles_s=args.gpu_tiles_s,
                    worker_overhead_s=worker_overhead_s,
                    run_overhead_s=run_overhead_s,
                )
                print(
                    f"(e) {COHORT_SLIDES} slides, {workers:2d} CPU + 1 GPU worker: "
                    f"{p['wall_h']:.1f} h (per slide: CPU {p['cpu_per_slide_s']:.0f} s, GPU "
                    f"{p['gpu_per_slide_s']:.1f} s; worker-side orchestration "
                    f"{p['overhead_fraction']:.1%} of compute)"
                )
    finally:
        stop_pg()


if __name__ == "__main__":
    main()
