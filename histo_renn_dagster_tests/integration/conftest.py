"""Integration fixtures: a real PostgreSQL, a real Redis, Celery workers, a demo-cohort slice.

PostgreSQL and Redis come from ``$HISTO_RENN_PG_URL`` / ``$HISTO_RENN_REDIS_URL`` when set, else
they are started here from the Debian packages' binaries (``apt-get install postgresql
redis-server``) on free loopback ports with throwaway data dirs, and stopped at the end. Without
the binaries (or without ``pip install -e .[scale]``) every integration test is skipped, naming
what is missing, unless ``$HISTO_RENN_INTEGRATION_REQUIRED`` is set (CI): then that is an error.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from histo_renn_dagster_tests.integration.services import (
    Postgres,
    missing_services,
    postgres_from_url,
    start_postgres,
    start_redis,
)

SCALE_MODULES = ("dagster_celery", "dagster_postgres", "psycopg2", "redis")
REQUIRED_ENV = "HISTO_RENN_INTEGRATION_REQUIRED"


def integration_skip_reason() -> str | None:
    missing = [m for m in SCALE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"pip install -e '.[scale]' (missing: {', '.join(missing)})"
    if not os.environ.get("HISTO_RENN_PG_URL") or not os.environ.get("HISTO_RENN_REDIS_URL"):
        services = missing_services()
        if services:
            return f"apt-get install postgresql redis-server (missing: {', '.join(services)})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = integration_skip_reason()
    if reason is None:
        return
    here = Path(__file__).parent
    ours = [
        item
        for item in items
        if item.get_closest_marker("integration") and here in Path(str(item.fspath)).parents
    ]
    if ours and os.environ.get(REQUIRED_ENV):
        raise pytest.UsageError(f"integration tests cannot run ({REQUIRED_ENV} is set): {reason}")
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    url = os.environ.get("HISTO_RENN_PG_URL")
    server = postgres_from_url(url) if url else start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("HISTO_RENN_REDIS_URL")
    if url:
        yield url
        return
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()
