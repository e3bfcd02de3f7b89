"""Distributed execution: Dagster's Celery executor with a ``cpu`` and a ``gpu`` queue.

The default platform (``histo_renn_dagster.definitions``) runs on one workstation: SQLite, local
processes. A lab that outgrows it points ``DAGSTER_HOME`` at ``deploy/postgres`` (shared run and
event storage) and loads this module as its code location instead::

    dagster dev -m histo_renn_dagster.defs.executors        # or workspace deploy/workspace.yaml

It is the same asset graph, resources, sensors and schedules, plus Celery job variants, and the
Celery executor as the default for every asset job (UI materializations and backfills included);
``new_slides_sensor`` requests ``slide_run_celery`` here, so the slides it finds run on workers.
Steps go to the queue named by their ``dagster-celery/queue`` op tag, else to ``cpu``: download,
tiling, manifests and tables to ``cpu`` workers, embedding and training to ``gpu`` workers. The
``gpu`` *pool* still holds: the run that submits a step claims the pool slot in the (shared)
instance storage before the step is queued, so the limit is global across runs and workers.

``dagster-celery`` is optional (``pip install -e .[scale]``); nothing here imports it until a
Celery executor is built, so importing the queue constants below costs nothing.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from histo_renn_dagster.core.errors import HistoRennError

CELERY_QUEUE_TAG = "dagster-celery/queue"
"""The op tag dagster-celery reads to pick a step's queue (``dagster_celery.tags``)."""
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
CPU_STEP_TAGS: Mapping[str, str] = {CELERY_QUEUE_TAG: CPU_QUEUE}
"""``op_tags`` of CPU-bound assets (download, tiling)."""
GPU_STEP_TAGS: Mapping[str, str] = {CELERY_QUEUE_TAG: GPU_QUEUE}
"""``op_tags`` of GPU-bound assets (embedding, training)."""

BROKER_ENV = "HISTO_RENN_CELERY_BROKER"
BACKEND_ENV = "HISTO_RENN_CELERY_BACKEND"

VISIBILITY_TIMEOUT_S = 6 * 3600
"""Seconds before Redis hands an unacknowledged step to another worker. It must exceed the longest
step (a 3 GB slide downloads and tiles in well under an hour on a lab link): a shorter timeout
starts a second copy of a step that is still running."""

CELERY_SETTINGS: Mapping[str, Any] = {
    # Steps without a queue tag (manifests, tables, checks) are light: any CPU worker.
    "task_default_queue": CPU_QUEUE,
    # Acknowledge a step when it finishes, not when it is received: a worker that dies mid-step
    # (OOM kill, lost node) leaves the step on the broker for another worker. Steps are
    # idempotent (atomic lake writes, resumable downloads), so running one again is safe.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # One step at a time per worker process: a slide is minutes of work, prefetching starves peers.
    "worker_prefetch_multiplier": 1,
    "broker_transport_options": {
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        # How often a worker sweeps for abandoned steps (kombu's default is every ~100 s).
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
        # dagster-celery's own defaults for publishing retries.
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    },
}
"""Celery settings shared by the executor (publisher) and the workers (deploy/celery/worker.yaml
repeats them; a test keeps the two equal)."""

SLIDE_ASSETS: tuple[str, ...] = ("slide_file", "slide_tiles", "slide_embedding")
COHORT_ASSETS: tuple[str, ...] = ("expression_table", "cohort_table")
MANIFEST_ASSETS: tuple[str, ...] = ("gdc_slide_manifest", "gdc_expression_manifest")
RENN_ASSETS: tuple[str, ...] = ("renn_model",)


class ScaleExtraMissingError(HistoRennError):
    """The Celery executor was asked for but ``dagster-celery`` is not installed."""


def celery_executor_config(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Executor config: broker/backend from ``$HISTO_RENN_CELERY_BROKER``/``_BACKEND`` (read
    when a run starts, never at import), the shared settings, and Dagster step retries."""
    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV},
        "config_source": copy.deepcopy(dict(settings or CELERY_SETTINGS)),
        "retries": {"enabled": {}},
    }


def celery_executor(settings: Mapping[str, Any] | None = None) -> dg.ExecutorDefinition:
    """dagster-celery's executor, configured for the ``cpu``/``gpu`` queues."""
    try:
        from dagster_celery import celery_executor as base
    except ImportError as exc:
        raise ScaleExtraMissingError(
            "the Celery executor needs dagster-celery: pip install -e '.[scale]'"
        ) from exc
    return base.configured(celery_executor_config(settings), name="celery_cpu_gpu")


def celery_jobs(
    asset_names: Iterable[str], executor: dg.ExecutorDefinition
) -> list[UnresolvedAssetJobDefinition]:
    """Celery variants of the platform's jobs, for the assets that exist in ``asset_names``."""
    from histo_renn_dagster.defs.sensors import build_slide_run_job

    names = set(asset_names)

    def job(name: str, assets: tuple[str, ...], description: str):
        present = [a for a in assets if a in names]
        if not present:
            return None
        if assets == SLIDE_ASSETS:  # the sensor's per-slide job, on Celery
            return build_slide_run_job(
                present, name=name, executor_def=executor, description=description
            )
        return dg.define_asset_job(
            name,
            selection=dg.AssetSelection.assets(*present),
            executor_def=executor,
            description=description,
        )

    candidates = [
        job("manifests_celery", MANIFEST_ASSETS, "Both GDC manifests, on a cpu worker."),
        job(
            "slide_run_celery",
            SLIDE_ASSETS,
            "One slide (a 'slides' partition): download and tiling on cpu workers, embedding on "
            "a gpu worker.",
        ),
        job("cohort_celery", COHORT_ASSETS, "Expression and cohort tables, on cpu workers."),
        # Extension point: appears once the renn_model asset (minibatch partitions) is defined.
        job(
            "renn_celery", RENN_ASSETS, "One renn_model partition (minibatch size) on a gpu worker."
        ),
    ]
    return [j for j in candidates if j is not None]


def scaled_definitions(settings: Mapping[str, Any] | None = None) -> dg.Definitions:
    """The platform's Definitions with Celery as the default executor plus the Celery jobs, and
    ``new_slides_sensor`` requesting ``slide_run_celery`` (not the in-process ``slide_run``)."""
    from histo_renn_dagster import definitions
    from histo_renn_dagster.defs.sensors import build_new_slides_sensor, new_slides_sensor

    executor = celery_executor(settings)
    # As for `slide_run` in definitions.py: one slide per run, so the mixed backfill policies of
    # the slide assets never meet inside slide_run_celery.
    warnings.filterwarnings(
        "ignore", message="Asset job slide_run_celery materializes assets with varying"
    )
    names = [key.to_user_string() for a in definitions.ASSETS for key in a.keys]
    jobs = celery_jobs(names, executor)
    slide_job = next((j for j in jobs if j.name == "slide_run_celery"), None)
    base = definitions.defs
    sensors = [
        # The same sensor (name, so its cursor and status; discovery limits) on Celery runs.
        build_new_slides_sensor(slide_job=slide_job)
        if slide_job is not None and sensor.name == new_slides_sensor.name
        else sensor
        for sensor in base.sensors or []
    ]
    # Definitions.merge cannot replace a sensor, so the location is rebuilt from the parts.
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=[*(base.jobs or []), *jobs],
        sensors=sensors,
        schedules=base.schedules,
        resources=base.resources,
        loggers=base.loggers,
        metadata=base.metadata,
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Code location of a scaled deployment (Postgres instance, Celery workers)."""
    return scaled_definitions()
