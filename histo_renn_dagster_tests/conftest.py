"""Shared pytest fixtures.

Real data lives in ``../shared/data`` beside the checkout (CI has it). Tests that need it take the
``shared_data`` fixture and are skipped with a reason when it is absent. Set HISTO_RENN_SHARED to
point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["histo_renn_dagster_tests.fixtures.emulator"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    return Path(os.environ.get("HISTO_RENN_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` or a skip naming what is missing."""
    data = _shared_root() / "data"
    if not data.is_dir():
        pytest.skip(f"real test data not found at {data} (set HISTO_RENN_SHARED)")
    return data
