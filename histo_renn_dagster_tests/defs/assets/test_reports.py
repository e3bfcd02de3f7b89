"""renn_results and renn_report materialized through Dagster over a stand-in renn_model asset."""

# No `from __future__ import annotations`: Dagster reads the stand-in asset's annotations.

from pathlib import Path

import dagster as dg
import pytest

from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.reporting.report import FIGURES
from histo_renn_dagster.defs.assets.reports import renn_report, renn_results
from histo_renn_dagster.defs.partitions import minibatch_partitions
from histo_renn_dagster.defs.resources import LayoutResource
from histo_renn_dagster_tests.core.reporting.helpers import (
    make_world,
    write_lake_inputs,
    write_model_partition,
)

WORLD = make_world(n_sites=4, per_site=5)


@dg.asset(name="renn_model", partitions_def=minibatch_partitions, group_name="renn")
def fake_renn_model(context: dg.AssetExecutionContext, layout: LayoutResource) -> None:
    """Writes the file contract of one minibatch size, as the real renn_model does."""
    write_model_partition(layout.lake(), int(context.partition_key), WORLD, epochs=3)


ASSETS = [fake_renn_model, renn_results, renn_report]


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def _run(selection, instance, lake: Path, **kwargs) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        ASSETS,
        selection=selection,
        instance=instance,
        resources={"layout": LayoutResource(root=str(lake))},
        **kwargs,
    )
    assert result.success
    return result


@pytest.mark.slow  # renders every figure
def test_results_and_report_in_dagster(tmp_path: Path, instance) -> None:
    write_lake_inputs(LakeLayout(tmp_path), WORLD)
    for m in ("2", "8"):
        _run(["renn_model"], instance, tmp_path, partition_key=m)

    first = _run(["renn_results"], instance, tmp_path)
    meta = _meta(first, "renn_results")
    assert meta["partitions"] == ["2", "8"]
    assert [p["m"] for p in meta["missing_partitions"]] == ["4", "16", "32", "150"]
    assert meta["models_rows"] == 2 * (5 * 2 + 2) and meta["history_rows"] == 2 * 5 * 2 * 3
    assert "RENN-U" in meta["preview"]
    tables = {k: Path(meta[f"{k}_path"]) for k in ("history", "models", "predictions")}
    assert tables["models"] == tmp_path / "tables" / "renn_results_models.parquet"
    before = {k: p.read_bytes() for k, p in tables.items()}
    version = first.asset_materializations_for_node("renn_results")[0].tags["dagster/data_version"]

    again = _run(["renn_results"], instance, tmp_path)
    assert {k: p.read_bytes() for k, p in tables.items()} == before
    assert (
        again.asset_materializations_for_node("renn_results")[0].tags["dagster/data_version"]
        == version
    )

    report = _run(
        ["renn_report"],
        instance,
        tmp_path,
        run_config={"ops": {"renn_report": {"config": {"gallery_slides": 2}}}},
    )
    meta = _meta(report, "renn_report")
    assert meta["focus_m"] == 8 and meta["random_weights"] is True
    assert meta["gdc_data_release"].startswith("Data Release")
    for key, title, *_ in FIGURES:
        assert f"![{title}](data:image/jpeg;base64," in meta[key]
        assert Path(meta["figure_paths"][key]).is_file()
    assert Path(meta["report_html"]) == tmp_path / "reports" / "report.html"
    assert any("m = 150" in p for p in meta["problems"])


def test_results_dependency_spans_every_model_partition() -> None:
    defs = dg.Definitions(assets=ASSETS, resources={"layout": LayoutResource()})
    graph = defs.resolve_asset_graph()
    results = graph.get(dg.AssetKey("renn_results"))
    assert results.parent_keys == {dg.AssetKey("renn_model")}
    mapping = graph.get_partition_mapping(dg.AssetKey("renn_results"), dg.AssetKey("renn_model"))
    assert isinstance(mapping, dg.AllPartitionMapping)
    assert results.automation_condition is not None
    report = graph.get(dg.AssetKey("renn_report"))
    assert report.parent_keys == {dg.AssetKey("renn_results")}
    assert renn_results.partitions_def is None and renn_report.partitions_def is None
