"""A small scaled-out deployment for the integration tests, and readers of what it recorded.

``ScaledCluster``: a Postgres-backed DAGSTER_HOME (the tracked ``deploy/postgres/dagster.yaml``),
Celery workers started with the documented ``dagster-celery worker start`` command, a shared
lake folder, and runs launched with ``dagster job execute -m histo_renn_dagster.defs.executors``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.events import DagsterEventType

from histo_renn_dagster_tests.integration.services import (
    BIN,
    CeleryWorker,
    start_celery_worker,
    wait_for_workers,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_DAGSTER_YAML = REPO_ROOT / "deploy" / "postgres" / "dagster.yaml"
WORKER_YAML = REPO_ROOT / "deploy" / "celery" / "worker.yaml"
SCALED_MODULE = "histo_renn_dagster.defs.executors"
WORKER_META = "Celery worker"
SESSION_TAG = "histo_renn/test_session"


def worker_yaml_for_test(dest: Path, visibility_timeout_s: int) -> Path:
    """The tracked worker settings with a visibility timeout a test can wait for (the tracked
    six hours would leave a killed worker's step on the broker for six hours)."""
    config = yaml.safe_load(WORKER_YAML.read_text())
    options = config["execution"]["config"]["config_source"]["broker_transport_options"]
    options["visibility_timeout"] = visibility_timeout_s
    options["unacked_restore_interval"] = 2
    dest.write_text(yaml.safe_dump(config))
    return dest


@dataclass
class ScaledCluster:
    root: Path
    env: dict[str, str]
    worker_yaml: Path
    session: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    workers: dict[str, CeleryWorker] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def lake(self) -> Path:
        return Path(self.env["HISTO_RENN_LAKE"])

    def start_workers(self, specs: Sequence[tuple[str, str]]) -> None:
        started = [
            start_celery_worker(
                name, queue, self.worker_yaml, self.env, self.root / f"{name}.log", REPO_ROOT
            )
            for name, queue in specs
        ]
        self.workers.update({w.name: w for w in started})
        wait_for_workers(started)

    def stop_workers(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def launch(
        self, job: str, *, partition: str | None = None, run_config: Mapping[str, Any] | None = None
    ) -> subprocess.Popen:
        """``dagster job execute`` of a Celery job in the background; its output goes to a log."""
        label = f"{job}-{partition or 'all'}"
        args = [str(BIN / "dagster"), "job", "execute", "-m", SCALED_MODULE, "-j", job]
        tags = {SESSION_TAG: self.session}
        if partition is not None:
            tags["dagster/partition"] = partition
        args += ["--tags", json.dumps(tags)]
        if run_config:
            config_path = self.root / f"{label}.yaml"
            config_path.write_text(yaml.safe_dump(dict(run_config)))
            args += ["-c", str(config_path)]
        log = (self.root / f"{label}.log").open("w")
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        process.label = label  # type: ignore[attr-defined]
        return process

    def finish(self, process: subprocess.Popen, timeout: float = 600) -> None:
        label = process.label  # type: ignore[attr-defined]
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
            code = "timeout"
        if code != 0:
            raise AssertionError(
                f"run {label} failed ({code}):\n{(self.root / f'{label}.log').read_text()[-4000:]}"
            )

    def execute(self, job: str, **kwargs: Any) -> None:
        self.finish(self.launch(job, **kwargs))

    def runs(self, instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
        """This cluster's runs of ``job``, newest first (a reused database holds older ones)."""
        return list(
            instance.get_runs(dg.RunsFilter(job_name=job, tags={SESSION_TAG: self.session}))
        )

    @contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """The shared instance as the test process sees it (same DAGSTER_HOME and env)."""
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                yield instance
        finally:
            os.environ.clear()
            os.environ.update(saved)


def make_cluster(root: Path, env: Mapping[str, str], *, visibility_timeout_s: int) -> ScaledCluster:
    home = root / "dagster-home"
    home.mkdir(parents=True)
    shutil.copy(PG_DAGSTER_YAML, home / "dagster.yaml")
    lake = root / "shared-lake"
    lake.mkdir()
    full_env = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "HISTO_RENN_LAKE": str(lake),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    full_env.pop("HISTO_RENN_GDC_TOKEN", None)
    yaml_path = worker_yaml_for_test(root / "worker.yaml", visibility_timeout_s)
    return ScaledCluster(root, full_env, yaml_path)


@dataclass(frozen=True)
class StepAttempt:
    """One execution of a step by a Celery worker, read from the run's engine events."""

    run_id: str
    step_key: str
    queue: str
    worker: str
    started: float


def step_attempts(instance: dg.DagsterInstance, run_id: str) -> list[StepAttempt]:
    """Every (queue, worker) pair of a run's steps: the executor's "Submitting ... to queue"
    engine event and the worker's "Executing steps ... in celery worker" event (metadata)."""
    queues: dict[str, str] = {}
    attempts = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        message = event.message or ""
        if message.startswith("Submitting celery task"):
            queues[event.step_key] = message.rsplit('to queue "', 1)[1].rstrip('".')
        metadata = event.engine_event_data.metadata if event.engine_event_data else {}
        if WORKER_META in metadata:
            worker = str(metadata[WORKER_META].value)
            attempts.append(
                StepAttempt(run_id, event.step_key, "", worker.split("@")[0], entry.timestamp)
            )
    return [
        StepAttempt(a.run_id, a.step_key, queues.get(a.step_key, ""), a.worker, a.started)
        for a in attempts
    ]


def step_windows(
    instance: dg.DagsterInstance, run_id: str, step_key: str
) -> list[tuple[float, float]]:
    """(start, end) of each attempt of a step that finished (success or failure)."""
    starts, ends = [], []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key != step_key:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts.append(entry.timestamp)
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            ends.append(entry.timestamp)
    return list(zip(starts[-len(ends) :] if ends else [], ends, strict=True))
