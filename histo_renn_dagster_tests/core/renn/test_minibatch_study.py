"""The minibatch-size study of one m: frames, files and checks (core.renn.study, study_io)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster.core.errors import RennDataError, RennError, RennSpecError
from histo_renn_dagster.core.renn.study import (
    HISTORY_COLUMNS,
    MODEL_COLUMNS,
    PREDICTION_COLUMNS,
    StudySpec,
    run_study,
    table_digest,
)
from histo_renn_dagster.core.renn.study_io import (
    CHECKS,
    StudyFiles,
    read_study,
    study_problems,
    study_summary,
    write_study,
)
from histo_renn_dagster.core.renn.train import load_fit
from histo_renn_dagster_tests.core.renn.cohort_fixture import synthetic_cohort_table

SEEDS = (17, 41)
LOSSES = ("NLL", "NLL_no_RE", "NLL_U")


def tiny(**overrides: Any) -> StudySpec:
    fields: dict[str, Any] = dict(
        m=4, seeds=SEEDS, losses=LOSSES, hidden=(8,), step_budget=24, threads=1
    )
    fields.update(overrides)
    return StudySpec(**fields)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_cohort_table()


@pytest.fixture(scope="module")
def default_study(table: pd.DataFrame):
    return run_study(table, tiny())


def test_default_study_frames_follow_the_file_contract(table: pd.DataFrame, default_study) -> None:
    r = default_study
    n, epochs = len(table), int(r.config["epochs"])
    assert list(r.history.columns) == list(HISTORY_COLUMNS)
    assert list(r.models.columns) == list(MODEL_COLUMNS)
    assert list(r.predictions.columns) == list(PREDICTION_COLUMNS)
    assert len(r.history) == len(LOSSES) * len(SEEDS) * epochs
    assert set(r.history["run"]) == set(SEEDS) and set(r.history["m"]) == {4}
    assert r.history["epoch"].min() == 1 and r.history["epoch"].max() == epochs
    assert np.isfinite(r.history[["train_loss", "val_loss", "exact_nll_val"]].to_numpy()).all()
    # one row per (loss, seed) plus the two baselines (same training rows for every seed: run -1)
    renn = r.models[r.models["loss_func"].isin(LOSSES)]
    assert len(renn) == len(LOSSES) * len(SEEDS)
    base = r.models.set_index("loss_func").loc[["LMM_intercept", "LMM_pca"]]
    assert list(base["run"]) == [-1, -1] and list(base["best_epoch"]) == [-1, -1]
    assert list(base["loss_func_disp"]) == ["LMM (intercept)", "LMM (PCA features)"]
    assert (base["sigma2_b_ci_low"] <= base["sigma2_b"]).all()
    assert (base["sigma2_b"] <= base["sigma2_b_ci_high"]).all()
    assert dict(zip(renn["loss_func"], renn["loss_func_disp"], strict=True)) == {
        "NLL": "RENN",
        "NLL_no_RE": "NN-noRE",
        "NLL_U": "RENN-U",
    }
    assert (renn.loc[renn["loss_func"] == "NLL_no_RE", "sigma2_b"] == 0).all()
    # split_patient keeps every site in training: all test rows are on seen sites
    test_rows = int((table["split_patient"] == "test").sum())
    assert (r.models["seen_n"] == test_rows).all() and (r.models["unseen_n"] == 0).all()
    assert r.models["unseen_mse"].isna().all() and r.models["seen_mse"].notna().all()
    assert len(r.predictions) == (len(renn) + 2) * n


def test_predictions_are_f_plus_blup_from_training_rows(table: pd.DataFrame, default_study) -> None:
    p = default_study.predictions
    assert np.allclose(p["y_hat"], p["f_x"] + p["blup"])
    assert np.allclose(p["residual"], p["y"] - p["y_hat"])
    assert (p.loc[p["loss_func"] == "NLL_no_RE", "blup"] == 0).all()
    one = p[(p["loss_func"] == "NLL_U") & (p["run"] == SEEDS[0])].set_index("unit_id")
    expected = table.set_index("unit_id")["split_patient"]
    assert (one["split"] == expected.loc[one.index]).all()
    # one BLUP per site; the test MSE in models equals the MSE of these predictions
    assert (one.groupby("site_code")["blup"].nunique() == 1).all()
    test = one[one["split"] == "test"]
    models = default_study.models.set_index(["loss_func", "run"])
    assert models.loc[("NLL_U", SEEDS[0]), "seen_mse"] == pytest.approx(
        float(np.mean(test["residual"] ** 2))
    )


def test_site_split_scores_unseen_sites_with_no_random_effect(table: pd.DataFrame) -> None:
    r = run_study(table, tiny(split="split_site", losses=("NLL_U",)))
    assert (r.models["unseen_n"] == int((table["split_site"] == "test").sum())).all()
    assert (r.models["seen_n"] == 0).all()
    unseen = r.predictions[r.predictions["split"] == "test"]
    assert not unseen["seen_site"].any() and (unseen["blup"] == 0).all()


def test_reference_profile_draws_a_site_split_per_seed(table: pd.DataFrame) -> None:
    r = run_study(table, tiny(profile="reference", epochs=2, losses=("NLL",), features="none"))
    assert r.config["epochs"] == 2 and r.config["intercept_only"] and r.config["hidden"] == []
    base = r.models[r.models["loss_func"].str.startswith("LMM")]
    assert list(base["loss_func"]) == ["LMM_intercept"] * len(SEEDS)  # no features, no PCA
    assert list(base["run"]) == list(SEEDS)
    p: pd.DataFrame = r.predictions.loc[r.predictions["loss_func"] == "NLL"]
    test_units = set(table.loc[table["split_patient"] == "test", "unit_id"])
    for seed in SEEDS:
        mine: pd.DataFrame = p.loc[p["run"] == seed]
        assert set(mine.loc[mine["split"] == "test", "unit_id"]) == test_units
        # the reference holds out whole sites of the remaining rows for validation
        val_sites = set(mine.loc[mine["split"] == "val", "site_code"])
        assert val_sites and not val_sites & set(mine.loc[mine["split"] == "train", "site_code"])


def test_bad_specs_and_tables_are_named() -> None:
    with pytest.raises(RennSpecError, match="split"):
        tiny(split="split_random")
    with pytest.raises(RennSpecError, match="unknown loss"):
        tiny(losses=("NLL", "MSE"))
    with pytest.raises(RennSpecError, match="distinct"):
        tiny(losses=("NLL", "NLL"))
    table = synthetic_cohort_table().drop(columns=["split_site"])
    with pytest.raises(RennDataError, match="split_site"):
        run_study(table, tiny(split="split_site"))
    with pytest.raises(RennDataError, match="no feature columns"):
        run_study(synthetic_cohort_table(), tiny(features="pc_"))


def test_written_study_reads_back_and_replaces_the_previous_one(tmp_path, default_study) -> None:
    out = tmp_path / "models" / "m=4"
    (out / "checkpoints").mkdir(parents=True)
    (out / "stale.txt").write_text("from an older study")
    write_study(default_study, out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m=4"]  # no staging left
    files = read_study(out)
    pd.testing.assert_frame_equal(files.models, default_study.models)
    pd.testing.assert_frame_equal(files.history, default_study.history)
    assert files.config["seeds"] == list(SEEDS) and files.config["cohort_sha256"]
    fit = load_fit(out / "checkpoints" / "NLL_U" / "fit.pt")
    assert fit.spec.loss == "NLL_U" and fit.spec.seeds == SEEDS
    assert study_problems(files) == {name: [] for name in CHECKS}
    with pytest.raises(RennError, match=r"history\.parquet"):
        read_study(tmp_path / "nowhere")


def _files(study) -> StudyFiles:
    return StudyFiles(study.history.copy(), study.models.copy(), study.predictions, study.config)


def test_checks_catch_nan_losses_bad_variances_and_missing_seeds(default_study) -> None:
    broken = _files(default_study)
    broken.history.loc[5, "train_loss"] = np.nan
    broken.history.loc[7, "exact_nll_val"] = np.inf
    problems = study_problems(broken)
    assert (
        len(problems["losses_finite"]) == 2 and "train_loss = nan" in problems["losses_finite"][0]
    )
    broken = _files(default_study)
    broken.models.loc[0, "sigma2_e"] = 1e-12
    broken.models.loc[1, "sigma2_b"] = 1e6
    assert len(study_problems(broken)["variances_in_range"]) == 2
    broken = _files(default_study)
    h, models = broken.history, broken.models
    dropped = StudyFiles(
        h.loc[~((h["loss_func"] == "NLL") & (h["run"] == SEEDS[1]) & (h["epoch"] > 3))],
        models.loc[~((models["loss_func"] == "NLL_U") & (models["run"] == 17))],
        broken.predictions,
        broken.config,
    )
    seeds = study_problems(dropped)["all_seeds_finished"]
    assert any("NLL run 41: 3 of" in s for s in seeds)
    assert any(s.startswith("NLL_U: models for runs [41]") for s in seeds)


def test_summary_has_mean_and_sd_over_seeds_per_loss(default_study) -> None:
    summary = study_summary(default_study.models)
    assert set(summary) == {*LOSSES, "LMM_intercept", "LMM_pca"}
    nll_u = default_study.models[default_study.models["loss_func"] == "NLL_U"]
    assert summary["NLL_U"]["runs"] == 2
    assert summary["NLL_U"]["sigma2_b_mean"] == pytest.approx(nll_u["sigma2_b"].mean(), abs=1e-6)
    assert summary["NLL_U"]["sigma2_b_sd"] == pytest.approx(nll_u["sigma2_b"].std(), abs=1e-6)
    assert summary["NLL"]["unseen_mse"] is None  # NaN becomes None for JSON metadata


def test_table_digest_changes_with_the_data(table: pd.DataFrame) -> None:
    changed = table.copy()
    changed.loc[0, "y"] += 1e-9
    assert table_digest(table) == table_digest(table.copy())
    assert table_digest(changed) != table_digest(table)
    relisted = table.copy()
    relisted.at[1, "file_ids"] = ["F001", "F999"]  # a second slide joins a sample
    assert table_digest(relisted) != table_digest(table)
