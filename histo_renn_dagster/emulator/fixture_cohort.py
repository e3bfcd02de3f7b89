"""A small TCGA-BRCA-like cohort for tests: 6 diagnostic slides and 7 STAR-Counts files.

Shapes the matching code must handle (GDC_API.md 15.2):

* TCGA-A2-A25D has two diagnostic slides (DX1, DX2) and one tumour RNA file;
* TCGA-BH-A0EA has a Primary Tumor (01A) and a Solid Tissue Normal (11A) RNA file;
* TCGA-A7-A13D has two tumour aliquots: 01A-13R-A12P-07 (frozen) and 01B-04R-A277-07 (FFPE);
* TCGA-E2-A1L7 has a slide but no RNA; TCGA-D8-A1XK has RNA but no slide;
* six tissue source sites, one per case.

Slide bytes are deterministic pseudo-random payloads (64-300 KB, not real SVS); STAR files follow
the real layout (pragma, 9-column header, four ``N_`` rows, a few genes incl. MKI67, 4-decimal
normalised values). Everything derives from ``FIXTURE_SEED`` so ids, bytes and md5s are stable.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histo_renn_dagster.emulator.catalogue import Blob, BytesBlob, Catalogue, GeneratedBlob

FIXTURE_SEED = "histo-renn-fixture-v1"
DATA_RELEASE = "Data Release 45.0 - December 04, 2025"
PROJECT = {
    "project_id": "TCGA-BRCA",
    "name": "Breast Invasive Carcinoma",
    "program": {"name": "TCGA"},
}

SITES = {
    "A2": "Walter Reed",
    "A7": "Christiana Healthcare",
    "AO": "Memorial Sloan Kettering",
    "BH": "University of Pittsburgh",
    "D8": "Greater Poland Cancer Center",
    "E2": "Roswell Park",
}

# (slide barcode, slide-image UUID used in the file name)
SLIDES = (
    ("TCGA-A2-A25D-01Z-00-DX1", "41DADDB8-3E3F-4F8F-8BE7-C43F8FBCFD2B"),
    ("TCGA-A2-A25D-01Z-00-DX2", "0B8E6F0A-5C4D-4A3B-9E2F-1D7C6B5A4E3D"),
    ("TCGA-BH-A0EA-01Z-00-DX1", "9E4F7A21-2C3B-4D5E-8F60-7A1B2C3D4E5F"),
    ("TCGA-A7-A13D-01Z-00-DX1", "C1D2E3F4-A5B6-4C7D-8E9F-0A1B2C3D4E5F"),
    ("TCGA-E2-A1L7-01Z-00-DX1", "5A6B7C8D-9E0F-4A1B-8C2D-3E4F5A6B7C8D"),
    ("TCGA-AO-A0J6-01Z-00-DX1", "D4C3B2A1-F6E5-4D7C-9B8A-1F2E3D4C5B6A"),
)

# (aliquot barcode, is_ffpe)
RNA_ALIQUOTS = (
    ("TCGA-A2-A25D-01A-11R-A169-07", False),
    ("TCGA-BH-A0EA-01A-11R-A115-07", False),
    ("TCGA-BH-A0EA-11A-33R-A115-07", False),
    ("TCGA-A7-A13D-01A-13R-A12P-07", False),
    ("TCGA-A7-A13D-01B-04R-A277-07", True),
    ("TCGA-AO-A0J6-01A-11R-A034-07", False),
    ("TCGA-D8-A1XK-01A-21R-A14D-07", False),
)

_SAMPLE_TYPES = {"01": ("Primary Tumor", "Tumor"), "11": ("Solid Tissue Normal", "Normal")}

# (gene_id, gene_name, gene_type, union-exon length) sorted by gene_id like the real files.
_GENES = (
    ("ENSG00000000003.15", "TSPAN6", "protein_coding", 4535),
    ("ENSG00000000005.6", "TNMD", "protein_coding", 1476),
    ("ENSG00000000419.13", "DPM1", "protein_coding", 1207),
    ("ENSG00000082175.15", "PGR", "protein_coding", 13130),
    ("ENSG00000091831.24", "ESR1", "protein_coding", 10999),
    ("ENSG00000141510.18", "TP53", "protein_coding", 5729),
    ("ENSG00000141736.14", "ERBB2", "protein_coding", 7353),
    ("ENSG00000148773.14", "MKI67", "protein_coding", 12975),
    ("ENSG00000230368.2", "FAM41C", "lncRNA", 1826),
)


def stable_uuid(*parts: str) -> str:
    """A lowercase UUID4-shaped id derived from the seed and ``parts``."""
    digest = hashlib.sha256("|".join((FIXTURE_SEED, *parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def pseudo_random_bytes(label: str, size: int) -> bytes:
    return hashlib.shake_256(f"{FIXTURE_SEED}|{label}".encode()).digest(size)


def _draw(label: str, low: int, high: int) -> int:
    number = int.from_bytes(hashlib.sha256(f"{FIXTURE_SEED}|{label}".encode()).digest()[:8], "big")
    return low + number % (high - low + 1)


def _star_counts_text(label: str) -> str:
    """A tiny augmented STAR gene-counts file in the real layout (TPM/FPKM from the counts)."""
    counts = [
        0 if name == "TNMD" else _draw(f"{label}|{name}", 50, 20000) for _, name, _, _ in _GENES
    ]
    lengths = [g[3] for g in _GENES]
    rates = [c * 1e3 / length for c, length in zip(counts, lengths, strict=True)]
    coding = sum(c for c, g in zip(counts, _GENES, strict=True) if g[2] == "protein_coding")
    upper = sorted(c for c in counts if c > 0)[(3 * len([c for c in counts if c > 0])) // 4]
    lines = [
        "# gene-model: GENCODE v36",
        "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
        "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded",
    ]
    for name in ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"):
        value = _draw(f"{label}|{name}", 1_000_000, 9_000_000)
        split = (
            (value, value, value)
            if name in ("N_unmapped", "N_multimapping")
            else (
                value,
                _draw(f"{label}|{name}|1", 1_000_000, 25_000_000),
                _draw(f"{label}|{name}|2", 1_000_000, 25_000_000),
            )
        )
        lines.append(f"{name}\t\t\t{split[0]}\t{split[1]}\t{split[2]}\t\t\t")
    for (gene_id, name, gene_type, length), count, rate in zip(_GENES, counts, rates, strict=True):
        first = count // 2
        # The ~60k genes this tiny file leaves out carry most of the 1e6 TPM, so the listed
        # genes get realistic magnitudes (MKI67 in the single digits to tens).
        tpm = rate * 1e6 / (sum(rates) * 400)
        fpkm = count * 1e9 / (coding * 400 * length)
        fpkm_uq = count * 1e9 / (upper * 19029 * length)
        lines.append(
            f"{gene_id}\t{name}\t{gene_type}\t{count}\t{first}\t{count - first}\t"
            f"{tpm:.4f}\t{fpkm:.4f}\t{fpkm_uq:.4f}"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Case:
    submitter_id: str

    @property
    def case_id(self) -> str:
        return stable_uuid("case", self.submitter_id)

    @property
    def site(self) -> str:
        return self.submitter_id.split("-")[1]

    def document(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "submitter_id": self.submitter_id,
            "primary_site": "Breast",
            "disease_type": "Ductal and Lobular Neoplasms",
            "project": dict(PROJECT),
            "tissue_source_site": {
                "code": self.site,
                "name": SITES[self.site],
                "bcr_id": "NCH",
                "project": "Breast invasive carcinoma",
                "tissue_source_site_id": stable_uuid("tss", self.site),
            },
            "samples": samples,
        }


def _sample(submitter_id: str, *, is_ffpe: bool, portions: list[dict[str, Any]]) -> dict[str, Any]:
    code = submitter_id.split("-")[3][:2]
    sample_type, tissue_type = _SAMPLE_TYPES[code]
    return {
        "sample_id": stable_uuid("sample", submitter_id),
        "submitter_id": submitter_id,
        "sample_type": sample_type,
        "sample_type_id": code,
        "tissue_type": tissue_type,
        "tumor_descriptor": "Primary" if code == "01" else "Not Applicable",
        "specimen_type": "Solid Tissue",
        "is_ffpe": is_ffpe,
        "preservation_method": "FFPE" if is_ffpe else "OCT",
        "tumor_code": None,
        "portions": portions,
    }


def _common(label: str) -> dict[str, Any]:
    return {
        "state": "released",
        "access": "open",
        "acl": ["open"],
        "version": "1",
        "data_release": "32.0 - 45.0",
        "created_datetime": f"2021-1{_draw(label + '|m', 0, 2)}-0{_draw(label + '|d', 1, 9)}"
        "T10:00:00.000000-05:00",
        "updated_datetime": "2025-12-04T09:00:00.000000-05:00",
    }


def _slide_files() -> list[tuple[dict[str, Any], str, int]]:
    out = []
    for barcode, image_uuid in SLIDES:
        case = _Case("-".join(barcode.split("-")[:3]))
        sample_barcode = "-".join(barcode.split("-")[:4])
        portion = {
            "portion_id": stable_uuid("portion", barcode),
            "submitter_id": "-".join(barcode.split("-")[:5]),
            "slides": [{"slide_id": stable_uuid("slide", barcode), "submitter_id": barcode}],
        }
        doc = {
            "file_id": stable_uuid("file", barcode),
            "file_name": f"{barcode}.{image_uuid}.svs",
            "submitter_id": f"{barcode}_slide_image",
            "data_format": "SVS",
            "data_type": "Slide Image",
            "data_category": "Biospecimen",
            "experimental_strategy": "Diagnostic Slide",
            "type": "slide_image",
            **_common(barcode),
            "cases": [case.document([_sample(sample_barcode, is_ffpe=True, portions=[portion])])],
        }
        out.append((doc, barcode, _draw(f"size|{barcode}", 64 * 1024, 300 * 1024)))
    return out


def _rna_files() -> list[tuple[dict[str, Any], str]]:
    out = []
    for aliquot, is_ffpe in RNA_ALIQUOTS:
        tokens = aliquot.split("-")
        case = _Case("-".join(tokens[:3]))
        portion_barcode = "-".join(tokens[:4]) + "-" + tokens[4][:2]
        portion = {
            "portion_id": stable_uuid("portion", portion_barcode),
            "submitter_id": portion_barcode,
            "analytes": [
                {
                    "analyte_id": stable_uuid("analyte", "-".join(tokens[:5])),
                    "submitter_id": "-".join(tokens[:5]),
                    "aliquots": [
                        {"aliquot_id": stable_uuid("aliquot", aliquot), "submitter_id": aliquot}
                    ],
                }
            ],
        }
        sample = _sample("-".join(tokens[:4]), is_ffpe=is_ffpe, portions=[portion])
        job = stable_uuid("star-job", aliquot)
        doc = {
            "file_id": stable_uuid("file", aliquot),
            "file_name": f"{job}.rna_seq.augmented_star_gene_counts.tsv",
            "submitter_id": job,
            "data_format": "TSV",
            "data_type": "Gene Expression Quantification",
            "data_category": "Transcriptome Profiling",
            "experimental_strategy": "RNA-Seq",
            "type": "gene_expression",
            "platform": "Illumina",
            "analysis": {
                "analysis_id": stable_uuid("analysis", aliquot),
                "workflow_type": "STAR - Counts",
            },
            **_common(aliquot),
            "cases": [case.document([sample])],
        }
        out.append((doc, aliquot))
    return out


def _blob(cache_dir: Path | None, file_id: str, make: Callable[[], bytes]) -> Blob:
    if cache_dir is None:
        return BytesBlob(make(), file_id)

    def generate(path: Path) -> None:
        path.write_bytes(make())

    return GeneratedBlob(cache_dir / f"{file_id}.bin", generate)


def build_fixture_catalogue(cache_dir: Path | None = None) -> Catalogue:
    """The fixture cohort; blobs live in memory, or are generated once under ``cache_dir``."""
    files: list[dict[str, Any]] = []
    blobs: dict[str, Blob] = {}
    for doc, barcode, size in _slide_files():
        files.append(doc)
        blobs[doc["file_id"]] = _blob(
            cache_dir, doc["file_id"], lambda b=barcode, n=size: pseudo_random_bytes(b, n)
        )
    for doc, aliquot in _rna_files():
        files.append(doc)
        blobs[doc["file_id"]] = _blob(
            cache_dir, doc["file_id"], lambda a=aliquot: _star_counts_text(a).encode()
        )
    return Catalogue("fixture", DATA_RELEASE, files, blobs)
