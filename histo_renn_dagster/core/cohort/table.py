"""The cohort table: one row per unit with ids, site, y, splits and the embedding as wide columns.

Join: a diagnostic slide meets the expression row of its own tumour sample (case barcode + sample
type code, vial ignored; GDC_API.md 15.2). The expression table holds tumour samples only, so a
normal TPM can never reach a tumour slide, and a slide of a non-tumour sample is excluded.

Unit (``CohortSpec.unit``): ``sample`` (default) is one row per tumour sample, whose embedding is
the unweighted mean of its slides' embeddings (each slide counts once, whatever its tile count),
because all slides of a sample share one y; ``slide`` is one row per slide, as the reference did.

y (``TargetSpec``): ``log`` (default, the reference's) is log(TPM) and a zero TPM excludes the row
with the reason "zero TPM" (log 0 is -inf, never written); ``log_pseudocount`` is
log(TPM + pseudocount) and keeps zeros; ``identity`` is the TPM itself.

Embeddings: a slide without an embedding file is left out and counted ("embedding not
materialized"), so the table can be refreshed while a backfill runs; a sample unit uses the slides
embedded so far (``file_ids`` lists them). Splits are computed on every slide that has RNA, a site
and a valid y, embedded or not, so they do not move as the backfill progresses. With
``embeddings=None`` no embedding columns are written (a targets-only table).

Problems of one item exclude it with a reason; problems of the whole table (duplicate slide ids,
embeddings of different dimensions or backbones, a patient at two sites) raise CohortError.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from histo_renn_dagster.core.atomic import atomic_path
from histo_renn_dagster.core.cohort.embeddings import EmbeddingSource, SlideEmbedding
from histo_renn_dagster.core.cohort.expression import MKI67, Exclusion, sample_key
from histo_renn_dagster.core.cohort.splits import (
    SplitSpec,
    split_patients_within_sites,
    split_sites,
)
from histo_renn_dagster.core.errors import CohortError, EmbeddingFileError
from histo_renn_dagster.core.gdc.barcodes import is_tumour_code
from histo_renn_dagster.core.gdc.records import SlideFile

UNITS = ("sample", "slide")
TRANSFORMS = ("log", "log_pseudocount", "identity")
EMBEDDING_PREFIX = "emb_"
NOT_EMBEDDED = "embedding not materialized"
META_COLUMNS = (
    "unit_id",
    "file_ids",
    "slide_barcodes",
    "n_slides",
    "case_id",
    "case_barcode",
    "sample_barcode",
    "sample_type_code",
    "expression_file_id",
    "aliquot_barcode",
    "site_code",
    "site_name",
    "tpm",  # renamed to TargetSpec.tpm_output, "mki67_tpm" by default
    "y",
    "split_patient",
    "split_site",
)
EXPRESSION_KEYS = ("case_barcode", "sample_type_code", "sample_barcode", "file_id")


def embedding_column(i: int) -> str:
    return f"{EMBEDDING_PREFIX}{i:04d}"


@dataclass(frozen=True)
class TargetSpec:
    """How y is made from the TPM of ``column`` (see the module docstring)."""

    column: str = MKI67.column
    transform: str = "log"
    pseudocount: float = 1.0

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise CohortError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if not (math.isfinite(self.pseudocount) and self.pseudocount > 0):
            raise CohortError(f"pseudocount must be a positive number, got {self.pseudocount!r}")

    @property
    def tpm_output(self) -> str:
        """Name of the TPM column in the cohort table: ``tpm_MKI67`` -> ``mki67_tpm``."""
        return self.column.removeprefix("tpm_").lower() + "_tpm"

    def describe(self) -> str:
        return {
            "log": "y = log(TPM); zero TPM rows excluded",
            "log_pseudocount": f"y = log(TPM + {self.pseudocount:g})",
            "identity": "y = TPM",
        }[self.transform]


@dataclass(frozen=True)
class CohortSpec:
    unit: str = "sample"
    target: TargetSpec = field(default_factory=TargetSpec)
    splits: SplitSpec = field(default_factory=SplitSpec)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise CohortError(f"unit must be one of {UNITS}, got {self.unit!r}")


def target_value(raw: object, spec: TargetSpec) -> tuple[float | None, float | None, str | None]:
    """``(tpm, y, None)`` or ``(None, None, reason)``: TPMs are checked here, never coerced."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None, None, "missing TPM"
    if isinstance(raw, (bool, np.bool_)):
        return None, None, "non-numeric TPM"
    try:
        tpm = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, None, "non-numeric TPM"
    if math.isnan(tpm):
        return None, None, "non-numeric TPM" if isinstance(raw, str) else "missing TPM"
    if not math.isfinite(tpm) or tpm < 0:
        return None, None, "negative or infinite TPM"
    if spec.transform == "identity":
        return tpm, tpm, None
    if spec.transform == "log_pseudocount":
        return tpm, math.log(tpm + spec.pseudocount), None
    if tpm == 0:
        return None, None, "zero TPM"
    return tpm, math.log(tpm), None


