"""Flat result tables: contract checks, deterministic concatenation, missing partitions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from histo_renn_dagster.core.errors import ResultsError
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.reporting.results import (
    HISTORY_SCHEMA,
    KINDS,
    MODEL_ORDER,
    MODELS_SCHEMA,
    PREDICTIONS_SCHEMA,
    collect_results,
    read_results,
    results_version,
    table_name,
    write_results,
)
from histo_renn_dagster_tests.core.reporting.helpers import make_world, write_model_partition

SIZES = ("2", "4", "8", "16", "32", "150")


@pytest.fixture(scope="module")
def world():
    return make_world(n_sites=4, per_site=5)


@pytest.fixture
def lake(tmp_path: Path, world) -> LakeLayout:
    layout = LakeLayout(tmp_path)
    for m in (4, 2):  # written out of order on purpose
        write_model_partition(layout, m, world, runs=(41, 17), epochs=4)
    return layout


def test_collect_concatenates_sorted_and_typed(lake: LakeLayout, world) -> None:
    tables = collect_results(lake, SIZES)
    assert tables.partitions == ("2", "4")
    assert [i.m for i in tables.missing] == ["8", "16", "32", "150"]
    assert "folder absent" in tables.missing[0].detail
    units = len(world.units)
    assert tables.row_counts() == {
        "history": 2 * 5 * 2 * 4,  # m x losses x runs x epochs
        "models": 2 * (5 * 2 + 2),  # five losses x two runs + two baselines (run -1)
        "predictions": 2 * (5 * 2 + 2) * units,
    }
    models = tables.models
    assert models["m"].tolist() == sorted(models["m"].tolist())
    first = models[models["m"] == 2]
    assert list(dict.fromkeys(first["loss_func"])) == list(MODEL_ORDER)
    assert first[first["loss_func"] == "NLL"]["run"].tolist() == [17, 41]
    for frame, schema in (
        (tables.history, HISTORY_SCHEMA),
        (tables.models, MODELS_SCHEMA),
        (tables.predictions, PREDICTIONS_SCHEMA),
    ):
        assert list(frame.columns[: len(schema.names)]) == schema.names
    assert str(tables.history["epoch"].dtype) == "int64"
    assert str(tables.predictions["seen_site"].dtype) == "bool"
    assert tables.configs["2"]["profile"] == "default"
    hist = tables.history
    key = ["m", "loss_func", "run", "epoch"]
    assert not hist.duplicated(key).any()


def test_rerun_on_unchanged_inputs_gives_identical_tables(lake: LakeLayout) -> None:
    first = write_results(collect_results(lake, SIZES), lake)
    before = {kind: path.read_bytes() for kind, path in first.items()}
    again = write_results(collect_results(lake, SIZES), lake)
    assert {kind: path.read_bytes() for kind, path in again.items()} == before
    assert first["models"].name == "renn_results_models.parquet"
    assert results_version(collect_results(lake, SIZES)) == results_version(
        collect_results(lake, SIZES)
    )


def test_read_back_equals_written_and_lists_missing(lake: LakeLayout) -> None:
    tables = collect_results(lake, SIZES)
    write_results(tables, lake)
    back = read_results(lake, SIZES)
    for kind in KINDS:
        pd.testing.assert_frame_equal(back.table(kind), tables.table(kind))
    assert back.partitions == ("2", "4")
    assert [i.m for i in back.missing] == ["8", "16", "32", "150"]
    assert back.configs["4"]["m"] == 4
    assert results_version(back) == results_version(tables)


def test_value_change_changes_version(lake: LakeLayout) -> None:
    before = results_version(collect_results(lake, SIZES))
    path = lake.models_dir(2) / "models.parquet"
    frame = pd.read_parquet(path)
    frame.loc[0, "sigma2_e"] += 0.01
    frame.to_parquet(path, index=False)
    assert results_version(collect_results(lake, SIZES)) != before


def test_incomplete_partition_is_reported_not_read(lake: LakeLayout) -> None:
    (lake.models_dir(4) / "predictions.parquet").unlink()
    tables = collect_results(lake, SIZES)
    assert tables.partitions == ("2",)
    assert "no predictions.parquet" in tables.missing[0].detail
    assert set(tables.models["m"]) == {2}


def test_no_partitions_gives_empty_typed_tables(tmp_path: Path) -> None:
    layout = LakeLayout(tmp_path)
    tables = collect_results(layout, SIZES)
    assert tables.row_counts() == {"history": 0, "models": 0, "predictions": 0}
    paths = write_results(tables, layout)
    assert pd.read_parquet(paths["history"]).columns.tolist() == HISTORY_SCHEMA.names


def _rewrite(lake: LakeLayout, kind: str, change) -> Path:
    path = lake.models_dir(2) / f"{kind}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        ("history", lambda f: f.drop(columns=["val_loss"]), "missing columns ['val_loss']"),
        ("models", lambda f: f.assign(loss_func="MSE"), "unknown loss_func ['MSE']"),
        ("predictions", lambda f: f.assign(m=3), "expected 2 (its folder)"),
        ("models", lambda f: f.assign(loss_func_disp="RENN"), "expected 'RENN-det'"),
        ("history", lambda f: f.assign(epoch=f["epoch"] + 0.5), "column epoch is not int64"),
    ],
)
def test_contract_violations_name_file_and_problem(lake, kind, change, message) -> None:
    path = _rewrite(lake, kind, change)
    with pytest.raises(ResultsError) as err:
        collect_results(lake, SIZES)
    assert str(path) in str(err.value) and message in str(err.value)


def test_extra_columns_are_kept_after_the_contract(lake: LakeLayout) -> None:
    _rewrite(lake, "models", lambda f: f.assign(zz_note="x", aa_lr=1e-3))
    models = collect_results(lake, SIZES).models
    assert models.columns.tolist()[-2:] == ["aa_lr", "zz_note"]


def test_read_results_without_tables_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="materialize renn_results first"):
        read_results(LakeLayout(tmp_path))
    with pytest.raises(ResultsError, match="unknown result kind"):
        table_name("figures")
