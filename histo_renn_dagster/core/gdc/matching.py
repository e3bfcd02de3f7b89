"""Match diagnostic slides to the STAR-Counts file of the same tumour sample (GDC_API.md 15.2).

Join key: (case barcode, two-digit sample type code). The vial letter is ignored because DX slides
use the placeholder vial ``Z`` while RNA aliquots use ``A``/``B``/``C``. Only tumour samples
(codes 01-09) take part: a tumour slide is joined only to RNA of the same tumour type (01 with 01,
06 with 06) and never to a normal (10-19) or other non-tumour sample, so a case whose only RNA is
a Solid Tissue Normal gets *no* RNA rather than a normal TPM. Non-tumour RNA files are dropped
and counted; non-tumour slides are reported apart. Every slide of a sample (DX1, DX2, ...) shares
the sample's one chosen RNA file.

When one sample has several RNA files, the rule below picks one, deterministically and
independently of input order. Criteria, in order (the first that separates the best candidate
from the runner-up is recorded as the match's ``rule``):

1. ``non_ffpe``  frozen before FFPE: ``is_ffpe`` false / ``preservation_method`` not FFPE ranks
   first, unknown second, FFPE last (FFPE RNA is degraded; TCGA's B/C-vial re-sequencing set is
   FFPE).
2. ``vial``      vial letter ascending (A first: the original TCGA vial).
3. ``analyte``   analyte priority H > R > T, then any other analyte, then unknown.
4. ``plate``     highest plate first (plates are base-36 ids; a later plate is a re-sequencing).
5. ``file_id``   file_id ascending, a final tie-break that always decides.

A sample with one candidate records ``single_candidate``. RNA is grouped into lists per key;
nothing is ever keyed by case alone while iterating RNA (the last-one-wins bug of 15.2 step 6).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import pandas as pd

from histo_renn_dagster.core.errors import BarcodeError, MatchingError
from histo_renn_dagster.core.gdc.barcodes import is_normal_code, is_tumour_code, parse_barcode
from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile

CRITERIA = ("non_ffpe", "vial", "analyte", "plate", "file_id")
SINGLE_CANDIDATE = "single_candidate"
MATCH_RULE = (
    "join tumour slides to tumour RNA on (case barcode, sample type code), vial ignored, "
    "normal/non-tumour RNA never used; among several RNA files of one sample prefer "
    "non_ffpe (known non-FFPE > unknown > FFPE), then vial ascending, then analyte H > R > T, "
    "then highest plate, then file_id ascending"
)
_ANALYTE_PRIORITY = {"H": 0, "R": 1, "T": 2}

SampleKey = tuple[str, str]  # (case barcode, sample type code)
_R = TypeVar("_R", SlideFile, ExpressionFile)


@dataclass(frozen=True)
class SlideMatch:
    """A slide and the expression file chosen for its sample."""

    slide: SlideFile
    expression: ExpressionFile
    rule: str  # the criterion that decided (one of CRITERIA) or SINGLE_CANDIDATE
    n_candidates: int
    alternatives: tuple[str, ...] = ()  # file_ids not chosen, best first


@dataclass(frozen=True)
class MatchReport:
    """Outcome of ``match_slides_to_expression``; every tuple is sorted, so reports compare equal
    whatever the input order."""

    pairs: tuple[SlideMatch, ...]
    slides_without_rna: tuple[SlideFile, ...]  # tumour slides whose sample has no tumour RNA
    rna_without_slides: tuple[ExpressionFile, ...]  # tumour RNA of samples without a slide
    non_tumour_slides: tuple[SlideFile, ...]  # slides of normal/control samples: never matched
    normals_dropped: int  # RNA files of normal (10-19) samples, never used
    other_non_tumour_dropped: int  # RNA files of other non-tumour samples (controls, 20+)
    duplicates_resolved: int  # matched samples that had more than one RNA candidate
    rule: str = MATCH_RULE

    def to_frame(self) -> pd.DataFrame:
        """One row per input slide with its chosen RNA file (None when unmatched) and ``status``
        ``matched`` / ``no_rna`` / ``not_tumour``."""
        rows = [_row(p.slide, p, "matched") for p in self.pairs]
        rows += [_row(s, None, "no_rna") for s in self.slides_without_rna]
        rows += [_row(s, None, "not_tumour") for s in self.non_tumour_slides]
        frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
        frame = frame.sort_values(["case_barcode", "slide_barcode", "slide_file_id"])
        return frame.reset_index(drop=True)


_FRAME_COLUMNS = [
    "slide_file_id",
    "slide_file_name",
    "slide_barcode",
    "case_id",
    "case_barcode",
    "sample_barcode",
    "sample_type_code",
    "site_code",
    "site_name",
    "project_id",
    "status",
    "expression_file_id",
    "expression_file_name",
    "expression_md5",
    "expression_size",
    "rna_sample_barcode",
    "aliquot_barcode",
    "rule",
    "n_candidates",
]


def _row(slide: SlideFile, match: SlideMatch | None, status: str) -> dict[str, object]:
    rna = match.expression if match else None
    return {
        "slide_file_id": slide.file_id,
        "slide_file_name": slide.file_name,
        "slide_barcode": slide.slide_barcode,
        "case_id": slide.case_id,
        "case_barcode": slide.case_barcode,
        "sample_barcode": slide.sample_barcode,
        "sample_type_code": slide.sample_type_code,
        "site_code": slide.site_code,
        "site_name": slide.site_name,
        "project_id": slide.project_id,
        "status": status,
        "expression_file_id": rna.file_id if rna else None,
        "expression_file_name": rna.file_name if rna else None,
        "expression_md5": rna.md5 if rna else None,
        "expression_size": rna.size if rna else None,
        "rna_sample_barcode": rna.sample_barcode if rna else None,
        "aliquot_barcode": rna.aliquot_barcode if rna else None,
        "rule": match.rule if match else None,
        "n_candidates": match.n_candidates if match else 0,
    }


def _key(case_barcode: str, code: str) -> SampleKey:
    return case_barcode.upper(), code


def rank_expression(rna: ExpressionFile) -> tuple[object, ...]:
    """Sort key of the selection rule, one element per entry of CRITERIA (smaller is better)."""
    ffpe = {False: 0, None: 1, True: 2}[rna.is_ffpe_like]
    try:
        bc = parse_barcode(rna.aliquot_barcode or rna.sample_barcode)
    except BarcodeError:  # records are validated; this only guards hand-made ones
        bc = None
    vial = (0, bc.vial) if bc and bc.vial else (1, "")
    analyte = bc.analyte if bc else None
    analyte_rank = _ANALYTE_PRIORITY.get(analyte, 3) if analyte else 4
    plate = (0, -int(bc.plate, 36)) if bc and bc.plate else (1, 0)
    return (ffpe, vial, analyte_rank, plate, rna.file_id)


def choose_expression(
    candidates: Iterable[ExpressionFile],
) -> tuple[ExpressionFile, str, tuple[ExpressionFile, ...]]:
    """Best candidate by the rule, the deciding criterion, and the others (best first)."""
    ranked = sorted(candidates, key=rank_expression)
    if not ranked:
        raise MatchingError("choose_expression needs at least one candidate")
    if len(ranked) == 1:
        return ranked[0], SINGLE_CANDIDATE, ()
    best, runner_up = rank_expression(ranked[0]), rank_expression(ranked[1])
    decided = next(c for c, a, b in zip(CRITERIA, best, runner_up, strict=True) if a != b)
    return ranked[0], decided, tuple(ranked[1:])


def _unique(items: Iterable[_R], what: str) -> list[_R]:
    out = list(items)
    seen: set[str] = set()
    for item in out:
        if item.file_id in seen:
            raise MatchingError(f"{what} file {item.file_id} ({item.file_name}) is given twice")
        seen.add(item.file_id)
    return out


def match_slides_to_expression(
    slides: Iterable[SlideFile], expression: Iterable[ExpressionFile]
) -> MatchReport:
    """Pair each tumour slide with its sample's tumour RNA file by the rule in MATCH_RULE."""
    slide_list = _unique(slides, "slide")
    rna_list = _unique(expression, "expression")

    candidates: dict[SampleKey, list[ExpressionFile]] = {}
    normals = others = 0
    for rna in rna_list:
        if is_tumour_code(rna.sample_type_code):
            candidates.setdefault(_key(rna.case_barcode, rna.sample_type_code), []).append(rna)
        elif is_normal_code(rna.sample_type_code):
            normals += 1
        else:
            others += 1

    chosen: dict[SampleKey, tuple[ExpressionFile, str, tuple[ExpressionFile, ...]]] = {
        key: choose_expression(group) for key, group in candidates.items()
    }
    pairs: list[SlideMatch] = []
    without: list[SlideFile] = []
    non_tumour: list[SlideFile] = []
    used: set[SampleKey] = set()
    for slide in slide_list:
        if not is_tumour_code(slide.sample_type_code):
            non_tumour.append(slide)
            continue
        key = _key(slide.case_barcode, slide.sample_type_code)
        if key not in chosen:
            without.append(slide)
            continue
        best, rule, rest = chosen[key]
        used.add(key)
        pairs.append(
            SlideMatch(
                slide=slide,
                expression=best,
                rule=rule,
                n_candidates=len(candidates[key]),
                alternatives=tuple(r.file_id for r in rest),
            )
        )

    def slide_order(s: SlideFile) -> tuple[str, str, str]:
        return (s.case_barcode, s.slide_barcode, s.file_id)

    unmatched_rna = [r for key, group in candidates.items() if key not in used for r in group]
    return MatchReport(
        pairs=tuple(sorted(pairs, key=lambda p: slide_order(p.slide))),
        slides_without_rna=tuple(sorted(without, key=slide_order)),
        rna_without_slides=tuple(
            sorted(unmatched_rna, key=lambda r: (r.case_barcode, r.sample_barcode, r.file_id))
        ),
        non_tumour_slides=tuple(sorted(non_tumour, key=slide_order)),
        normals_dropped=normals,
        other_non_tumour_dropped=others,
        duplicates_resolved=sum(1 for key in used if len(candidates[key]) > 1),
    )
