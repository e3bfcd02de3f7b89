"""Synthetic STAR augmented gene-count files in the real GDC layout.

Layout (GDC_API.md 14.1, checked against a complete real GDC file): the pragma
``# gene-model: GENCODE v36``, a 9-column header, the four STAR summary rows ``N_unmapped``,
``N_multimapping``, ``N_noFeature``, ``N_ambiguous`` (empty name, type and normalised columns), then
one row per gene sorted by versioned ``gene_id``; integer counts; TPM, FPKM and FPKM-UQ printed
with exactly four decimals. The normalised columns use gdc-rnaseq-tool's formulas on the
``unstranded`` counts C and the union-exon length L:
TPM = (C/L) * 1e6 / sum(C/L); FPKM = C * 1e9 / (N * L) with N the protein-coding count total;
FPKM-UQ = C * 1e9 / (U * G * L) with U the 75th percentile of nonzero protein-coding autosomal
counts and G the number of protein-coding autosomal genes.

The gene set is smaller than GENCODE's 60,660 rows (so a file is ~0.2 MB, not 4 MB): the 101
real GENCODE v36 genes of ``data/star_counts/gencode_v36_real_genes.tsv`` (real ids, names, types,
chromosomes, exon lengths and a real expression profile) plus ``SYNTHETIC_GENES`` generated genes
whose ids lie in a block no Ensembl release uses (``ENSG00009...``) and whose names start with
``SYN`` so nobody mistakes them for biology. The synthetic genes carry most of the TPM mass, so the
real genes keep realistic magnitudes.

Pinned genes: a spec can pin a gene to an exact TPM (the real MKI67 value of a case). That gene's
count is derived from the TPM, and every other gene's TPM is computed from its count with the
tool's formula, so the file is self-consistent up to the rounding of one integer count.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.errors import CatalogueDataError
from histo_renn_dagster.emulator.seeded import stable_rng

GENE_MODEL = "GENCODE v36"
HEADER = (
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
)
SUMMARY_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")
REAL_GENES_TSV = "gencode_v36_real_genes.tsv"
SYNTHETIC_GENES = 2900
SYNTHETIC_ID_BASE = 9_000_000  # ENSG00009000000...: far above any Ensembl gene number
_NON_AUTOSOMES = frozenset({"chrX", "chrY", "chrM"})

# Synthetic gene types in roughly GENCODE v36 proportions: (type, share, median length,
# share never expressed, median log TPM of expressed genes).
_SYNTHETIC_TYPES = (
    ("protein_coding", 0.33, 3000, 0.10, 2.0),
    ("lncRNA", 0.28, 1400, 0.35, 0.0),
    ("processed_pseudogene", 0.17, 900, 0.60, -1.0),
    ("unprocessed_pseudogene", 0.05, 1200, 0.55, -1.0),
    ("misc_RNA", 0.04, 300, 0.70, -0.5),
    ("snRNA", 0.04, 150, 0.70, 0.0),
    ("miRNA", 0.03, 90, 0.80, -0.5),
    ("TEC", 0.02, 1500, 0.50, -1.0),
    ("snoRNA", 0.02, 120, 0.60, 0.5),
    ("transcribed_unprocessed_pseudogene", 0.02, 2000, 0.30, 0.0),
)
# Chromosomes weighted roughly by gene count; a few genes on X, Y and M as in GENCODE.
_CHROMOSOMES = (*(f"chr{i}" for i in range(1, 23)), "chrX", "chrY", "chrM")
_CHROMOSOME_WEIGHTS = np.array(
    [10, 7, 6, 4, 5, 5, 5, 4, 4, 4, 6, 5, 2, 4, 4, 4, 6, 2, 7, 3, 1.5, 2.5, 4, 0.3, 0.05]
)


@dataclass(frozen=True, eq=False)
class GeneTable:
    """The genes of every generated file, sorted by ``gene_id`` (numpy columns, read-only)."""

    gene_ids: tuple[str, ...]
    gene_names: tuple[str, ...]
    gene_types: tuple[str, ...]
    chromosomes: tuple[str, ...]
    exon_lengths: np.ndarray
    reference_tpm: np.ndarray
    protein_coding: np.ndarray = field(init=False)
    autosomal_coding: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.gene_ids)
        if not all(len(c) == n for c in (self.gene_names, self.gene_types, self.chromosomes)):
            raise CatalogueDataError("gene table columns differ in length")
        if list(self.gene_ids) != sorted(set(self.gene_ids)):
            raise CatalogueDataError("gene table ids must be unique and sorted")
        if self.exon_lengths.shape != (n,) or np.any(self.exon_lengths <= 0):
            raise CatalogueDataError("gene table exon lengths must be positive, one per gene")
        coding = np.array([t == "protein_coding" for t in self.gene_types])
        autosomal = np.array([c not in _NON_AUTOSOMES for c in self.chromosomes])
        object.__setattr__(self, "protein_coding", coding)
        object.__setattr__(self, "autosomal_coding", coding & autosomal)

    def index(self, gene_id: str) -> int:
        try:
            return self.gene_ids.index(gene_id)
        except ValueError:
            raise CatalogueDataError(
                f"gene {gene_id!r} is not in the emulator's gene table"
            ) from None


@dataclass(frozen=True)
class StarCountsSpec:
    """One file: ``seed_key`` (its file id) decides every draw; ``pinned_tpm`` maps versioned gene
    ids to TPMs the file must print exactly (after 4-decimal rounding)."""

    seed_key: str
    pinned_tpm: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, seed_key: str, pinned_tpm: Mapping[str, float]) -> StarCountsSpec:
        return cls(seed_key, tuple(sorted(pinned_tpm.items())))


def _synthetic_genes(count: int) -> list[tuple[str, str, str, str, int, float]]:
    rng = stable_rng("star-files", "synthetic-genes", str(count))
    shares = np.array([t[1] for t in _SYNTHETIC_TYPES])
    kinds = rng.choice(len(_SYNTHETIC_TYPES), size=count, p=shares / shares.sum())
    weights = _CHROMOSOME_WEIGHTS / _CHROMOSOME_WEIGHTS.sum()
    chromosomes = rng.choice(len(_CHROMOSOMES), size=count, p=weights)
    rows = []
    for i in range(count):
        gene_type, _, length, silent, log_tpm = _SYNTHETIC_TYPES[kinds[i]]
        exon_length = max(60, round(length * float(np.exp(rng.normal(0.0, 0.6)))))
        expressed = rng.random() >= silent
        tpm = float(np.exp(rng.normal(log_tpm, 1.5))) if expressed else 0.0
        version = 1 + int(rng.integers(0, 8))
        gene_id = f"ENSG{SYNTHETIC_ID_BASE + i:011d}.{version}"
        rows.append(
            (gene_id, f"SYN{i:05d}", gene_type, _CHROMOSOMES[chromosomes[i]], exon_length, tpm)
        )
    return rows


@functools.lru_cache(maxsize=4)
def load_gene_table(synthetic_genes: int = SYNTHETIC_GENES) -> GeneTable:
    """Real genes from the package data plus ``synthetic_genes`` generated ones, sorted."""
    path = resources.files("histo_renn_dagster.emulator") / "data" / "star_counts" / REAL_GENES_TSV
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t")
    real = [
        (
            r["gene_id"],
            r["gene_name"],
            r["gene_type"],
            r["chromosome"],
            int(r["exon_length"]),
            float(r["reference_tpm"]),
        )
        for r in reader
    ]
    synthetic = _synthetic_genes(synthetic_genes)
    # Give the synthetic genes the TPM mass of the ~60,500 GENCODE genes they stand in for, so
    # the real genes keep the magnitudes they have in a real file.
    scale = (1e6 - sum(r[5] for r in real)) / max(sum(r[5] for r in synthetic), 1e-12)
    rows = sorted(real + [(*r[:5], r[5] * scale) for r in synthetic])
    return GeneTable(
        gene_ids=tuple(r[0] for r in rows),
        gene_names=tuple(r[1] for r in rows),
        gene_types=tuple(r[2] for r in rows),
        chromosomes=tuple(r[3] for r in rows),
        exon_lengths=np.array([r[4] for r in rows], dtype=np.float64),
        reference_tpm=np.array([r[5] for r in rows], dtype=np.float64),
    )


def _draw_counts(rng: np.random.Generator, genes: GeneTable, assigned: int) -> np.ndarray:
    """Counts around the reference profile: per-file log-normal biology, then Poisson sampling."""
    profile = genes.reference_tpm * np.exp(rng.normal(0.0, 0.7, size=len(genes.gene_ids)))
    # A few silent genes leak a handful of reads, as in real libraries.
    leak = (genes.reference_tpm == 0) & (rng.random(len(genes.gene_ids)) < 0.15)
    profile = np.where(leak, rng.exponential(0.05, size=len(genes.gene_ids)), profile)
    expected = profile * genes.exon_lengths
    return rng.poisson(expected * (assigned / expected.sum())).astype(np.int64)


def normalise_counts(
    counts: np.ndarray,
    exon_lengths: np.ndarray,
    protein_coding: np.ndarray,
    autosomal_coding: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TPM, FPKM and FPKM-UQ of ``counts`` by gdc-rnaseq-tool's formulas (module docstring).

    The upper quartile is numpy's default (linear) 75th percentile: it reproduces the tool's own
    expected output for its test set exactly.
    """
    counts = np.asarray(counts, dtype=np.float64)
    rate = counts / exon_lengths
    tpm = rate * 1e6 / rate.sum()
    fpkm = counts * 1e9 / (counts[protein_coding].sum() * exon_lengths)
    upper = counts[autosomal_coding]
    quartile = float(np.percentile(upper[upper > 0], 75))
    fpkm_uq = counts * 1e9 / (quartile * autosomal_coding.sum() * exon_lengths)
    return tpm, fpkm, fpkm_uq


