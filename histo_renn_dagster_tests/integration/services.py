"""Real services for the integration tests: PostgreSQL, Redis and Celery workers on 127.0.0.1.

Each is a separate process started from the Debian packages' binaries with throwaway data dirs,
and stopped by its own process id (or process group) afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BIN = Path(sys.executable).parent
PG_PASSWORD = "histo-renn-test"
PG_USER = "dagster"
PG_DB = "dagster"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, probe: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def postgres_bin_dir() -> Path | None:
    """Where initdb/pg_ctl live: Debian keeps them in /usr/lib/postgresql/<major>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def missing_services() -> list[str]:
    """Binaries the integration tests need that are not installed (empty = all there)."""
    missing = []
    if postgres_bin_dir() is None:
        missing.append("postgresql (initdb, pg_ctl)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str
    stop: Callable[[], None] = field(repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"

    def env(self) -> dict[str, str]:
        """The variables deploy/postgres/dagster.yaml reads."""
        return {
            "HISTO_RENN_PG_HOST": self.host,
            "HISTO_RENN_PG_PORT": str(self.port),
            "HISTO_RENN_PG_USER": self.user,
            "HISTO_RENN_PG_PASSWORD": self.password,
            "HISTO_RENN_PG_DB": self.db,
        }


def postgres_from_url(url: str) -> Postgres:
    """An already running server (``$HISTO_RENN_PG_URL``); nothing to stop."""
    parts = urlsplit(url)
    return Postgres(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or PG_USER,
        password=parts.password or "",
        db=parts.path.lstrip("/") or PG_DB,
        stop=lambda: None,
    )


def _as_postgres_user(argv: Sequence[str]) -> list[str]:
    # initdb refuses to run as root; the Debian package creates the `postgres` system user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return list(argv)


def start_postgres() -> Postgres:
    """initdb a throwaway cluster (password auth) and start it on a free loopback port."""
    bindir = postgres_bin_dir()
    assert bindir is not None, "postgresql is not installed"
    root = Path(tempfile.mkdtemp(prefix="histo-renn-pg-"))
    data, pwfile, log = root / "data", root / "pwfile", root / "postgres.log"
    pwfile.write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(
        _as_postgres_user(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            _as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)

    server = Postgres("127.0.0.1", port, PG_USER, PG_PASSWORD, PG_DB, stop)
    try:
        import psycopg2

        with contextlib.closing(
            psycopg2.connect(
                host=server.host, port=port, user=PG_USER, password=PG_PASSWORD, dbname="postgres"
            )
        ) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {PG_DB}")
    except Exception:
        stop()
        raise
    return server


@dataclass
class Redis:
    url: str
    stop: Callable[[], None] = field(repr=False)


def start_redis() -> Redis:
    """redis-server on a free loopback port, no persistence, stopped by its pid."""
    root = Path(tempfile.mkdtemp(prefix="histo-renn-redis-"))
    port = free_port()
    log = (root / "redis.log").open("w")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)

    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        client = redis.Redis.from_url(url)

        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until("redis-server", ready, timeout=20)
    except Exception:
        stop()
        raise
    return Redis(url, stop)


@dataclass
class CeleryWorker:
    name: str
    queue: str
    process: subprocess.Popen
    log: Path

    @property
    def killed(self) -> bool:
        return self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: a node that disappears mid-step."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL for whatever is left of its process group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start_celery_worker(
    name: str, queue: str, config_yaml: Path, env: dict[str, str], log: Path, cwd: Path
) -> CeleryWorker:
    """``dagster-celery worker start`` (the documented command) in its own process group: one
    worker process, one step at a time."""
    handle = log.open("w")
    process = subprocess.Popen(
        [
            str(BIN / "dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(config_yaml),
            "-q",
            queue,
            "-n",
            name,
            "--",
            "--concurrency=1",
        ],
        cwd=cwd,
        env={**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    handle.close()
    return CeleryWorker(name, queue, process, log)


def wait_for_workers(workers: Sequence[CeleryWorker], timeout: float = 120) -> None:
    """Until every worker's log says it is ready (Celery prints ``<name>@<host> ready.``)."""

    def ready() -> bool:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"celery worker {worker.name} exited ({worker.process.returncode}):\n"
                    f"{worker.log.read_text()[-3000:]}"
                )
        return all(
            f"{w.name}@" in w.log.read_text() and " ready." in w.log.read_text() for w in workers
        )

    wait_until("celery workers " + ", ".join(w.name for w in workers), ready, timeout, every=0.5)
