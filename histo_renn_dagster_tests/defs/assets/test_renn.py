"""renn_model materialized through Dagster on a small synthetic cohort table, with its checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.renn.likelihood import LOSSES
from histo_renn_dagster.core.renn.spec import REFERENCE_SEEDS
from histo_renn_dagster.defs.assets.renn import (
    ALL_LOSSES,
    DEFAULT_SEEDS,
    RennModelConfig,
    renn_model,
    renn_model_checks,
    study_check_result,
)
from histo_renn_dagster.defs.io_managers import ParquetIOManager
from histo_renn_dagster.defs.partitions import MINIBATCH_SIZES
from histo_renn_dagster.defs.resources import ComputeResource, LayoutResource
from histo_renn_dagster_tests.core.renn.cohort_fixture import synthetic_cohort_table

COHORT = dg.AssetSpec("cohort_table")
TINY = {
    "seeds": [17, 41],
    "losses": ["NLL", "NLL_U"],
    "hidden": [8],
    "step_budget": 16,
    "threads": 1,
}
CHECK_NAMES = {
    "renn_model_losses_finite",
    "renn_model_variances_in_range",
    "renn_model_all_seeds_finished",
}


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    path = LakeLayout(tmp_path).table_path("cohort_table")
    path.parent.mkdir(parents=True)
    synthetic_cohort_table().to_parquet(path, index=False)
    return tmp_path


def _resources(lake: Path) -> dict:
    layout = LayoutResource(root=str(lake))
    return {
        "layout": layout,
        "compute": ComputeResource(device="cpu"),
        "io_manager": ParquetIOManager(layout=layout),
    }


def _materialize(lake: Path, instance, key: str, config: dict, **kwargs):
    return dg.materialize(
        [COHORT, renn_model, *renn_model_checks],
        partition_key=key,
        instance=instance,
        resources=_resources(lake),
        run_config=dg.RunConfig({"renn_model": RennModelConfig(**config)}),
        **kwargs,
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_two_partitions_write_their_studies_and_pass_their_checks(lake: Path, instance) -> None:
    for key in ("2", "150"):
        result = _materialize(lake, instance, key, TINY)
        assert result.success
        assert _checks(result) == dict.fromkeys(CHECK_NAMES, True)
        (mat,) = result.asset_materializations_for_node("renn_model")
        assert mat.partition == key
        meta: dict[str, Any] = {k: v.value for k, v in mat.metadata.items()}
        assert meta["device"] == "cpu"
        assert meta["profile"] == "default" and meta["seeds"] == [17, 41]
        per_loss = meta["per_loss"]
        assert set(per_loss) == {"NLL", "NLL_U", "LMM_intercept", "LMM_pca"}
        assert per_loss["NLL_U"]["runs"] == 2 and per_loss["NLL_U"]["sigma2_b_mean"] > 0
        assert meta["NLL_U/sigma2_b_mean"] == pytest.approx(per_loss["NLL_U"]["sigma2_b_mean"])
        folder = LakeLayout(lake).models_dir(key)
        assert meta["path"] == str(folder)
        history = pd.read_parquet(folder / "history.parquet")
        models = pd.read_parquet(folder / "models.parquet")
        assert set(history["m"]) == {int(key)} and set(models["m"]) == {int(key)}
        assert (folder / "predictions.parquet").is_file()
        assert (folder / "checkpoints" / "NLL_U" / "fit.pt").is_file()
        config = json.loads((folder / "config.json").read_text())
        assert config["m"] == int(key) and config["losses"] == ["NLL", "NLL_U"]
        assert config["rows"] == len(synthetic_cohort_table())
    assert sorted(p.name for p in (lake / "models").iterdir()) == ["m=150", "m=2"]


def test_checks_fail_on_a_nan_history(tmp_path: Path, instance) -> None:
    # y of order 1e20 overflows the float32 trainer: every epoch's losses are NaN
    table = synthetic_cohort_table()
    table["y"] = table["y"] * 1e20
    path = LakeLayout(tmp_path).table_path("cohort_table")
    path.parent.mkdir(parents=True)
    table.to_parquet(path, index=False)
    result = _materialize(tmp_path, instance, "4", TINY, raise_on_error=False)
    assert _checks(result) == {
        "renn_model_losses_finite": False,
        "renn_model_variances_in_range": False,
        "renn_model_all_seeds_finished": True,
    }
    assert not result.success  # the blocking check stops the run


def test_check_reads_the_files_a_later_edit_broke(lake: Path, instance) -> None:
    assert _materialize(lake, instance, "4", TINY).success
    folder = LakeLayout(lake).models_dir("4")
    assert study_check_result("losses_finite", folder).passed
    history = pd.read_parquet(folder / "history.parquet")
    history.loc[3, "train_loss"] = np.nan
    history.to_parquet(folder / "history.parquet", index=False)
    result = study_check_result("losses_finite", folder)
    assert not result.passed and "train_loss = nan" in str(result.metadata["problems"].value)
    (folder / "models.parquet").unlink()
    missing = study_check_result("all_seeds_finished", folder)
    assert not missing.passed and "models.parquet" in str(missing.metadata["problems"].value)


def test_a_bad_config_fails_the_run_with_its_reason(lake: Path, instance) -> None:
    result = _materialize(lake, instance, "8", {**TINY, "split": "by_moon"}, raise_on_error=False)
    assert not result.success
    failures = [str(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]
    assert any("split 'by_moon'" in text for text in failures)


def test_partitions_and_config_defaults_match_the_core() -> None:
    assert renn_model.partitions_def is not None
    assert renn_model.partitions_def.get_partition_keys() == list(MINIBATCH_SIZES)
    assert ALL_LOSSES == LOSSES
    assert REFERENCE_SEEDS[:3] == DEFAULT_SEEDS
    assert renn_model.op.pool == "gpu"
    defs = dg.Definitions(
        assets=[COHORT, renn_model],
        asset_checks=renn_model_checks,
        resources=_resources(Path("unused-lake")),
    )
    assert defs.get_repository_def().has_job("__ASSET_JOB")
