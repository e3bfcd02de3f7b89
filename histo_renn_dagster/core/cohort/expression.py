"""The expression table: one row per tumour sample with the chosen STAR-Counts file and its TPMs.

Why not "one file per case": a case can have a Primary Tumor and a Solid Tissue Normal RNA file, and
some tumour samples have several aliquots (GDC_API.md 15.2). Files are grouped by tumour sample
(case barcode + sample type code, vial ignored, exactly like ``core.gdc.matching``), normals and
other non-tumour samples are dropped and counted, and one file per sample is chosen by
``matching.choose_expression`` (frozen before FFPE, vial A first, analyte H > R > T, latest plate,
file id). The criterion that decided is kept in the ``rule`` column.

A chosen file that cannot be read (truncated, non-numeric TPM, gene missing) excludes its sample
with the reason; it does not fall back to another aliquot, which would silently change the rule.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from histo_renn_dagster.core.errors import (
    CohortError,
    DownloadError,
    HistoRennError,
    MissingGeneError,
    STARCountsError,
)
from histo_renn_dagster.core.gdc.barcodes import is_normal_code, is_tumour_code
from histo_renn_dagster.core.gdc.matching import choose_expression
from histo_renn_dagster.core.gdc.records import ExpressionFile
from histo_renn_dagster.core.gdc.star_counts import gene_tpms, unversioned_gene_id

KNOWN_GENES: dict[str, str] = {
    "MKI67": "ENSG00000148773",
    "ERBB2": "ENSG00000141736",
    "ESR1": "ENSG00000091831",
    "PGR": "ENSG00000082175",
    "TP53": "ENSG00000141510",
}
"""Symbols accepted by name in a gene list, with their unversioned Ensembl ids (GDC_API.md 14.2)."""

_ENSEMBL_RE = re.compile(r"^ENSG\d{11}(\.\d+)?$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Gene:
    """A gene of interest: the symbol names its column, the unversioned id finds its row."""

    symbol: str
    gene_id: str

    @property
    def column(self) -> str:
        return f"tpm_{self.symbol}"


MKI67 = Gene("MKI67", KNOWN_GENES["MKI67"])


def resolve_genes(names: Iterable[str]) -> tuple[Gene, ...]:
    """MKI67 first, then each requested gene once.

    An entry is a known symbol (``ERBB2``), an Ensembl id (``ENSG00000141736[.14]``, column named
    by the id) or ``SYMBOL=ENSG...`` for any other gene.
    """
    genes = [MKI67]
    for raw in names:
        text = str(raw).strip()
        symbol, _, gene_id = text.partition("=")
        if not gene_id:
            if text.upper() in KNOWN_GENES:
                symbol, gene_id = text.upper(), KNOWN_GENES[text.upper()]
            elif _ENSEMBL_RE.fullmatch(text.upper()):
                gene_id = text.upper()
                symbol = unversioned_gene_id(gene_id)
            else:
                raise CohortError(
                    f"gene {text!r} is neither a known symbol ({', '.join(KNOWN_GENES)}), "
                    "an Ensembl id (ENSG...) nor SYMBOL=ENSG..."
                )
        if not _SYMBOL_RE.fullmatch(symbol) or not _ENSEMBL_RE.fullmatch(gene_id.upper()):
            raise CohortError(f"gene {text!r}: expected SYMBOL=ENSG<11 digits>[.version]")
        gene = Gene(symbol, unversioned_gene_id(gene_id.upper()))
        for other in genes:
            if other == gene:
                break
            if other.symbol == gene.symbol or other.gene_id == gene.gene_id:
                raise CohortError(f"gene {text!r} clashes with {other.symbol}={other.gene_id}")
        else:
            genes.append(gene)
    return tuple(genes)


@dataclass(frozen=True)
class Exclusion:
    """An item left out of a table: ``reason`` is a short category, ``detail`` the full message."""

    item: str
    reason: str
    detail: str


def sample_key(case_barcode: str, sample_type_code: str) -> str:
    """``TCGA-A7-A13D`` + ``01`` -> ``TCGA-A7-A13D-01``: a tumour sample, vial ignored."""
    return f"{case_barcode.upper()}-{sample_type_code}"


@dataclass(frozen=True)
class SampleChoice:
    """The RNA file chosen for one tumour sample, the deciding criterion and all candidates."""

    sample_key: str
    chosen: ExpressionFile
    rule: str
    candidates: tuple[ExpressionFile, ...]  # best first; candidates[0] is chosen


@dataclass(frozen=True)
class ExpressionSelection:
    samples: tuple[SampleChoice, ...]  # sorted by sample_key
    normals_dropped: int
    other_non_tumour_dropped: int

    @property
    def duplicates_resolved(self) -> int:
        return sum(1 for s in self.samples if len(s.candidates) > 1)

    @property
    def cases(self) -> int:
        return len({s.chosen.case_barcode for s in self.samples})


def select_tumour_expression(files: Iterable[ExpressionFile]) -> ExpressionSelection:
    """Group RNA files by tumour sample and choose one per sample (see module docstring)."""
    groups: dict[str, list[ExpressionFile]] = {}
    seen: set[str] = set()
    normals = others = 0
    for rna in files:
        if rna.file_id in seen:
            raise CohortError(f"expression file {rna.file_id} ({rna.file_name}) is listed twice")
        seen.add(rna.file_id)
        if is_tumour_code(rna.sample_type_code):
            key = sample_key(rna.case_barcode, rna.sample_type_code)
            groups.setdefault(key, []).append(rna)
        elif is_normal_code(rna.sample_type_code):
            normals += 1
        else:
            others += 1
    samples = []
    for key in sorted(groups):
        best, rule, rest = choose_expression(groups[key])
        samples.append(SampleChoice(key, best, rule, (best, *rest)))
    return ExpressionSelection(tuple(samples), normals, others)


class DownloadClient(Protocol):
    def download(
        self, file_id: str, dest_dir: str | Path, *, md5: str | None = None, size: int | None = None
    ) -> Any: ...

    def close(self) -> None: ...


def fetch_expression_files(
    files: Sequence[ExpressionFile],
    dest_dir: Path,
    client_factory: Callable[[], DownloadClient],
    *,
    workers: int = 4,
) -> dict[str, Path]:
    """Download (or find complete) each file; ``{file_id: path}``.

    STAR files are ~4 MB, so a small bounded pool hides latency. Each worker thread gets its own
    client (one HTTP session per thread). Every file is attempted; if any fails, DownloadError
    lists all that failed (the completed ones stay on disk and are skipped on the rerun).
    """
    if workers < 1:
        raise CohortError(f"workers must be at least 1, got {workers}")
    local = threading.local()
    clients: list[DownloadClient] = []
    lock = threading.Lock()

    def fetch(rna: ExpressionFile) -> tuple[str, Path | None, str | None]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = client_factory()
            with lock:
                clients.append(client)
        try:
            result = client.download(rna.file_id, dest_dir, md5=rna.md5, size=rna.size)
        except HistoRennError as exc:
            return rna.file_id, None, str(exc)
        return rna.file_id, Path(result.path), None

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="star") as pool:
            outcomes = list(pool.map(fetch, files))
    finally:
        for client in clients:
            client.close()
    failed = [(fid, why) for fid, path, why in outcomes if path is None]
    if failed:
        listed = "; ".join(f"{fid}: {why}" for fid, why in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        raise DownloadError(
            f"{len(failed)} of {len(files)} STAR-Counts files could not be downloaded: "
            f"{listed}{more}; rerun to resume"
        )
    return {fid: path for fid, path, _ in outcomes if path is not None}


EXPRESSION_COLUMNS = (
    "sample_key",
    "case_id",
    "case_barcode",
    "sample_barcode",
    "sample_type_code",
    "sample_type",
    "file_id",
    "file_name",
    "aliquot_id",
    "aliquot_barcode",
    "rule",
    "n_candidates",
    "alternatives",
)


@dataclass(frozen=True)
class ExpressionTable:
    frame: pd.DataFrame  # EXPRESSION_COLUMNS + one tpm_<symbol> column per gene
    genes: tuple[Gene, ...]
    exclusions: tuple[Exclusion, ...]
    selection: ExpressionSelection

    def summary(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for e in self.exclusions:
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
        return {
            "cases": int(self.frame["case_barcode"].nunique()),
            "tumour_samples": len(self.frame),
            "tumour_samples_listed": len(self.selection.samples),
            "normals_dropped": self.selection.normals_dropped,
            "other_non_tumour_dropped": self.selection.other_non_tumour_dropped,
            "duplicates_resolved": self.selection.duplicates_resolved,
            "excluded": reasons,
            "genes": {g.symbol: g.gene_id for g in self.genes},
        }


def _reason(exc: STARCountsError) -> str:
    if isinstance(exc, MissingGeneError):
        return "gene missing from STAR file"
    text = str(exc)
    if "truncated" in text:
        return "truncated STAR file"
    if "must be a finite non-negative number" in text or "must be a non-negative integer" in text:
        return "non-numeric or invalid value in STAR file"
    return "malformed STAR file"


def build_expression_table(
    selection: ExpressionSelection,
    paths: Mapping[str, Path],
    genes: Sequence[Gene],
) -> ExpressionTable:
    """Read the chosen file of every tumour sample; unreadable ones are excluded with a reason.

    Raises CohortError when samples were listed but not one file could be read (a global problem,
    e.g. every file lacks the gene because the wrong gene model was downloaded).
    """
    rows: list[dict[str, object]] = []
    exclusions: list[Exclusion] = []
    for choice in selection.samples:
        rna = choice.chosen
        path = paths.get(rna.file_id)
        if path is None or not Path(path).is_file():
            detail = f"STAR-Counts file {rna.file_id} ({rna.file_name}) is not on disk"
            exclusions.append(Exclusion(choice.sample_key, "STAR file not available", detail))
            continue
        try:
            tpms = gene_tpms(path, [g.gene_id for g in genes])
        except STARCountsError as exc:
            exclusions.append(Exclusion(choice.sample_key, _reason(exc), str(exc)))
            continue
        # gene_tpms validates every value; this guards the invariant the table promises.
        bad = [g for g in genes if not math.isfinite(tpms[g.gene_id]) or tpms[g.gene_id] < 0]
        if bad:
            detail = f"{path}: TPM of {bad[0].symbol} is {tpms[bad[0].gene_id]!r}"
            exclusions.append(Exclusion(choice.sample_key, "invalid TPM", detail))
            continue
        rows.append(
            {
                "sample_key": choice.sample_key,
                "case_id": rna.case_id,
                "case_barcode": rna.case_barcode,
                "sample_barcode": rna.sample_barcode,
                "sample_type_code": rna.sample_type_code,
                "sample_type": rna.sample_type,
                "file_id": rna.file_id,
                "file_name": rna.file_name,
                "aliquot_id": rna.aliquot_id,
                "aliquot_barcode": rna.aliquot_barcode,
                "rule": choice.rule,
                "n_candidates": len(choice.candidates),
                "alternatives": ",".join(c.file_id for c in choice.candidates[1:]),
                **{g.column: tpms[g.gene_id] for g in genes},
            }
        )
    if selection.samples and not rows:
        shown = "; ".join(f"{e.item}: {e.detail}" for e in exclusions[:3])
        raise CohortError(
            f"none of the {len(selection.samples)} tumour samples' STAR-Counts files could be "
            f"read: {shown}"
        )
    columns = [*EXPRESSION_COLUMNS, *(g.column for g in genes)]
    frame = pd.DataFrame(rows, columns=columns)
    frame["n_candidates"] = frame["n_candidates"].astype("int64")
    for g in genes:
        frame[g.column] = frame[g.column].astype("float64")
    return ExpressionTable(frame, tuple(genes), tuple(exclusions), selection)


def expression_files_from_frame(frame: pd.DataFrame) -> list[ExpressionFile]:
    """ExpressionFile records from a ``gdc_expression_manifest`` table (missing values -> None)."""
    return records_from_frame(frame, ExpressionFile)


def records_from_frame(frame: pd.DataFrame, cls: Any) -> list[Any]:
    """Rebuild frozen records (SlideFile / ExpressionFile) from a table of their fields."""
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise CohortError(
            f"table lacks column(s) {', '.join(missing)} needed for {cls.__name__} records"
        )
    out = []
    for row in frame[names].itertuples(index=False):
        values: dict[str, Any] = {n: _none_if_missing(v) for n, v in zip(names, row, strict=True)}
        if values.get("size") is not None:
            values["size"] = int(values["size"])
        out.append(cls(**values))
    return out


def _none_if_missing(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, np.generic):  # numpy scalars from typed columns -> plain Python
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value
