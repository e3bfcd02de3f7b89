"""Where the report's numbers come from: GDC data release, backbone and its weights, cohort size.

The data release is the one recorded beside the slide manifest. Backbone and weights come from
the attributes of the embedding files of the cohort table's slides (every file is read, so a
cohort mixing weight sources shows each with its slide count). Random weights mean the features
carry no learned morphology; the report then shows a warning banner.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import h5py
import pandas as pd

from histo_renn_dagster.core.errors import ManifestError
from histo_renn_dagster.core.gdc.manifest import manifest_data_release
from histo_renn_dagster.core.layout import LakeLayout

SLIDE_MANIFEST = "gdc_slide_manifest.txt"
COHORT_TABLE = "cohort_table"
_WEIGHT_KEYS = ("backbone", "weights", "weights_source", "weights_sha256")


@dataclass(frozen=True)
class WeightsRecord:
    """One backbone + weights combination and how many slides' embeddings used it."""

    backbone: str
    weights: str
    source: str
    sha256: str
    slides: int

    @property
    def random(self) -> bool:
        return self.weights == "random"


@dataclass(frozen=True)
class Provenance:
    data_release: str | None
    weights: tuple[WeightsRecord, ...]
    embeddings_read: int
    embeddings_missing: int
    cohort_units: int | None
    problems: tuple[str, ...] = ()

    @property
    def random_weights(self) -> bool:
        return any(w.random for w in self.weights)

    def as_record(self) -> dict[str, Any]:
        return {
            "data_release": self.data_release,
            "weights": [w.__dict__ for w in self.weights],
            "random_weights": self.random_weights,
            "embeddings_read": self.embeddings_read,
            "embeddings_missing": self.embeddings_missing,
            "cohort_units": self.cohort_units,
            "problems": list(self.problems),
        }


def read_cohort(layout: LakeLayout) -> pd.DataFrame | None:
    """The cohort table, or None when it has not been materialized."""
    path = layout.table_path(COHORT_TABLE)
    return pd.read_parquet(path) if path.is_file() else None


def _attr(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def gather_provenance(layout: LakeLayout, cohort: pd.DataFrame | None) -> Provenance:
    problems: list[str] = []
    try:
        release = manifest_data_release(layout.manifests_dir / SLIDE_MANIFEST)
    except ManifestError as exc:
        release, problems = None, [str(exc)]
    if release is None and not problems:
        problems.append(f"no data release recorded beside {layout.manifests_dir / SLIDE_MANIFEST}")
    file_ids: list[str] = []
    if cohort is not None and "file_ids" in cohort.columns:
        for ids in cohort["file_ids"]:
            file_ids.extend(
                str(i)
                for i in (ids if hasattr(ids, "__iter__") and not isinstance(ids, str) else [ids])
            )
    combos: Counter[tuple[str, ...]] = Counter()
    missing = 0
    for fid in sorted(set(file_ids)):
        path = layout.embedding_path(fid)
        try:
            with h5py.File(path, "r") as h5:
                combos[tuple(_attr(h5.attrs.get(k)) for k in _WEIGHT_KEYS)] += 1
        except OSError:
            missing += 1
    if missing:
        problems.append(f"{missing} embedding files of the cohort could not be read")
    weights = tuple(
        WeightsRecord(backbone=b, weights=w, source=s, sha256=h, slides=n)
        for (b, w, s, h), n in sorted(combos.items())
    )
    return Provenance(
        data_release=release,
        weights=weights,
        embeddings_read=sum(combos.values()),
        embeddings_missing=missing,
        cohort_units=None if cohort is None else len(cohort),
        problems=tuple(problems),
    )
