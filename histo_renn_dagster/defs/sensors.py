"""Sensors: new GDC slides become ``slides`` partitions and get their per-slide runs.

The planning (diff, bounds, cursor) is ``core.gdc.discovery``; this module only gathers the facts
one tick needs (listing, registered keys, partition states, manifest table) and turns the plan
into partition requests and run requests.
"""

# No `from __future__ import annotations` here: Dagster reads the sensor function's parameter
# annotations (context, resources) at definition time.

from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from histo_renn_dagster.core.gdc.discovery import (
    DiscoverySpec,
    decode_cursor,
    is_settled,
    list_slide_ids,
    listing_digest,
    plan_discovery,
    read_table_ids,
    slide_state,
)
from histo_renn_dagster.defs.partitions import SLIDES_PARTITION, slides_partitions
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

SLIDE_RUN_ASSETS: tuple[str, ...] = ("slide_file", "slide_tiles", "slide_embedding")
"""The per-slide assets one slide run materializes, in order."""

MANIFEST_ASSETS: tuple[str, ...] = ("gdc_slide_manifest", "gdc_expression_manifest")
"""Refreshed together when the GDC lists slides the slide manifest table does not have yet."""

SLIDE_MANIFEST_TABLE = "gdc_slide_manifest"
TRIGGER_TAG = "histo_renn/trigger"


def build_slide_run_job(
    slide_assets: Sequence[str] = SLIDE_RUN_ASSETS,
    *,
    name: str = "slide_run",
    # One process per run, not per step: a slide's steps are short and sequential.
    executor_def: dg.ExecutorDefinition = dg.in_process_executor,
    description: str = "Download, tile and embed one slide (one 'slides' partition).",
) -> UnresolvedAssetJobDefinition:
    """``slide_run``: one slide's per-slide assets (a ``slides`` partition) in one run; a scaled
    deployment builds its distributed variant with another name and executor."""
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*slide_assets),
        executor_def=executor_def,
        description=description,
    )


def build_manifest_refresh_job(
    manifest_assets: Sequence[str] = MANIFEST_ASSETS,
) -> UnresolvedAssetJobDefinition:
    """``manifest_refresh``: list the GDC again (both manifests)."""
    return dg.define_asset_job(
        "manifest_refresh",
        selection=dg.AssetSelection.assets(*manifest_assets),
        description="List the cohort's slides and STAR-Counts files at the GDC again.",
    )


slide_run_job = build_slide_run_job()
manifest_refresh_job = build_manifest_refresh_job()


def _slide_states(
    instance: dg.DagsterInstance, keys: Sequence[str], assets: Sequence[str]
) -> dict[str, str]:
    per_asset = []
    for name in assets:
        status = instance.get_status_by_partition(dg.AssetKey(name), keys, slides_partitions)
        per_asset.append(status or {})
    return {
        key: slide_state(
            [status.value if (status := s.get(key)) is not None else None for s in per_asset]
        )
        for key in keys
    }


def build_new_slides_sensor(
    *,
    name: str = "new_slides_sensor",
    slide_assets: Sequence[str] = SLIDE_RUN_ASSETS,
    slide_job: UnresolvedAssetJobDefinition | None = None,
    manifest_job: UnresolvedAssetJobDefinition = manifest_refresh_job,
    project_id: str = "TCGA-BRCA",
    spec: DiscoverySpec | None = None,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that registers new GDC slides and requests one ``slide_run`` per slide.

    ``slide_job`` is the per-slide job it requests (default: ``slide_run`` over
    ``slide_assets``, in-process); the Celery code location passes ``slide_run_celery``.
    Stopped by default: with the default ``gdc`` resource it would start downloading the real
    cohort (about 1 TB). Turn it on in the UI (Automation) or with ``dagster sensor start``.
    """
    spec = spec or DiscoverySpec()
    default = tuple(slide_assets) == SLIDE_RUN_ASSETS
    run_job = slide_job or (slide_run_job if default else build_slide_run_job(slide_assets))

    @dg.sensor(
        name=name,
        jobs=[run_job, manifest_job],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Registers new {project_id} diagnostic slides listed by the GDC as "
        f"'{SLIDES_PARTITION}' partitions and requests a '{run_job.name}' run per slide "
        f"(<= {spec.max_runs_per_tick} per tick, <= {spec.max_in_flight} in flight).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, gdc: GDCResource, layout: LayoutResource
    ) -> dg.SensorResult:
        with gdc.client() as client:
            release = client.data_release()
            listed = list_slide_ids(client, project_id)
        previous = decode_cursor(context.cursor)
        digest = listing_digest(listed)
        if is_settled(previous, release, digest):
            return dg.SensorResult(
                skip_reason=f"no new slides: {len(listed)} listed in {release}, all handled",
                cursor=context.cursor,
            )
        instance = context.instance
        registered = set(instance.get_dynamic_partitions(SLIDES_PARTITION))
        plan = plan_discovery(
            listed,
            release=release,
            registered=registered,
            in_manifest=read_table_ids(layout.lake().table_path(SLIDE_MANIFEST_TABLE)),
            states=_slide_states(instance, sorted(set(listed) & registered), slide_assets),
            spec=spec,
        )
        context.log.info(f"{len(listed)} slides listed in {release}: {plan.summary()}")
        runs: list[dg.RunRequest] = []
        if plan.refresh_manifest:
            # One refresh per listing state: the run key makes the daemon drop repeats while the
            # refresh is queued, and a slide the manifest rejects cannot start a refresh loop.
            runs.append(
                dg.RunRequest(
                    run_key=f"manifests:{release}:{digest}",
                    job_name=manifest_job.name,
                    tags={TRIGGER_TAG: name},
                )
            )
        runs += [
            dg.RunRequest(job_name=run_job.name, partition_key=file_id, tags={TRIGGER_TAG: name})
            for file_id in plan.run
        ]
        requests = []
        if plan.register:
            requests.append(slides_partitions.build_add_request(list(plan.register)))
        skip = None if runs or requests else f"nothing to start now: {plan.summary()}"
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=requests,
            cursor=plan.cursor.encode(),
            skip_reason=skip,
        )

    return _sensor


new_slides_sensor = build_new_slides_sensor()
