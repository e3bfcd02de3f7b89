"""`histo-renn embed` on one tile store, outside Dagster (the same core code as the asset)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from histo_renn_dagster import cli
from histo_renn_dagster.commands import embed
from histo_renn_dagster.core.errors import HistoRennError
from histo_renn_dagster.core.features import read_embedding
from histo_renn_dagster_tests.core.features.helpers import (
    TINY,
    TINY_DIM,
    register_tiny,
    write_tile_store,
)


def _embed(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    embed.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["embed", *argv])
    return args.handler(args)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    register_tiny()
    return write_tile_store(tmp_path / "store.h5", 5, slide_id="slide-x")


def test_embed_prints_one_json_summary(store, tmp_path, capsys) -> None:
    out = tmp_path / "emb.h5"
    argv = [str(store), "--out", str(out), "--backbone", TINY, "--weights", "random"]
    assert _embed([*argv, "--k", "3", "--seed", "4", "--device", "cpu"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    summary = json.loads(line)
    assert {"k", "dim", "backbone", "weights", "device", "seconds", "out"} <= summary.keys()
    assert (summary["k"], summary["dim"], summary["backbone"]) == (3, TINY_DIM, TINY)
    assert (summary["weights"], summary["device"], summary["out"]) == ("random", "cpu", str(out))
    first = read_embedding(out)
    assert first.attrs["seed"] == 4 and first.k == 3
    assert _embed([*argv, "--k", "3", "--seed", "4"]) == 0
    np.testing.assert_array_equal(read_embedding(out).features, first.features)
    assert _embed([*argv, "--k", "all"]) == 0
    assert read_embedding(out).k == 5


def test_embed_errors_are_named(store, tmp_path) -> None:
    with pytest.raises(HistoRennError, match="does not exist"):
        _embed([str(tmp_path / "none.h5"), "--out", str(tmp_path / "e.h5")])
    with pytest.raises(HistoRennError, match=r"weights file .*missing\.pth does not exist"):
        _embed(
            [
                str(store),
                "--out",
                str(tmp_path / "e.h5"),
                "--weights",
                str(tmp_path / "missing.pth"),
            ]
        )
    with pytest.raises(SystemExit):
        _embed([str(store), "--out", str(tmp_path / "e.h5"), "--k", "0"])
    assert not (tmp_path / "e.h5").exists()


@pytest.mark.skipif(embed not in cli.COMMANDS, reason="embed is not registered in cli.COMMANDS yet")
def test_cli_main_reports_errors_on_stderr(store, tmp_path, capsys) -> None:
    code = cli.main(["embed", str(store), "--out", str(tmp_path / "e.h5"), "--backbone", "vgg"])
    assert code == 1
    assert "histo-renn embed: error: unknown backbone 'vgg'" in capsys.readouterr().err
