"""`histo-renn fit` on CSV and Parquet tables: JSON lines, output folder, clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from histo_renn_dagster.commands import fit as fit_command
from histo_renn_dagster.core.errors import RennDataError, RennSpecError
from histo_renn_dagster.core.renn.simulate import simulate_cohort
from histo_renn_dagster_tests.core.renn.conftest import tcga_slide_table


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(argv: list[str], capsys) -> list[dict]:
    parser = argparse.ArgumentParser()
    fit_command.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fit", *argv])
    assert args.handler(args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def test_intercept_only_fit_of_the_real_table_hits_the_ml_anchor(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    table = tcga_slide_table(shared_data)[["submitter_id", "tss_code", "MKI67_tpm_unst"]]
    path = tmp_path / "slides.csv"
    table.to_csv(path, index=False)
    (line,) = _run(
        [str(path), "--y", "MKI67_tpm_unst", "--group", "tss_code", "--transform", "log"], capsys
    )
    assert line["loss"] == "NLL_U" and line["m"] == "full" and line["seeds"] == 1
    assert line["mu"] == pytest.approx(2.866, rel=0.01)
    assert line["sigma2_b"] == pytest.approx(0.1126, rel=0.01)
    assert line["sigma2_e"] == pytest.approx(1.0048, rel=0.01)
    assert line["exact_nll"] == pytest.approx(1478.71, abs=0.1)
    assert "test_mse" not in line


def test_features_split_all_losses_and_output_folder(tmp_path: Path, capsys) -> None:
    data, _ = simulate_cohort(np.full(12, 15), sigma2_b=0.5, sigma2_e=0.5, seed=3)
    frame = pd.DataFrame(data.x, columns=[f"feat_{i}" for i in range(data.x.shape[1])])
    frame = frame.assign(y=data.y, site=np.array(data.site_names)[data.site], split=data.split)
    path = tmp_path / "sim.parquet"
    frame.to_parquet(path)
    out = tmp_path / "out"
    lines = _run(
        [
            str(path),
            "--y",
            "y",
            "--group",
            "site",
            "--features",
            "feat_",
            "--loss",
            "all",
            "--m",
            "4",
            "--split",
            "split",
            "--hidden",
            "8,4",
            "--steps",
            "60",
            "--seeds",
            "2",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert [r["loss"] for r in lines] == ["NLL", "NLL_cor_det", "NLL_cor_1", "NLL_no_RE", "NLL_U"]
    for r in lines:
        assert {
            "sigma2_b",
            "sigma2_e",
            "exact_nll",
            "test_mse",
            "test_mse_no_re",
            "test_spearman",
        } <= set(r) and "mu" not in r
        assert r["m"] == "4" and len(r["per_seed"]["sigma2_e"]) == 2
    no_re = lines[3]
    assert no_re["sigma2_b"] == 0 and no_re["test_mse"] == pytest.approx(no_re["test_mse_no_re"])
    history = pd.read_parquet(out / "history.parquet")
    assert {
        "loss_func",
        "m",
        "run",
        "epoch",
        "train_loss",
        "val_loss",
        "sigma2_b_est",
        "sigma2_e_est",
    } <= set(history.columns)
    assert set(history["loss_func"]) == {r["loss"] for r in lines}
    assert (out / "models" / "NLL_U" / "best.pt").is_file()
    assert len((out / "results.jsonl").read_text().splitlines()) == 5
    assert set(pd.read_parquet(out / "metrics.parquet")["subset"]) <= {"seen", "unseen"}


def test_bad_inputs_are_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"y": [1.0, 0.0, 2.0, 3.0], "g": ["a", "a", "b", "b"]}).to_csv(path, index=False)
    with pytest.raises(RennDataError, match="'yy'"):
        _run([str(path), "--y", "yy", "--group", "g"], capsys)
    with pytest.raises(RennDataError, match="<= 0"):
        _run([str(path), "--y", "y", "--group", "g", "--transform", "log"], capsys)
    with pytest.raises(RennSpecError, match="--m"):
        _run([str(path), "--y", "y", "--group", "g", "--m", "two"], capsys)
    with pytest.raises(RennSpecError, match="m >= 2"):
        _run([str(path), "--y", "y", "--group", "g", "--m", "1"], capsys)
    with pytest.raises(RennSpecError, match="NLL_Z"):
        _run([str(path), "--y", "y", "--group", "g", "--loss", "NLL_Z"], capsys)
    with pytest.raises(RennDataError, match="does not exist"):
        _run([str(tmp_path / "missing.csv"), "--y", "y", "--group", "g"], capsys)
