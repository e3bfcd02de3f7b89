"""`histo-renn cohort`: the cohort table from local files, JSON lines, checks, clear failures."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster.commands import cohort
from histo_renn_dagster.core.errors import CohortError
from histo_renn_dagster.emulator.fixture_cohort import SITES
from histo_renn_dagster_tests.core.cohort.helpers import (
    gdc_client_dir,
    sheet_rows,
    write_embedding,
    write_sheet,
    write_sites,
)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="histo-renn")
    cohort.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cohort", *argv])
    return args.handler(args)


def records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_sample_sheet_with_embeddings(fixture_catalogue, tmp_path, capsys):
    rows = sheet_rows(fixture_catalogue)
    sheet = write_sheet(tmp_path / "gdc_sample_sheet.tsv", rows)
    data = gdc_client_dir(fixture_catalogue, tmp_path / "downloads")
    sites = write_sites(tmp_path / "sites.csv", SITES)
    slides = [r["File ID"] for r in rows if r["File Name"].endswith(".svs")]
    for i, fid in enumerate(slides):
        write_embedding(tmp_path / "emb" / f"{fid}.h5", np.full(4, i, dtype=np.float32))
    out = tmp_path / "cohort.parquet"
    code = run(
        ["--sample-sheet", str(sheet), "--data-dir", str(data), "--sites", str(sites),
         "--embeddings", str(tmp_path / "emb"), "--out", str(out),
         "--expression-out", str(tmp_path / "expression.parquet")]
    )  # fmt: skip
    assert code == 0
    lines = records(capsys)
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["units"] == 4 and summary["out"] == str(out)
    assert summary["expression"]["normals_dropped"] == 1
    assert all(r["passed"] for r in lines if r["event"] == "check")
    assert [r["reason"] for r in lines if r["event"] == "excluded"] == ["no tumour RNA"]
    table = pd.read_parquet(out)
    assert list(table.columns[-4:]) == ["emb_0000", "emb_0001", "emb_0002", "emb_0003"]
    assert set(table["site_name"]) <= set(SITES.values())
    assert len(pd.read_parquet(tmp_path / "expression.parquet")) == 5


def test_reference_csv_tables_slide_level(shared_data, tmp_path, capsys):
    folder = shared_data / "tcga_brca"
    out = tmp_path / "t.parquet"
    code = run(
        ["--slides-csv", str(folder / "diagnostic_slides.csv"),
         "--values-csv", str(folder / "mki67_tpm_unstranded.csv"),
         "--unit", "slide", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    summary = records(capsys)[-1]
    assert (summary["units"], summary["sites"], summary["patients"]) == (1027, 38, 963)
    assert summary["catalogue_slides"] == 1133
    table = pd.read_parquet(out)
    assert len(table) == 1027 and np.isfinite(table["y"]).all()
    assert table["y"].var() == pytest.approx(1.11, abs=0.005)


def test_missing_inputs_fail_clearly(tmp_path):
    with pytest.raises(CohortError, match="--data-dir"):
        run(["--sample-sheet", str(tmp_path / "x.tsv"), "--out", str(tmp_path / "o.parquet")])
    with pytest.raises(CohortError, match="give --sample-sheet"):
        run(["--out", str(tmp_path / "o.parquet")])
    with pytest.raises(CohortError, match="cannot be read"):
        run(["--slides-csv", str(tmp_path / "nope.csv"), "--values-csv", "v.csv", "--out", "o"])