@dataclass(frozen=True)
class _Candidate:
    slide: SlideFile
    site_name: str
    expression: Mapping[str, object]
    tpm: float
    y: float


@dataclass(frozen=True)
class CohortTable:
    frame: pd.DataFrame
    exclusions: tuple[Exclusion, ...]
    summary: dict[str, Any]


def _expression_index(expression: pd.DataFrame, column: str) -> dict[str, dict[str, object]]:
    missing = [c for c in (*EXPRESSION_KEYS, column) if c not in expression.columns]
    if missing:
        raise CohortError(f"expression table lacks column(s) {', '.join(missing)}")
    index: dict[str, dict[str, object]] = {}
    for row in expression.to_dict("records"):
        code = str(row["sample_type_code"])
        if not is_tumour_code(code):
            raise CohortError(
                f"expression table holds non-tumour sample {row['sample_barcode']} (type {code}); "
                "it must list tumour samples only"
            )
        key = sample_key(str(row["case_barcode"]), code)
        if key in index:
            raise CohortError(f"expression table lists tumour sample {key} twice")
        index[key] = row
    return index


def _candidates(
    slides: Sequence[SlideFile],
    expression: Mapping[str, Mapping[str, object]],
    spec: TargetSpec,
    site_names: Mapping[str, str] | None,
) -> tuple[list[_Candidate], list[Exclusion]]:
    out: list[_Candidate] = []
    excluded: list[Exclusion] = []
    for slide in slides:
        item = f"{slide.slide_barcode} ({slide.file_id})"
        if not is_tumour_code(slide.sample_type_code):
            detail = f"slide of sample type {slide.sample_type_code} ({slide.sample_type})"
            excluded.append(Exclusion(item, "not a tumour slide", detail))
            continue
        key = sample_key(slide.case_barcode, slide.sample_type_code)
        row = expression.get(key)
        if row is None:
            excluded.append(Exclusion(item, "no tumour RNA", f"no expression row for {key}"))
            continue
        code = slide.site_code
        name = slide.site_name or (site_names or {}).get(code or "")
        known = code and (site_names is None or code in site_names)
        if not known or not name:
            detail = f"site code {code!r} is not a known tissue source site"
            excluded.append(Exclusion(item, "unknown site code", detail))
            continue
        tpm, y, reason = target_value(row[spec.column], spec)
        if reason is not None or tpm is None or y is None:
            detail = f"{key} ({row['file_id']}): {spec.column} = {row[spec.column]!r}"
            excluded.append(Exclusion(item, reason or "invalid TPM", detail))
            continue
        out.append(_Candidate(slide, name, row, tpm, y))
    return out, excluded


def _patient_sites(candidates: Sequence[_Candidate]) -> dict[str, str]:
    sites: dict[str, str] = {}
    for c in candidates:
        case, site = c.slide.case_barcode, str(c.slide.site_code)
        if sites.setdefault(case, site) != site:
            raise CohortError(f"patient {case} has slides at two sites: {sites[case]} and {site}")
    return sites


def _units(candidates: Sequence[_Candidate], unit: str) -> list[tuple[str, list[_Candidate]]]:
    groups: dict[str, list[_Candidate]] = {}
    for c in candidates:
        key = (
            c.slide.file_id
            if unit == "slide"
            else sample_key(c.slide.case_barcode, c.slide.sample_type_code)
        )
        groups.setdefault(key, []).append(c)
    return sorted(groups.items())


def _embed(
    units: list[tuple[str, list[_Candidate]]], embeddings: EmbeddingSource
) -> tuple[list[tuple[str, list[_Candidate], np.ndarray]], list[Exclusion]]:
    """Units with the mean of their embedded slides; slides without embedding are excluded."""
    out: list[tuple[str, list[_Candidate], np.ndarray]] = []
    excluded: list[Exclusion] = []
    found: list[SlideEmbedding] = []
    for unit_id, members in units:
        kept, vectors = [], []
        for c in members:
            item = f"{c.slide.slide_barcode} ({c.slide.file_id})"
            try:
                emb = embeddings.get(c.slide.file_id)
            except EmbeddingFileError as exc:
                excluded.append(Exclusion(item, "unreadable embedding", str(exc)))
                continue
            if emb is None:
                excluded.append(Exclusion(item, NOT_EMBEDDED, "no embedding file yet"))
                continue
            if emb.empty:
                detail = "the embedding has no tiles (no tissue found on the slide)"
                excluded.append(Exclusion(item, "embedding without tiles", detail))
                continue
            found.append(emb)
            kept.append(c)
            vectors.append(emb.mean.astype(np.float64))
        if kept:
            out.append((unit_id, kept, np.mean(vectors, axis=0).astype(np.float32)))
    dims = Counter(e.mean.shape[0] for e in found)
    if len(dims) > 1:
        odd = [e.file_id for e in found if e.mean.shape[0] != dims.most_common(1)[0][0]][:5]
        raise CohortError(
            f"slide embeddings have different dimensions {dict(dims)}; e.g. {odd} differ from "
            "the rest: re-embed them with the same backbone"
        )
    backbones = Counter(e.backbone for e in found)
    if len(backbones) > 1:
        raise CohortError(
            f"slide embeddings come from different backbones {dict(backbones)}: re-embed them "
            "with one backbone"
        )
    return out, excluded