def star_counts_table(spec: StarCountsSpec, genes: GeneTable) -> dict[str, np.ndarray]:
    """The numeric columns of one file (and the summary-row counts under ``"summary"``)."""
    rng = stable_rng("star-counts", spec.seed_key)
    reads = int(rng.integers(35_000_000, 90_000_000))
    counts = _draw_counts(rng, genes, assigned=int(reads * rng.uniform(0.55, 0.75)))
    rate = counts / genes.exon_lengths
    pinned = {genes.index(gene_id): float(f"{tpm:.4f}") for gene_id, tpm in spec.pinned_tpm}
    pinned_mass = sum(pinned.values())
    if any(v < 0 for v in pinned.values()) or pinned_mass >= 1e6:
        raise CatalogueDataError(f"{spec.seed_key}: pinned TPMs {spec.pinned_tpm} are impossible")
    free = np.ones(len(counts), dtype=bool)
    free[list(pinned)] = False
    free_rate = rate[free].sum()
    tpm = np.zeros(len(counts))
    tpm[free] = rate[free] * (1e6 - pinned_mass) / free_rate
    for i, value in pinned.items():
        # Solve TPM_i = (C_i/L_i) * 1e6 / sum(C/L) for C_i given the other genes' rates.
        exact = value * genes.exon_lengths[i] * free_rate / (1e6 - pinned_mass)
        counts[i] = max(1, round(exact)) if value > 0 else 0
        tpm[i] = value
    _, fpkm, fpkm_uq = normalise_counts(
        counts, genes.exon_lengths, genes.protein_coding, genes.autosomal_coding
    )
    # Libraries are reverse-stranded like the real file: almost every read on the second strand,
    # a few more there than unstranded because strand resolves overlapping genes.
    first = rng.binomial(counts, rng.uniform(0.001, 0.02))
    second = counts - first + rng.binomial(counts, 0.02)
    summary = np.array(
        [
            [int(reads * rng.uniform(0.04, 0.12))] * 3,
            [int(reads * rng.uniform(0.05, 0.2))] * 3,
            [int(reads * f) for f in np.array([0.06, 0.4, 0.07]) * rng.uniform(0.7, 1.3, 3)],
            [int(reads * f) for f in np.array([0.05, 0.0005, 0.04]) * rng.uniform(0.7, 1.3, 3)],
        ],
        dtype=np.int64,
    )
    return {
        "unstranded": counts,
        "stranded_first": first,
        "stranded_second": second,
        "tpm_unstranded": tpm,
        "fpkm_unstranded": fpkm,
        "fpkm_uq_unstranded": fpkm_uq,
        "summary": summary,
    }


