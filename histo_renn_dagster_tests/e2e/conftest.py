"""e2e fixtures: the GDC emulator (a slice of the demo cohort), `dagster dev`, headless Chromium.

Generated slides are cached under ``$HISTO_RENN_E2E_CACHE`` when set (else a session temp dir).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from histo_renn_dagster.emulator.cohorts import load_cohort
from histo_renn_dagster.emulator.server import GDCEmulator
from histo_renn_dagster_tests.e2e.readme_commands import DEMO_SLIDES
from histo_renn_dagster_tests.e2e.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DagsterDev,
    e2e_catalogues,
    start_dagster_dev,
)


@pytest.fixture(scope="session")
def e2e_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GDCEmulator]:
    """Serves the first three of ``DEMO_SLIDES`` (and their cases' RNA); four are publishable."""
    cache = os.environ.get("HISTO_RENN_E2E_CACHE")
    cache_dir = Path(cache) if cache else tmp_path_factory.mktemp("e2e-cache")
    demo = load_cohort("demo", cache_dir)
    served, reserve = e2e_catalogues(demo, list(DEMO_SLIDES), held_back=4)
    with GDCEmulator(served, reserve=reserve) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def dagster_dev(
    e2e_emulator: GDCEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterDev]:
    home = tmp_path_factory.mktemp("dagster-home")
    server = start_dagster_dev(home, e2e_emulator.url, home / "dagster-dev.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e .[e2e]")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            tab = browser.new_page(viewport={"width": 1600, "height": 1000})
            # A fresh instance greets the first visitor with "Join the Dagster community".
            tab.add_locator_handler(
                tab.get_by_role("button", name="Skip"), lambda button: button.click()
            )
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            browser.close()
