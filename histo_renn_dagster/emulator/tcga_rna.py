"""Which STAR-Counts files each real case has in the emulator, and their GDC documents.

Every case with a real MKI67 value gets one tumour file (vial A, frozen) printing exactly that
value. On top, decided per case by a fixed coin (``seeded.stable_unit`` of the case id), so the
matching rule of GDC_API.md 15.2 has real work to do:

* ``NORMAL_FRACTION`` of cases also get a Solid Tissue Normal (11A) file with a lower MKI67 value;
  cases with no tumour value get a normal-only file under the same coin (the trap of attaching a
  normal TPM to a tumour slide).
* ``EXTRA_ALIQUOT_FRACTION`` of valued cases get a second tumour aliquot with a different value,
  alternating between an FFPE re-sequencing of vial B on a later plate and a re-sequencing of the
  same vial A portion on an earlier plate. Under "non-FFPE, then vial A, then analyte H > R > T,
  then highest plate, then file_id" the original aliquot (carrying the real value) always wins.

A tumour aliquot's sample type follows the case's diagnostic slides when they are all of one
non-01 type (no such case has a value in the shipped tables, but the rule keeps the pairing honest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from histo_renn_dagster.emulator.seeded import stable_rng, stable_unit, stable_uuid
from histo_renn_dagster.emulator.tcga_brca_tables import CaseRecord

NORMAL_FRACTION = 0.10
EXTRA_ALIQUOT_FRACTION = 0.03
RNA_CENTER = "07"  # UNC, the TCGA RNA-seq centre
# Real TCGA-BRCA RNA-seq plate codes in processing order (later plates sort higher as text).
RNA_PLATES = (
    "A034", "A056", "A084", "A109", "A115", "A12P", "A137", "A144", "A169", "A17B",
    "A180", "A19W", "A21T", "A22K", "A22U", "A23N", "A24H", "A277", "A28M", "A31O",
    "A32P", "A33J", "A34F", "A35R", "A36F", "A41B", "A466", "A46K", "A489", "A49L",
)  # fmt: skip
TUMOUR_PORTIONS = ("11", "11", "11", "12", "13", "21", "31", "41")
SAMPLE_TYPES = {
    "01": ("Primary Tumor", "Tumor"),
    "06": ("Metastatic", "Tumor"),
    "11": ("Solid Tissue Normal", "Normal"),
}

Role = Literal["tumour", "normal", "extra_aliquot"]


@dataclass(frozen=True)
class RNAFileSpec:
    """One emulated STAR-Counts file: its aliquot barcode parts and the MKI67 TPM it prints."""

    case: CaseRecord
    role: Role
    sample_type_code: str
    vial: str
    portion: str
    plate: str
    is_ffpe: bool
    mki67_tpm: float
    analyte: str = "R"

    @property
    def sample_barcode(self) -> str:
        return f"{self.case.submitter_id}-{self.sample_type_code}{self.vial}"

    @property
    def aliquot_barcode(self) -> str:
        return f"{self.sample_barcode}-{self.portion}{self.analyte}-{self.plate}-{RNA_CENTER}"

    @property
    def file_id(self) -> str:
        return stable_uuid("star-file", self.aliquot_barcode)

    @property
    def file_name(self) -> str:
        # The prefix is the workflow job uuid, never the file id (GDC_API.md 14.1).
        job = stable_uuid("star-job", self.aliquot_barcode)
        return f"{job}.rna_seq.augmented_star_gene_counts.tsv"


def has_normal_file(case: CaseRecord) -> bool:
    return stable_unit("rna-normal", case.case_id) < NORMAL_FRACTION


def extra_aliquot_kind(case: CaseRecord) -> Literal["ffpe_later_plate", "earlier_plate"] | None:
    """The kind of second tumour aliquot a valued case has, or None."""
    if case.mki67 is None:
        return None
    coin = stable_unit("rna-extra-aliquot", case.case_id)
    if coin >= EXTRA_ALIQUOT_FRACTION:
        return None
    return "ffpe_later_plate" if coin < EXTRA_ALIQUOT_FRACTION / 2 else "earlier_plate"


def _tumour_sample_type(case: CaseRecord, slide_sample_types: Sequence[str]) -> str:
    kinds = set(slide_sample_types)
    return kinds.pop() if len(kinds) == 1 and "01" not in kinds else "01"


def _other_value(case: CaseRecord, purpose: str, real: float, low: float, high: float) -> float:
    """A TPM that prints differently from ``real``: real * exp(shift) with shift drawn in
    [low, high), its sign flipped half the time when the range is positive."""
    rng = stable_rng(purpose, case.case_id)
    shift = float(rng.uniform(low, high))
    if low >= 0 and rng.random() < 0.5:
        shift = -shift
    value = max(round(real * math.exp(shift), 4), 0.0001)
    if f"{value:.4f}" == f"{real:.4f}":
        value = round(value + 0.0001, 4)
    return value


def plan_rna_files(
    cases: Sequence[CaseRecord], slide_sample_types: Mapping[str, Sequence[str]] | None = None
) -> list[RNAFileSpec]:
    """The STAR-Counts files of ``cases``; ``slide_sample_types`` maps case id to the sample type
    codes of its diagnostic slides."""
    slide_sample_types = slide_sample_types or {}
    files: list[RNAFileSpec] = []
    for case in cases:
        rng = stable_rng("rna-aliquot", case.case_id)
        portion = TUMOUR_PORTIONS[int(rng.integers(len(TUMOUR_PORTIONS)))]
        # Leave room on both sides so an extra aliquot can sit on an earlier or a later plate.
        plate_index = int(rng.integers(3, len(RNA_PLATES) - 3))
        if case.mki67 is not None:
            code = _tumour_sample_type(case, slide_sample_types.get(case.case_id, ()))
            main = RNAFileSpec(
                case, "tumour", code, "A", portion, RNA_PLATES[plate_index], False, case.mki67
            )
            files.append(main)
            kind = extra_aliquot_kind(case)
            if kind == "ffpe_later_plate":
                value = _other_value(case, "rna-extra-value", case.mki67, 0.15, 0.7)
                later = RNA_PLATES[int(rng.integers(plate_index + 1, len(RNA_PLATES)))]
                files.append(
                    RNAFileSpec(case, "extra_aliquot", code, "B", "04", later, True, value)
                )
            elif kind == "earlier_plate":
                value = _other_value(case, "rna-extra-value", case.mki67, 0.15, 0.7)
                earlier = RNA_PLATES[int(rng.integers(0, plate_index))]
                files.append(
                    RNAFileSpec(case, "extra_aliquot", code, "A", portion, earlier, False, value)
                )
        if has_normal_file(case):
            # Normal breast tissue proliferates far less than tumour: a few TPM.
            base = case.mki67 if case.mki67 is not None else 8.0
            value = _other_value(case, "rna-normal-value", base, -2.3, -0.9)
            normal_plate = RNA_PLATES[int(rng.integers(0, len(RNA_PLATES)))]
            files.append(RNAFileSpec(case, "normal", "11", "A", "11", normal_plate, False, value))
    return files
