"""Helpers of the e2e tests: a `dagster dev` process group, GraphQL, waiting, the e2e cohort."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.publishing import hold_back_slides, is_slide, subset_catalogue

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
E2E_MODULE = "histo_renn_dagster_tests.e2e.e2e_definitions"
DAGSTER_YAML = Path(
    os.environ.get("HISTO_RENN_DAGSTER_YAML") or REPO_ROOT / "storage" / "dagster.yaml"
)
"""The instance configuration under test: the tracked one unless overridden."""
CHROMIUM = os.environ.get("HISTO_RENN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (requests.RequestException, KeyError, TypeError) as exc:
            last_error = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} ({last_error})")


def e2e_catalogues(
    demo: Catalogue, slide_ids: list[str], held_back: int
) -> tuple[Catalogue, Catalogue]:
    """``(served, reserve)``: the demo cohort cut to ``slide_ids`` and their cases' files, with
    the last ``held_back`` slides only in the reserve (publishable)."""
    cases = {
        c["case_id"] for d in demo.files if d["file_id"] in slide_ids for c in d.get("cases", [])
    }
    keep = [
        d["file_id"]
        for d in demo.files
        if d["file_id"] in slide_ids
        or (not is_slide(d) and {c["case_id"] for c in d.get("cases", [])} & cases)
    ]
    return hold_back_slides(subset_catalogue(demo, keep), held_back)


@dataclass
class DagsterDev:
    url: str
    home: Path
    env: dict[str, str]
    process: subprocess.Popen
    log: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def location(self) -> str:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
        )
        (entry,) = data["workspaceOrError"]["locationEntries"]
        return entry["name"]

    def asset_nodes(self) -> list[dict[str, Any]]:
        data = self.graphql(
            "{ assetNodes { assetKey { path } groupName isPartitioned isMaterializable } }"
        )
        return data["assetNodes"]

    def partition_keys(self, asset: str) -> list[str]:
        data = self.graphql(
            "query($p: [String!]!) { assetNodeOrError(assetKey: {path: $p}) "
            "{ ... on AssetNode { partitionKeys } } }",
            {"p": [asset]},
        )
        return data["assetNodeOrError"]["partitionKeys"]

    def materialized_partitions(self, asset: str) -> set[str]:
        data = self.graphql(
            "query($p: [String!]!) { assetNodeOrError(assetKey: {path: $p}) { ... on AssetNode "
            "{ assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions } } } } }",
            {"p": [asset]},
        )
        return set(data["assetNodeOrError"]["assetPartitionStatuses"]["materializedPartitions"])

    def cli(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a shell command with this server's instance and emulator."""
        return run_cli(command, self.env, timeout)

    def stop(self) -> None:
        """Stop the whole process group: SIGINT (dagster dev's own clean shutdown), then
        SIGTERM, then SIGKILL for whatever is left (run workers included)."""
        for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if self.process.poll() is not None:
                break
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # children that outlived the leader


def instance_env(home: Path, gdc_url: str) -> dict[str, str]:
    """A fresh DAGSTER_HOME (the tracked dagster.yaml) and the environment that points at it."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HISTO_RENN_GDC_URL": gdc_url,
        "HISTO_RENN_LAKE": str(home / "lake"),
    }
    env.pop("HISTO_RENN_GDC_TOKEN", None)
    return env


def run_cli(
    command: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a shell command as a user would: repository root, the venv's bin first on PATH."""
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.run(
        command,
        shell=True,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_dagster_dev(home: Path, gdc_url: str, log: Path, module: str = E2E_MODULE) -> DagsterDev:
    """``dagster dev`` (webserver + daemon) in its own process group on a free loopback port."""
    env = instance_env(home, gdc_url)
    port = free_port()
    handle = log.open("w")
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", module],
        cwd=REPO_ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = DagsterDev(f"http://127.0.0.1:{port}", home, env, process, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"dagster dev exited ({process.returncode}):\n{log.read_text()[-3000:]}"
            )
        if requests.get(f"{server.url}/server_info", timeout=5).status_code != 200:
            return False
        data = server.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        (entry,) = data["workspaceOrError"]["locationEntries"]
        loaded = entry["locationOrLoadError"]
        if loaded and loaded["__typename"] == "PythonError":
            raise AssertionError(f"code location failed to load: {loaded['message']}")
        return entry["loadStatus"] == "LOADED" and loaded is not None

    try:
        wait_for("dagster dev to serve the code location", ready, timeout=240, every=2)
    except BaseException:
        server.stop()
        raise
    return server
