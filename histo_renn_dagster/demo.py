"""``histo-renn demo``: the whole platform on the embedded TCGA-BRCA demo cohort, offline.

One driver process starts the GDC emulator on a free loopback port, points the ``gdc`` resource at
it and materializes the asset graph through the Dagster Python API into the ``storage/`` instance,
so the runs and their lineage show up in ``make dev`` afterwards. Per-slide assets run one
partition per run (a failed slide never fails another) in this process: no CLI start-up per slide.
Partitions already materialized are not run again, so a second ``make demo`` does no redundant work.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from histo_renn_dagster.defs.partitions import MINIBATCH_SIZES, SLIDES_PARTITION
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

log = logging.getLogger(__name__)

DOWNSTREAM: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("expression_table", None, ("gdc_expression_manifest",)),
    ("cohort_table", None, ("gdc_slide_manifest", "expression_table", "slide_embedding")),
    *((("renn_model", m, ("cohort_table",))) for m in MINIBATCH_SIZES),
    ("renn_results", None, ("renn_model",)),
    ("renn_report", None, ("renn_results",)),
)
"""After the slides: (asset, partition, inputs), in order. Each runs only when an input changed
after its own last materialization."""

DEMO_CONFIG: dict[str, dict] = {
    # No pretrained weights can be fetched offline: the demo says so (recorded in every output)
    # and samples 8 tiles per slide instead of the reference's 32 to finish in minutes.
    "slide_embedding": {"weights": "random", "k": 8},
}


@dataclass
class DemoSummary:
    cohort: str
    gdc_url: str
    dagster_home: str
    lake: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    report: str = ""
    seconds: float = 0.0
    sigma2_b_by_m: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def as_record(self) -> dict:
        return {
            "cohort": self.cohort,
            "gdc_url": self.gdc_url,
            "dagster_home": self.dagster_home,
            "lake": self.lake,
            "runs": len(self.ran),
            "skipped_materialized": len(self.skipped),
            "failed": self.failed,
            "report": self.report,
            "seconds": round(self.seconds, 1),
        }


def _ensure_dagster_home(default: Path) -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or default).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> bool:
    return instance.get_latest_materialization_event(key) is not None


def _latest_record(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> dg.EventLogRecord | None:
    """The last materialization of ``key`` (any partition, or ``partition``); None if never."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=key, asset_partitions=None if partition is None else [partition]
        ),
        limit=1,
    ).records
    return records[0] if records else None


def _latest_timestamp(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None
) -> float | None:
    record = _latest_record(instance, key, partition)
    return None if record is None else record.timestamp


def _up_to_date(
    instance: dg.DagsterInstance,
    name: str,
    partition: str | None,
    deps: Sequence[str],
    config: dict | None = None,
) -> bool:
    """Materialized after every input last changed, with the same ``config`` values recorded in
    its metadata: running it again would redo the same work."""
    record = _latest_record(instance, dg.AssetKey(name), partition)
    if record is None:
        return False
    if config:
        event = record.asset_materialization
        recorded = {} if event is None else {k: v.value for k, v in event.metadata.items()}
        if any(recorded.get(k) != v for k, v in config.items()):
            return False
    own = record.timestamp
    inputs = [_latest_timestamp(instance, dg.AssetKey(d)) for d in deps]
    return all(t is None or t <= own for t in inputs)


def _materialized_partitions(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


def run_demo(
    *,
    cohort: str = "demo",
    storage: Path = Path("storage"),
    refresh_manifests: bool = False,
    profile: str = "default",
    echo: Callable[[dict], None] = lambda record: None,
) -> DemoSummary:
    """Materialize every asset that exists on ``cohort`` served by a local emulator.

    ``profile`` is renn_model's training profile: ``default`` (the fixed study) or ``reference``
    (as the reference ran); switching it re-trains the six partitions and rebuilds the results.
    """
    from histo_renn_dagster import definitions
    from histo_renn_dagster.emulator.cohorts import load_cohort
    from histo_renn_dagster.emulator.server import GDCEmulator

    started = time.perf_counter()
    # Dagster stamps a fresh per-run SQLite event log through alembic; that is not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    home = _ensure_dagster_home(storage)
    layout = LayoutResource(root=str(home / "lake"))
    instance = dg.DagsterInstance.get()
    assets = definitions.ASSETS
    config = {**DEMO_CONFIG, "renn_model": {"profile": profile}}
    catalogue = load_cohort(cohort, home / "emulator")
    with GDCEmulator(catalogue) as emulator:
        url = emulator.url
        resources = definitions.build_resources(GDCResource(base_url=url), layout)
        summary = DemoSummary(cohort, url, str(home), str(layout.lake().root))
        echo({"event": "emulator", "cohort": cohort, "url": url})

        def materialize(selection: Sequence[str], partition_key: str | None, label: str) -> None:
            t0 = time.perf_counter()
            result = dg.materialize(
                assets,
                selection=list(selection),
                partition_key=partition_key,
                instance=instance,
                resources=resources,
                raise_on_error=False,
                tags={"histo_renn/driver": "demo"},
                # Dagster's DEBUG event stream stays in the instance (and the UI); the terminal
                # shows the assets' own progress messages.
                run_config={
                    "loggers": {"console": {"config": {"log_level": "INFO"}}},
                    "ops": {a: {"config": config[a]} for a in selection if a in config},
                },
            )
            record = {"event": "run", "what": label, "seconds": round(time.perf_counter() - t0, 2)}
            if result.success:
                summary.ran.append(label)
            else:
                failures = [
                    str(e.step_failure_data.error.message).strip()
                    for e in result.all_events
                    if e.is_step_failure and e.step_failure_data.error is not None
                ]
                summary.failed[label] = failures[0] if failures else "run failed"
                record["error"] = summary.failed[label]
            echo(record)

        manifests = ["gdc_slide_manifest", "gdc_expression_manifest"]
        todo = [
            m for m in manifests if refresh_manifests or not _materialized(instance, dg.AssetKey(m))
        ]
        summary.skipped += [m for m in manifests if m not in todo]
        if todo:
            materialize(todo, None, "+".join(todo))

        per_slide = ["slide_file", "slide_tiles", "slide_embedding"]
        keys = instance.get_dynamic_partitions(SLIDES_PARTITION)
        done = set.intersection(
            *(_materialized_partitions(instance, dg.AssetKey(a)) for a in per_slide)
        )
        for i, key in enumerate(keys, 1):
            if key in done:
                summary.skipped.append(key)
                continue
            echo({"event": "slide", "index": i, "of": len(keys), "file_id": key})
            materialize(per_slide, key, f"slides/{key}")

        defined = {a.key.to_user_string() for a in assets}
        for name, partition, deps in DOWNSTREAM:
            if name not in defined:
                continue
            label = name if partition is None else f"{name}/{partition}"
            if _up_to_date(instance, name, partition, deps, config.get(name)):
                summary.skipped.append(label)
                continue
            materialize([name], partition, label)
    summary.report = str(layout.lake().reports_dir / "report.html")
    models = layout.lake().table_path("renn_results_models")
    if models.is_file():
        import pandas as pd

        from histo_renn_dagster.core.renn.study_io import sigma2_b_by_m

        summary.sigma2_b_by_m = sigma2_b_by_m(pd.read_parquet(models))
        echo({"event": "sigma2_b_by_m", "profile": profile, "losses": summary.sigma2_b_by_m})
    summary.seconds = time.perf_counter() - started
    return summary
