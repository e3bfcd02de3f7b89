"""settled_refresh: one refresh per cron window after inputs changed, none when nothing changed.

A toy graph shaped like the real one: ``embedding`` has dynamic partitions (the slides),
``table`` reads all of them (like ``cohort_table``), ``model`` follows ``table``; ``manifest``
reports a content-derived data version. Ticks run at chosen times; what a tick requests is
materialized before the next one, as the automation daemon would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from histo_renn_dagster.defs.automation import REFRESH_CRON, automation_sensor, settled_refresh

parts = dg.DynamicPartitionsDefinition(name="toy_slides")
HOURLY = "0 * * * *"
MANIFEST_VERSION = {"value": "v1"}


@dg.asset
def manifest() -> dg.Output[int]:
    return dg.Output(1, data_version=dg.DataVersion(MANIFEST_VERSION["value"]))


@dg.asset(partitions_def=parts)
def embedding() -> int:
    return 1


@dg.asset(deps=[embedding, manifest], automation_condition=settled_refresh(HOURLY))
def table() -> int:
    return 1


@dg.asset(deps=[table], automation_condition=settled_refresh(HOURLY, require_all_deps=True))
def model() -> int:
    return 1


ASSETS = [manifest, embedding, table, model]
T0 = datetime(2030, 1, 1, 10, 5, tzinfo=timezone.utc)


class Ticker:
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.cursor = None

    def tick(self, at: timedelta) -> set[str]:
        result = dg.evaluate_automation_conditions(
            ASSETS, self.instance, cursor=self.cursor, evaluation_time=T0 + at
        )
        self.cursor = result.cursor
        requested = {
            k.path[-1]
            for k in (dg.AssetKey("table"), dg.AssetKey("model"))
            if result.get_num_requested(k)
        }
        if requested:
            assert dg.materialize(
                ASSETS, selection=sorted(requested), instance=self.instance
            ).success
        return requested

    def embed(self, *keys: str) -> None:
        for key in keys:
            assert dg.materialize(
                ASSETS, selection=["embedding"], partition_key=key, instance=self.instance
            ).success


@pytest.fixture
def ticker() -> Iterator[Ticker]:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("toy_slides", ["a", "b", "c"])
        ticker = Ticker(instance)
        assert ticker.tick(timedelta(0)) == set()  # the first tick only starts the clock
        yield ticker


def test_a_backfill_of_many_slides_refreshes_once_per_window(ticker: Ticker) -> None:
    ticker.embed("a")
    assert ticker.tick(timedelta(minutes=10)) == set()  # inputs changed, window not open
    ticker.embed("b")
    assert ticker.tick(timedelta(minutes=20)) == set()
    # 11:00 passed: one refresh of the chain, table and model together.
    assert ticker.tick(timedelta(minutes=56)) == {"table", "model"}
    assert ticker.tick(timedelta(minutes=60)) == set()  # its own update starts nothing
    ticker.embed("c")
    assert ticker.tick(timedelta(minutes=70)) == set()  # same window: remembered, not run
    assert ticker.tick(timedelta(minutes=116)) == {"table", "model"}  # 12:00 passed
    # Nothing changed since: later windows start nothing.
    assert ticker.tick(timedelta(minutes=176)) == set()
    assert ticker.tick(timedelta(minutes=236)) == set()


def test_an_unchanged_data_version_does_not_refresh(ticker: Ticker) -> None:
    MANIFEST_VERSION["value"] = "v1"
    assert dg.materialize(ASSETS, selection=["manifest"], instance=ticker.instance).success
    assert ticker.tick(timedelta(minutes=56)) == {"table", "model"}
    # The nightly refresh lists the same files: same data version, nothing downstream runs.
    assert dg.materialize(ASSETS, selection=["manifest"], instance=ticker.instance).success
    assert ticker.tick(timedelta(minutes=116)) == set()
    MANIFEST_VERSION["value"] = "v2"
    assert dg.materialize(ASSETS, selection=["manifest"], instance=ticker.instance).success
    assert ticker.tick(timedelta(minutes=176)) == {"table", "model"}


def test_defaults() -> None:
    assert REFRESH_CRON == "*/15 * * * *"
    assert "settled_refresh" in (settled_refresh().get_label() or "")
    assert automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
