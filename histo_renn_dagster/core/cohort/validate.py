"""Invariants of the cohort and expression tables, as plain functions returning problems.

Each check returns a list of human-readable problems (empty = passes), so the Dagster asset checks
and the command line report the same findings. They read only the written table, never its inputs:
a table copied elsewhere can still be checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from histo_renn_dagster.core.cohort.table import EMBEDDING_PREFIX, embedding_column
from histo_renn_dagster.core.errors import BarcodeError
from histo_renn_dagster.core.gdc.barcodes import is_tumour_code, parse_barcode

SPLIT_COLUMNS = ("split_patient", "split_site")
_MAX_LISTED = 20


def _listed(problems: list[str]) -> list[str]:
    if len(problems) > _MAX_LISTED:
        return [*problems[:_MAX_LISTED], f"... and {len(problems) - _MAX_LISTED} more"]
    return problems


def duplicate_slide_ids(frame: pd.DataFrame) -> list[str]:
    """Every slide file id appears in exactly one row, once."""
    counts = Counter(str(fid) for ids in frame["file_ids"] for fid in ids)
    repeated = sorted(fid for fid, n in counts.items() if n > 1)
    return _listed([f"slide {fid} appears more than once" for fid in repeated])


def cases_in_several_splits(frame: pd.DataFrame) -> list[str]:
    """No patient (case) sits in two splits of the same split column; values are known splits."""
    problems = []
    for column in SPLIT_COLUMNS:
        bad_values = sorted(set(frame[column].dropna()) - {"train", "val", "test"})
        if bad_values or frame[column].isna().any():
            problems.append(f"{column} has values outside train/val/test: {bad_values or 'null'}")
        splits: dict[str, set[str]] = {}
        for case, split in zip(frame["case_barcode"], frame[column], strict=True):
            splits.setdefault(str(case), set()).add(str(split))
        problems += [
            f"case {c} is in several {column} splits" for c, s in splits.items() if len(s) > 1
        ]
    return _listed(problems)


def non_finite_y(frame: pd.DataFrame) -> list[str]:
    y = np.asarray(pd.to_numeric(frame["y"], errors="coerce"), dtype=np.float64)
    bad = frame.loc[~np.isfinite(y), "unit_id"].tolist()
    return _listed([f"unit {u} has a non-finite y" for u in bad])


def missing_sites(frame: pd.DataFrame) -> list[str]:
    """Every row has a site code and a site name."""
    problems = []
    for row in frame[["unit_id", "site_code", "site_name"]].itertuples(index=False):
        for column in ("site_code", "site_name"):
            value = getattr(row, column)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"unit {row.unit_id} has no {column}")
    return _listed(problems)


def embedding_dimension_problems(frame: pd.DataFrame) -> list[str]:
    """Embedding columns are emb_0000 ... emb_{D-1}, float32, and complete in every row."""
    columns = [c for c in frame.columns if str(c).startswith(EMBEDDING_PREFIX)]
    if not columns:
        return [] if frame.empty else ["table has no embedding columns"]
    expected = [embedding_column(i) for i in range(len(columns))]
    if columns != expected:
        return [f"embedding columns are not {expected[0]} ... {expected[-1]} in order"]
    problems = [
        f"{c} is {frame[c].dtype}, expected float32"
        for c in columns
        if frame[c].dtype != np.float32
    ]
    values = frame[columns].to_numpy(dtype=np.float64)
    incomplete = frame.loc[~np.isfinite(values).all(axis=1), "unit_id"].tolist()
    problems += [f"unit {u} has missing or non-finite embedding values" for u in incomplete]
    return _listed(problems)


def _pairing_problem(slide_barcode: str, sample_barcode: str) -> str | None:
    try:
        slide, sample = parse_barcode(slide_barcode), parse_barcode(sample_barcode)
    except BarcodeError as exc:
        return str(exc)
    if slide.case != sample.case:
        return f"slide {slide.text} is paired with another case's sample {sample.text}"
    for bc in (slide, sample):
        if bc.sample_type_code is None or not is_tumour_code(bc.sample_type_code):
            return f"slide {slide.text} is paired with non-tumour {bc.text}"
    if slide.sample_type_code != sample.sample_type_code:
        return f"slide {slide.text} is paired with sample {sample.text} of another type"
    return None


def non_tumour_pairs(frame: pd.DataFrame) -> list[str]:
    """Every slide is a tumour slide paired with RNA of the same case and tumour sample type."""
    problems = []
    for row in frame[["slide_barcodes", "sample_barcode"]].itertuples(index=False):
        for slide in row.slide_barcodes:
            problem = _pairing_problem(str(slide), str(row.sample_barcode))
            if problem:
                problems.append(problem)
    return _listed(problems)


COHORT_CHECKS: dict[str, Callable[[pd.DataFrame], list[str]]] = {
    "no_duplicate_slides": duplicate_slide_ids,
    "no_case_in_two_splits": cases_in_several_splits,
    "y_finite": non_finite_y,
    "sites_present": missing_sites,
    "embedding_dimension_constant": embedding_dimension_problems,
    "tumour_slides_paired_with_tumour_rna": non_tumour_pairs,
}


def validate_cohort_table(frame: pd.DataFrame, *, embeddings: bool = True) -> dict[str, list[str]]:
    """Problems per check; the embedding check is skipped for a targets-only table."""
    checks = dict(COHORT_CHECKS)
    if not embeddings:
        checks.pop("embedding_dimension_constant")
    return {name: check(frame) for name, check in checks.items()}


def expression_table_problems(frame: pd.DataFrame) -> list[str]:
    """One row per tumour sample; every row's sample is a tumour sample."""
    problems = []
    for key in frame.loc[frame["sample_key"].duplicated(), "sample_key"]:
        problems.append(f"tumour sample {key} has more than one row")
    for row in frame[["sample_key", "sample_type_code"]].itertuples(index=False):
        if not is_tumour_code(str(row.sample_type_code)):
            problems.append(f"{row.sample_key} is not a tumour sample ({row.sample_type_code})")
    return _listed(problems)
