"""New-slide discovery: listing ids, the cursor, per-slide state and the bounded tick plan."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from histo_renn_dagster.core.errors import GDCResponseError
from histo_renn_dagster.core.gdc.client import GDCClient
from histo_renn_dagster.core.gdc.discovery import (
    DiscoveryCursor,
    DiscoverySpec,
    decode_cursor,
    is_settled,
    list_slide_ids,
    listing_digest,
    plan_discovery,
    read_table_ids,
    slide_state,
)
from histo_renn_dagster.emulator.catalogue import Catalogue
from histo_renn_dagster.emulator.server import GDCEmulator

RELEASE = "Data Release 45.0 - December 04, 2025"


def ids(n: int, seed: str = "s") -> list[str]:
    return sorted(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}{i}")) for i in range(n))


def test_list_slide_ids_lists_only_slides_in_pages(
    gdc_emulator: GDCEmulator, fixture_catalogue: Catalogue
) -> None:
    slides = sorted(d["file_id"] for d in fixture_catalogue.files if d["data_format"] == "SVS")
    with GDCClient(gdc_emulator.url) as client:
        assert list_slide_ids(client, "TCGA-BRCA", page_size=4) == slides
    searches = [r for r in gdc_emulator.requests if r.route == "/files"]
    assert len(searches) == 2  # 6 slides in pages of 4
    with GDCClient(gdc_emulator.url) as client:
        assert list_slide_ids(client, "TCGA-OV") == []


class _Hits:
    def __init__(self, hits: list[dict[str, Any]]) -> None:
        self.hits = hits

    def search(
        self, spec_or_endpoint: Any, *, fields: Any = None, page_size: Any = None
    ) -> list[dict[str, Any]]:
        return self.hits


def test_a_hit_without_id_is_a_clear_error() -> None:
    with pytest.raises(GDCResponseError, match="no file_id"):
        list_slide_ids(_Hits([{"file_name": "x.svs"}]), "TCGA-BRCA")


def test_digest_ignores_order_and_duplicates_but_not_content() -> None:
    a = ids(5)
    assert listing_digest(a) == listing_digest(reversed(a + a[:2]))
    assert listing_digest(a) != listing_digest(a[:4])


def test_cursor_round_trip_and_unreadable_cursors_start_over() -> None:
    cursor = DiscoveryCursor(RELEASE, "abc", 3, 1)
    assert decode_cursor(cursor.encode()) == cursor
    for text in (None, "", "not json", "[]", '{"v": 99}', '{"v": 1, "release": "x"}'):
        assert decode_cursor(text) is None


def test_settled_only_when_same_listing_and_nothing_pending() -> None:
    done = DiscoveryCursor(RELEASE, "d", 3, 0)
    assert is_settled(done, RELEASE, "d")
    assert not is_settled(done, RELEASE, "other")
    assert not is_settled(done, "Data Release 46.0", "d")
    assert not is_settled(DiscoveryCursor(RELEASE, "d", 3, 2), RELEASE, "d")
    assert not is_settled(None, RELEASE, "d")


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        ([None, None], "todo"),
        (["MATERIALIZED", None], "todo"),
        (["MATERIALIZED", "MATERIALIZED"], "done"),
        (["MATERIALIZED", "IN_PROGRESS"], "in_flight"),
        (["FAILED", "IN_PROGRESS"], "in_flight"),
        (["MATERIALIZED", "FAILED"], "failed"),
        ([], "todo"),
    ],
)
def test_slide_state(statuses: list[str | None], state: str) -> None:
    assert slide_state(statuses) == state


def test_spec_rejects_non_positive_bounds() -> None:
    with pytest.raises(ValueError, match="max_runs_per_tick"):
        DiscoverySpec(max_runs_per_tick=0)


def test_first_tick_registers_everything_and_waits_for_the_manifest() -> None:
    listed = ids(5)
    plan = plan_discovery(listed, release=RELEASE, registered=(), in_manifest=(), states={})
    assert plan.register == tuple(listed)
    assert plan.run == ()
    assert plan.refresh_manifest and plan.waiting_for_manifest == 5
    assert plan.pending == 5 and plan.cursor.pending == 5


def test_only_untouched_slides_in_the_manifest_run() -> None:
    listed = ids(6)
    states = {listed[0]: "done", listed[1]: "in_flight", listed[2]: "failed"}
    plan = plan_discovery(
        listed,
        release=RELEASE,
        registered=listed,
        in_manifest=listed[:5],
        states=states,
    )
    assert plan.register == ()
    assert plan.run == (listed[3], listed[4])
    assert plan.refresh_manifest and plan.waiting_for_manifest == 1  # listed[5]
    assert (plan.in_flight, plan.failed, plan.pending) == (1, 1, 1)


def test_eleven_thousand_slides_are_worked_off_in_bounded_ticks() -> None:
    listed = ids(11_000)
    spec = DiscoverySpec(max_new_partitions=4000, max_runs_per_tick=900, max_in_flight=1500)
    registered: set[str] = set()
    states: dict[str, str] = {}
    ticks = 0
    while True:
        plan = plan_discovery(
            listed,
            release=RELEASE,
            registered=registered,
            in_manifest=listed,
            states=states,
            spec=spec,
        )
        assert len(plan.register) <= 4000 and len(plan.run) <= 900
        assert plan.in_flight + len(plan.run) <= 1500
        registered |= set(plan.register)
        assert set(plan.run) <= registered
        # Runs started two ticks ago finish now; this tick's runs are in flight.
        for key, state in list(states.items()):
            if state == "in_flight":
                states[key] = "done" if ticks % 2 else "in_flight"
        states.update(dict.fromkeys(plan.run, "in_flight"))
        ticks += 1
        if plan.pending == 0 and plan.in_flight == 0 and not plan.run:
            break
        assert ticks < 1000
    assert registered == set(listed)
    assert all(states[k] == "done" for k in listed)
    assert plan.cursor == DiscoveryCursor(RELEASE, listing_digest(listed), 11_000, 0)


def test_slides_no_longer_listed_are_left_alone() -> None:
    listed = ids(2)
    gone = ids(1, seed="gone")
    plan = plan_discovery(
        listed, release=RELEASE, registered=listed + gone, in_manifest=listed, states={}
    )
    assert plan.run == tuple(listed)


def test_read_table_ids(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    assert read_table_ids(path) == set()
    pd.DataFrame({"file_id": ["a", "b", None], "x": [1, 2, 3]}).to_parquet(path)
    assert read_table_ids(path) == {"a", "b"}