def render_star_counts(spec: StarCountsSpec, genes: GeneTable | None = None) -> bytes:
    """The file's bytes: same spec, same bytes."""
    genes = genes or load_gene_table()
    cols = star_counts_table(spec, genes)
    lines = [f"# gene-model: {GENE_MODEL}", "\t".join(HEADER)]
    for name, row in zip(SUMMARY_ROWS, cols["summary"], strict=True):
        lines.append(f"{name}\t\t\t{row[0]}\t{row[1]}\t{row[2]}\t\t\t")
    for i, gene_id in enumerate(genes.gene_ids):
        lines.append(
            f"{gene_id}\t{genes.gene_names[i]}\t{genes.gene_types[i]}\t"
            f"{cols['unstranded'][i]}\t{cols['stranded_first'][i]}\t{cols['stranded_second'][i]}\t"
            f"{cols['tpm_unstranded'][i]:.4f}\t{cols['fpkm_unstranded'][i]:.4f}\t"
            f"{cols['fpkm_uq_unstranded'][i]:.4f}"
        )
    return ("\n".join(lines) + "\n").encode("ascii")


def write_star_counts(path: Path, spec: StarCountsSpec) -> None:
    """Write the file at ``path`` atomically (temp file beside it, then rename)."""
    atomic_write_bytes(path, render_star_counts(spec))
