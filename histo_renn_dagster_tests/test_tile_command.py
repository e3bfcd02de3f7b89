"""`histo-renn tile SLIDE --out STORE.h5 [--mpp MPP]` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from histo_renn_dagster import cli
from histo_renn_dagster.commands import tile
from histo_renn_dagster.core.wsi.store import TileStore
from histo_renn_dagster_tests.core.wsi.synthetic import tissue_image, write_pyramid

CMU = Path(__file__).resolve().parent / "data" / "slides" / "CMU-1-Small-Region.svs"
KEYS = {"tiles", "mpp0", "mpp_source", "effective_mpp", "seconds", "out"}


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run through cli.main whether or not cli.COMMANDS lists the tile command yet."""
    if tile not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, tile))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict], str]:
    code = cli.main(["tile", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_tiles_real_slide_and_prints_one_json_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmu.h5"
    code, records, _ = _run(capsys, str(CMU), "--out", str(out), "--previews", str(tmp_path / "p"))
    assert code == 0 and len(records) == 1
    (summary,) = records
    assert set(summary) == KEYS
    assert (summary["tiles"], summary["mpp0"], summary["mpp_source"]) == (1, 0.499, "openslide")
    assert summary["effective_mpp"] == 0.499 and summary["out"] == str(out)
    with TileStore(out) as store:
        assert len(store) == 1
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "mask_overlay.png",
        "thumbnail.png",
    ]


def test_mpp_override_on_a_slide_without_resolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tissue_image(1300, 1300, [(0, 0, 1196, 1196)])
    bare = write_pyramid(tmp_path / "bare.tif", img, downsamples=(1,), aperio=False)
    code, records, err = _run(capsys, str(bare), "--out", str(tmp_path / "a.h5"))
    assert code == 1 and records == []
    assert "histo-renn tile: error:" in err and "bare.tif" in err and "no resolution" in err
    assert not (tmp_path / "a.h5").exists()
    code, records, _ = _run(capsys, str(bare), "--out", str(tmp_path / "b.h5"), "--mpp", "0.25")
    assert code == 0
    (summary,) = records
    assert (summary["mpp_source"], summary["mpp0"], summary["effective_mpp"]) == (
        "override",
        0.25,
        0.5,
    )
    assert summary["tiles"] == 1  # 1196 level-0 px = one 598-px tile at 0.5 um/px


def test_text_file_fails_with_clear_message_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a slide\n")
    out = tmp_path / "out" / "n.h5"
    code, records, err = _run(capsys, str(text), "--out", str(out))
    assert code != 0 and records == []
    assert err.strip().splitlines()[-1] == (
        f"histo-renn tile: error: {text}: not a whole-slide image format OpenSlide can read"
    )
    assert not out.exists() and not list(tmp_path.glob("out/*"))


def test_bad_mpp_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tile", str(CMU), "--out", str(tmp_path / "x.h5"), "--mpp", "-1"])
    assert exit_info.value.code == 2
    assert "--mpp must be a positive number" in capsys.readouterr().err
