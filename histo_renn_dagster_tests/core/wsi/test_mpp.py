from __future__ import annotations

from pathlib import Path

import pytest

from histo_renn_dagster.core.errors import MissingResolutionError, ResolutionError
from histo_renn_dagster.core.wsi.mpp import load_mpp_overrides, resolve_mpp


def test_openslide_mpp_wins_over_tiff_and_power() -> None:
    props = {
        "openslide.mpp-x": "0.2527",
        "tiff.XResolution": "10000",
        "tiff.ResolutionUnit": "centimeter",
        "openslide.objective-power": "20",
    }
    mpp = resolve_mpp(props, slide_name="s.svs")
    assert (mpp.value, mpp.source, mpp.estimated) == (0.2527, "openslide", False)


def test_aperio_mpp_without_openslide_key() -> None:
    assert resolve_mpp({"aperio.MPP": "0.4990"}, slide_name="s").value == pytest.approx(0.499)


@pytest.mark.parametrize(
    ("unit", "res", "expected"),
    [("centimeter", "43826", 1e4 / 43826), ("inch", "50800", 0.5)],
)
def test_tiff_resolution_tags(unit: str, res: str, expected: float) -> None:
    mpp = resolve_mpp({"tiff.XResolution": res, "tiff.ResolutionUnit": unit}, slide_name="s")
    assert mpp.source == "tiff"
    assert mpp.value == pytest.approx(expected)


def test_tiff_unit_none_is_ignored_and_power_is_estimated() -> None:
    props = {"tiff.XResolution": "1", "tiff.ResolutionUnit": "none", "aperio.AppMag": "40"}
    mpp = resolve_mpp(props, slide_name="s")
    assert (mpp.value, mpp.source, mpp.estimated) == (0.25, "objective_power", True)
    assert resolve_mpp({"openslide.objective-power": "20"}, slide_name="s").value == 0.5


def test_missing_resolution_names_the_slide() -> None:
    with pytest.raises(MissingResolutionError, match=r"bare\.tif"):
        resolve_mpp({"tiff.ResolutionUnit": "none"}, slide_name="bare.tif")


def test_override_beats_metadata_and_is_checked() -> None:
    mpp = resolve_mpp({"openslide.mpp-x": "0.25"}, slide_name="s", override=0.5)
    assert (mpp.value, mpp.source) == (0.5, "override")
    with pytest.raises(ResolutionError, match="not > 0"):
        resolve_mpp({}, slide_name="s", override=-1)


@pytest.mark.parametrize("value", ["0.001", "25"])
def test_implausible_metadata_is_rejected(value: str) -> None:
    with pytest.raises(ResolutionError, match="plausible range"):
        resolve_mpp({"openslide.mpp-x": value}, slide_name="odd.svs")


def test_override_csv(tmp_path: Path) -> None:
    good = tmp_path / "mpp.csv"
    good.write_text("file_id,mpp\naaa,0.25\nbbb,0.5\n")
    assert load_mpp_overrides(good) == {"aaa": 0.25, "bbb": 0.5}
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("id,res\naaa,0.25\n")
    with pytest.raises(ResolutionError, match="file_id,mpp"):
        load_mpp_overrides(bad_header)
    bad_value = tmp_path / "v.csv"
    bad_value.write_text("file_id,mpp\naaa,zero\n")
    with pytest.raises(ResolutionError, match=r"v\.csv:2"):
        load_mpp_overrides(bad_value)
