"""The UI path: every asset on the asset graph, one slide partition launched from the browser."""

from __future__ import annotations

import time
from typing import Any

import pytest

from histo_renn_dagster_tests.e2e.readme_commands import DEMO_SLIDES, SYNC_COMMANDS
from histo_renn_dagster_tests.e2e.support import DagsterDev, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DESIGN_ASSETS = (
    "gdc_slide_manifest",
    "gdc_expression_manifest",
    "slide_file",
    "slide_tiles",
    "slide_embedding",
    "expression_table",
    "cohort_table",
    "renn_model",
    "renn_results",
    "renn_report",
)
"""The asset graph of DESIGN.md."""

RUNS = (
    'query($v: String!) { runsOrError(filter: {tags: [{key: "dagster/partition", value: $v}]}) '
    "{ ... on Runs { results { runId status creationTime } } } }"
)


def _groups(server: DagsterDev) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for node in server.asset_nodes():
        if not node["isMaterializable"]:
            continue  # a dependency nothing defines yet (an external stub) has no group page
        groups.setdefault(node["groupName"], []).append(node["assetKey"]["path"][-1])
    return groups


def test_the_asset_graph_shows_every_asset_and_launches_one_slide(
    dagster_dev: DagsterDev, page: Any
) -> None:
    listing = dagster_dev.cli(SYNC_COMMANDS[0][1])
    assert listing.returncode == 0, listing.stderr[-3000:]
    location = dagster_dev.location()
    for group, names in _groups(dagster_dev).items():
        page.goto(f"{dagster_dev.url}/locations/{location}/asset-groups/{group}")
        for name in names:
            page.get_by_text(name, exact=True).first.wait_for(state="visible")

    key = DEMO_SLIDES[2]
    assert key in dagster_dev.partition_keys("slide_file")
    dialog = _launch_dialog_for_partition(page, f"{dagster_dev.url}/assets/slide_file", key)
    started = time.time()
    dialog.get_by_role("button", name="Launch 1 run").click()

    def finished() -> str | None:
        runs = dagster_dev.graphql(RUNS, {"v": key})["runsOrError"]["results"]
        ours = [r for r in runs if r["creationTime"] >= started - 5]
        done = [r["status"] for r in ours if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return done[0] if done else None

    assert wait_for(f"the run of slide_file[{key}]", finished, timeout=300, every=3) == "SUCCESS"
    assert key in dagster_dev.materialized_partitions("slide_file")


def _launch_dialog_for_partition(page: Any, asset_url: str, key: str, attempts: int = 3) -> Any:
    """Open the asset's launch dialog and choose partition ``key`` in its picker.

    A fresh browser profile shows Dagster's community dialog at a moment of its choosing; when it
    lands while the picker is open, dismissing it (the page fixture's Skip handler) closes the
    picker or takes the typed text. Then the page is loaded again and the dialog opened afresh.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(attempts):
        page.goto(asset_url)
        page.get_by_role("button", name="Materialize…").click()
        dialog = page.locator(".dagster-dialog")
        dialog.get_by_text("Select a partition or create one").click()
        popover = page.locator(".dagster-popover")
        try:
            popover.first.wait_for(state="visible", timeout=20_000)  # typing goes to its input
            page.keyboard.type(key)
            popover.locator("span", has_text=key).first.click(timeout=20_000)
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise
            continue
        page.keyboard.press("Escape")
        return dialog
    raise AssertionError("unreachable")


def test_every_design_asset_is_defined(dagster_dev: DagsterDev) -> None:
    defined = {name for names in _groups(dagster_dev).values() for name in names}
    assert set(DESIGN_ASSETS) <= defined, sorted(set(DESIGN_ASSETS) - defined)