def _row(unit_id: str, members: Sequence[_Candidate], splits: Mapping[str, dict[str, str]]):
    first = members[0]
    case = first.slide.case_barcode
    return {
        "unit_id": unit_id,
        "file_ids": [c.slide.file_id for c in members],
        "slide_barcodes": [c.slide.slide_barcode for c in members],
        "n_slides": len(members),
        "case_id": first.slide.case_id or _text(first.expression.get("case_id")),
        "case_barcode": case,
        "sample_barcode": first.expression["sample_barcode"],
        "sample_type_code": first.slide.sample_type_code,
        "expression_file_id": first.expression["file_id"],
        "aliquot_barcode": _text(first.expression.get("aliquot_barcode")),
        "site_code": first.slide.site_code,
        "site_name": first.site_name,
        "tpm": first.tpm,
        "y": first.y,
        "split_patient": splits["patient"][case],
        "split_site": splits["site"][case],
    }


def _text(value: object) -> str | None:
    """A text field of the expression table; missing values (None / NaN) become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def build_cohort_table(
    slides: Sequence[SlideFile],
    expression: pd.DataFrame,
    spec: CohortSpec,
    *,
    embeddings: EmbeddingSource | None,
    site_names: Mapping[str, str] | None = None,
) -> CohortTable:
    """Join slides, tumour expression, sites and embeddings into the cohort table.

    ``site_names`` (code -> name), when given, is the list of known sites: a slide whose site code
    is not in it is excluded; it also supplies names the slide records lack.
    """
    ids = Counter(s.file_id for s in slides)
    repeated = sorted(fid for fid, n in ids.items() if n > 1)
    if repeated:
        raise CohortError(f"slide file id(s) listed more than once: {repeated[:5]}")
    ordered = sorted(slides, key=lambda s: (s.case_barcode, s.slide_barcode, s.file_id))
    index = _expression_index(expression, spec.target.column)
    candidates, exclusions = _candidates(ordered, index, spec.target, site_names)
    patient_sites = _patient_sites(candidates)
    splits = {
        "patient": split_patients_within_sites(patient_sites, spec.splits),
        "site": split_sites(patient_sites, spec.splits),
    }
    units = _units(candidates, spec.unit)
    if embeddings is None:
        rows = [_row(uid, members, splits) for uid, members in units]
        frame = pd.DataFrame(rows, columns=list(META_COLUMNS))
        dim = None
    else:
        embedded, missing = _embed(units, embeddings)
        exclusions += missing
        rows = [_row(uid, members, splits) for uid, members, _ in embedded]
        frame = pd.DataFrame(rows, columns=list(META_COLUMNS))
        dim = int(embedded[0][2].shape[0]) if embedded else None
        if dim is not None:
            matrix = np.stack([vector for _, _, vector in embedded]).astype(np.float32)
            wide = pd.DataFrame(matrix, columns=[embedding_column(i) for i in range(dim)])
            frame = pd.concat([frame, wide], axis=1)
    frame = frame.astype({"n_slides": "int64", "tpm": "float64", "y": "float64"})
    frame = frame.rename(columns={"tpm": spec.target.tpm_output})
    summary = summarise(frame, slides, candidates, exclusions, spec, dim)
    return CohortTable(frame, tuple(exclusions), summary)


def summarise(
    frame: pd.DataFrame,
    slides: Sequence[SlideFile],
    candidates: Sequence[_Candidate],
    exclusions: Sequence[Exclusion],
    spec: CohortSpec,
    dim: int | None,
) -> dict[str, Any]:
    reasons = Counter(e.reason for e in exclusions)
    in_table = frame.explode("file_ids") if len(frame) else frame
    per_site = Counter(in_table["site_code"]) if len(frame) else Counter()
    y = frame["y"].to_numpy(dtype=np.float64)
    return {
        "unit": spec.unit,
        "target": spec.target.describe(),
        "catalogue_slides": len(slides),
        "tumour_slides": sum(1 for s in slides if is_tumour_code(s.sample_type_code)),
        "slides_with_target": len(candidates),
        "slides_in_table": len(in_table),
        "units": len(frame),
        "patients": len(set(frame["case_barcode"])),
        "sites": len(set(frame["site_code"])),
        "slides_per_site": {str(k): v for k, v in sorted(per_site.items())},
        "y_mean": float(y.mean()) if len(y) else None,
        "y_variance": float(y.var(ddof=1)) if len(y) > 1 else None,
        "embedding_dim": dim,
        "not_embedded": reasons.get(NOT_EMBEDDED, 0),
        "excluded": dict(sorted(reasons.items())),
        "split_patient": _counts(frame, "split_patient"),
        "split_site": _counts(frame, "split_site"),
        "seed": spec.splits.seed,
    }


def _counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    counts = Counter(frame[column])
    return {s: counts[s] for s in ("train", "val", "test")}


def embedding_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if str(c).startswith(EMBEDDING_PREFIX)]


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a Parquet table atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path
