"""Microns-per-pixel resolution of a slide's level 0, with where the number came from.

Order of trust: an explicit per-slide override, the scanner's own MPP (``openslide.mpp-x`` or
``aperio.MPP``), the TIFF resolution tags, and last the objective power (flagged ``estimated``,
because 20x means 0.5 um/px only by convention).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from histo_renn_dagster.core.errors import MissingResolutionError, ResolutionError

MPP_RANGE = (0.05, 20.0)
"""Plausible level-0 resolutions in um/px; anything outside is a metadata error, not a slide."""

_UM_PER_UNIT = {"centimeter": 1e4, "inch": 25400.0}


@dataclass(frozen=True)
class Mpp:
    """Level-0 resolution in um/px and its provenance."""

    value: float
    source: str  # override | openslide | tiff | objective_power
    estimated: bool = False


def _positive_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _from_tiff_tags(properties: Mapping[str, str]) -> float | None:
    unit = str(properties.get("tiff.ResolutionUnit", "")).strip().lower()
    per_unit = _UM_PER_UNIT.get(unit)
    pixels_per_unit = _positive_float(properties.get("tiff.XResolution"))
    if per_unit is None or pixels_per_unit is None:
        return None  # unit "none" or missing tags carry no physical size
    return per_unit / pixels_per_unit


def _checked(value: float, source: str, slide_name: str, *, estimated: bool = False) -> Mpp:
    low, high = MPP_RANGE
    if not low <= value <= high:
        raise ResolutionError(
            f"slide {slide_name}: {source} resolution {value:g} um/px is outside the plausible "
            f"range {low:g}-{high:g} um/px; pass an mpp override if the metadata is wrong"
        )
    return Mpp(value=float(value), source=source, estimated=estimated)


def resolve_mpp(
    properties: Mapping[str, str], *, slide_name: str, override: float | None = None
) -> Mpp:
    """The level-0 um/px of a slide from its OpenSlide properties, or raise naming the slide."""
    if override is not None:
        value = _positive_float(str(override))
        if value is None:
            raise ResolutionError(f"slide {slide_name}: mpp override {override!r} is not > 0")
        return _checked(value, "override", slide_name)
    for key in ("openslide.mpp-x", "aperio.MPP"):
        value = _positive_float(properties.get(key))
        if value is not None:
            return _checked(value, "openslide", slide_name)
    value = _from_tiff_tags(properties)
    if value is not None:
        return _checked(value, "tiff", slide_name)
    for key in ("openslide.objective-power", "aperio.AppMag"):
        power = _positive_float(properties.get(key))
        if power is not None:
            # By convention a 20x scan is 0.5 um/px and 40x is 0.25 um/px.
            return _checked(10.0 / power, "objective_power", slide_name, estimated=True)
    raise MissingResolutionError(
        f"slide {slide_name}: no resolution found (expected openslide.mpp-x, aperio.MPP, TIFF "
        "XResolution with a centimeter/inch unit, or an objective power); pass an mpp override"
    )


def load_mpp_overrides(csv_path: str | Path) -> dict[str, float]:
    """Per-slide overrides from a CSV with header ``file_id,mpp``."""
    path = Path(csv_path)
    overrides: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"file_id", "mpp"} <= set(reader.fieldnames):
            raise ResolutionError(
                f"{path}: expected a header 'file_id,mpp', found {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            file_id = (row.get("file_id") or "").strip()
            value = _positive_float(row.get("mpp"))
            if not file_id or value is None:
                raise ResolutionError(
                    f"{path}:{line}: expected a file id and a positive mpp, found {row}"
                )
            low, high = MPP_RANGE
            if not low <= value <= high:
                raise ResolutionError(
                    f"{path}:{line}: mpp {value:g} for {file_id} is outside {low:g}-{high:g}"
                )
            if file_id in overrides and overrides[file_id] != value:
                raise ResolutionError(f"{path}:{line}: conflicting mpp values for {file_id}")
            overrides[file_id] = value
    return overrides
