"""Smoke tests: the code location loads and validates the way `dagster dev` loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from histo_renn_dagster.definitions import defs
from histo_renn_dagster.defs.resources import GDC_URL_ENV, GDCResource, LayoutResource

REPO = Path(__file__).resolve().parents[2]


def test_definitions_resolve() -> None:
    repo = defs.get_repository_def()
    assert {"gdc", "layout", "io_manager"} <= set(repo.get_top_level_resources())


def test_dagster_definitions_validate_cli(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "histo_renn_dagster.definitions"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_gdc_resource_url_precedence(monkeypatch) -> None:
    monkeypatch.delenv(GDC_URL_ENV, raising=False)
    assert GDCResource().resolved_url() == "https://api.gdc.cancer.gov"
    monkeypatch.setenv(GDC_URL_ENV, "http://127.0.0.1:9")
    assert GDCResource().resolved_url() == "http://127.0.0.1:9"
    assert GDCResource(base_url="http://127.0.0.1:7").resolved_url() == "http://127.0.0.1:7"


def test_layout_resource_root_precedence(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HISTO_RENN_LAKE", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert LayoutResource().lake().root == tmp_path / "lake"
    monkeypatch.setenv("HISTO_RENN_LAKE", str(tmp_path / "elsewhere"))
    assert LayoutResource().lake().root == tmp_path / "elsewhere"
    assert LayoutResource(root=str(tmp_path / "x")).lake().root == tmp_path / "x"


def test_resources_build_inside_a_run(tmp_path: Path) -> None:
    @dg.asset
    def probe(gdc: GDCResource, layout: LayoutResource) -> None:
        assert gdc.client().base_url.startswith("http://127.0.0.1")
        assert layout.lake().root == tmp_path

    result = dg.materialize(
        [probe],
        resources={
            "gdc": GDCResource(base_url="http://127.0.0.1:1"),
            "layout": LayoutResource(root=str(tmp_path)),
        },
    )
    assert result.success


def test_tracked_instance_config_is_valid(tmp_path: Path) -> None:
    """storage/dagster.yaml is what `make dev`/`make demo` load: Dagster must accept it."""
    import shutil

    shutil.copy(REPO / "storage" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
