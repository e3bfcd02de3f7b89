from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from histo_renn_dagster.core.errors import MatchingError
from histo_renn_dagster.core.gdc.barcodes import SAMPLE_TYPE_NAMES, parse_barcode
from histo_renn_dagster.core.gdc.matching import (
    CRITERIA,
    MATCH_RULE,
    SINGLE_CANDIDATE,
    MatchReport,
    choose_expression,
    match_slides_to_expression,
)
from histo_renn_dagster.core.gdc.records import ExpressionFile, SlideFile


def slide(barcode: str, file_id: str | None = None) -> SlideFile:
    bc = parse_barcode(barcode)
    assert bc.sample is not None and bc.sample_type_code is not None
    return SlideFile(
        file_id=file_id or f"slide-{barcode.lower()}",
        file_name=f"{barcode}.0B8E6F0A-5C4D-4A3B-9E2F-1D7C6B5A4E3D.svs",
        md5=None,
        size=None,
        state="released",
        case_id=None,
        case_barcode=bc.case,
        slide_barcode=barcode,
        sample_barcode=bc.sample,
        sample_type=SAMPLE_TYPE_NAMES.get(bc.sample_type_code),
        sample_type_code=bc.sample_type_code,
        site_code=bc.tss,
        site_name=None,
        project_id="TCGA-BRCA",
    )


def rna(aliquot: str, *, is_ffpe: bool | None = None, file_id: str | None = None) -> ExpressionFile:
    bc = parse_barcode(aliquot)
    assert bc.sample is not None and bc.sample_type_code is not None
    return ExpressionFile(
        file_id=file_id or f"rna-{aliquot.lower()}",
        file_name="x.rna_seq.augmented_star_gene_counts.tsv",
        md5=None,
        size=None,
        case_id=None,
        case_barcode=bc.case,
        sample_barcode=bc.sample,
        sample_type=SAMPLE_TYPE_NAMES.get(bc.sample_type_code),
        sample_type_code=bc.sample_type_code,
        aliquot_id=None,
        aliquot_barcode=aliquot,
        is_ffpe=is_ffpe,
        preservation_method=None if is_ffpe is None else ("FFPE" if is_ffpe else "OCT"),
        workflow_type="STAR - Counts",
        project_id="TCGA-BRCA",
    )


def _only_pair(report: MatchReport):
    assert len(report.pairs) == 1
    return report.pairs[0]


def test_single_tumour_match() -> None:
    report = match_slides_to_expression(
        [slide("TCGA-BH-A0EA-01Z-00-DX1")], [rna("TCGA-BH-A0EA-01A-11R-A115-07")]
    )
    pair = _only_pair(report)
    assert pair.expression.aliquot_barcode == "TCGA-BH-A0EA-01A-11R-A115-07"
    assert (pair.rule, pair.n_candidates, pair.alternatives) == (SINGLE_CANDIDATE, 1, ())
    assert report.slides_without_rna == report.rna_without_slides == ()
    assert (report.normals_dropped, report.duplicates_resolved) == (0, 0)
    assert report.rule == MATCH_RULE


def test_tumour_slide_never_gets_normal_rna() -> None:
    slides = [slide("TCGA-BH-A0EA-01Z-00-DX1"), slide("TCGA-E2-A1L7-01Z-00-DX1")]
    expression = [
        rna("TCGA-BH-A0EA-11A-33R-A115-07"),  # normal listed first: must not win
        rna("TCGA-BH-A0EA-01A-11R-A115-07"),
        rna("TCGA-E2-A1L7-11A-33R-A144-07"),  # this case has ONLY a normal RNA file
        rna("TCGA-E2-A1L7-10A-01R-A144-07"),
    ]
    report = match_slides_to_expression(slides, expression)
    pair = _only_pair(report)
    assert pair.slide.case_barcode == "TCGA-BH-A0EA"
    assert pair.expression.sample_type_code == "01"
    assert pair.n_candidates == 1  # the normal is not even a candidate
    assert [s.case_barcode for s in report.slides_without_rna] == ["TCGA-E2-A1L7"]
    assert report.normals_dropped == 3
    assert report.rna_without_slides == ()
    frame = report.to_frame()
    normal_ids = {e.file_id for e in expression if e.sample_type_code != "01"}
    assert not set(frame["expression_file_id"].dropna()) & normal_ids
    assert frame.set_index("case_barcode").at["TCGA-E2-A1L7", "status"] == "no_rna"


A0DB = [
    "TCGA-A7-A0DB-01A-11R-A00Z-07",
    "TCGA-A7-A0DB-01A-11R-A277-07",
    "TCGA-A7-A0DB-01C-02R-A277-07",
]
A0DC = ["TCGA-A7-A0DC-01A-11R-A00Z-07", "TCGA-A7-A0DC-01B-04R-A22O-07"]
A13D = [
    "TCGA-A7-A13D-01A-13R-A12P-07",
    "TCGA-A7-A13D-01A-13R-A277-07",
    "TCGA-A7-A13D-01B-04R-A277-07",
]


@pytest.mark.parametrize(
    ("aliquots", "chosen", "rule_unknown_ffpe", "rule_bc_ffpe"),
    [
        # vial A beats C; of the two A aliquots the later plate (A277 > A00Z) wins
        (A0DB, "TCGA-A7-A0DB-01A-11R-A277-07", "plate", "plate"),
        # vial A beats B; when B is known FFPE that is what decides first
        (A0DC, "TCGA-A7-A0DC-01A-11R-A00Z-07", "vial", "non_ffpe"),
        (A13D, "TCGA-A7-A13D-01A-13R-A277-07", "plate", "plate"),
    ],
)
def test_real_multi_aliquot_cases(
    aliquots: list[str], chosen: str, rule_unknown_ffpe: str, rule_bc_ffpe: str
) -> None:
    case = parse_barcode(aliquots[0]).case
    slides = [slide(f"{case}-01Z-00-DX1")]

    # FFPE status unknown (as in the 2018 /files output)
    report = match_slides_to_expression(slides, [rna(a) for a in aliquots])
    pair = _only_pair(report)
    assert pair.expression.aliquot_barcode == chosen
    assert pair.rule == rule_unknown_ffpe
    assert pair.n_candidates == len(aliquots)
    assert set(pair.alternatives) == {f"rna-{a.lower()}" for a in aliquots if a != chosen}
    assert report.duplicates_resolved == 1
    assert report.rna_without_slides == ()

    # the B/C-vial re-sequencing aliquots flagged FFPE, the A vials frozen
    flagged = [rna(a, is_ffpe=parse_barcode(a).vial != "A") for a in aliquots]
    pair = _only_pair(match_slides_to_expression(slides, flagged))
    assert pair.expression.aliquot_barcode == chosen
    assert pair.rule == rule_bc_ffpe


def test_non_ffpe_beats_vial_a() -> None:
    # an FFPE vial A loses to a frozen vial B: criterion 1 comes before criterion 2
    best, rule, _ = choose_expression(
        [
            rna("TCGA-A7-A0DC-01A-11R-A00Z-07", is_ffpe=True),
            rna("TCGA-A7-A0DC-01B-04R-A22O-07", is_ffpe=False),
        ]
    )
    assert (best.aliquot_barcode, rule) == ("TCGA-A7-A0DC-01B-04R-A22O-07", "non_ffpe")
    # known non-FFPE beats unknown, unknown beats FFPE
    best, rule, _ = choose_expression(
        [
            rna("TCGA-A7-A0DC-01A-11R-A00Z-07", is_ffpe=True),
            rna("TCGA-A7-A0DC-01B-04R-A22O-07"),
        ]
    )
    assert (best.aliquot_barcode, rule) == ("TCGA-A7-A0DC-01B-04R-A22O-07", "non_ffpe")


def test_analyte_priority_h_then_r_then_t() -> None:
    aliquots = ["TCGA-BH-A0EA-01A-11T-A115-07", "TCGA-BH-A0EA-01A-11R-A115-07"]
    best, rule, _ = choose_expression([rna(a) for a in aliquots])
    assert (best.aliquot_barcode, rule) == ("TCGA-BH-A0EA-01A-11R-A115-07", "analyte")
    aliquots.append("TCGA-BH-A0EA-01A-11H-A115-07")
    best, rule, rest = choose_expression([rna(a) for a in aliquots])
    assert (best.aliquot_barcode, rule) == ("TCGA-BH-A0EA-01A-11H-A115-07", "analyte")
    assert [r.aliquot_barcode for r in rest] == [
        "TCGA-BH-A0EA-01A-11R-A115-07",
        "TCGA-BH-A0EA-01A-11T-A115-07",
    ]


def test_plate_is_compared_as_base36() -> None:
    best, rule, _ = choose_expression(
        [rna("TCGA-BH-A0EA-01A-11R-A12P-07"), rna("TCGA-BH-A0EA-01A-11R-A12Z-07")]
    )
    assert (best.aliquot_barcode, rule) == ("TCGA-BH-A0EA-01A-11R-A12Z-07", "plate")


def test_file_id_is_the_final_tie_break() -> None:
    aliquot = "TCGA-BH-A0EA-01A-11R-A115-07"
    best, rule, _ = choose_expression(
        [rna(aliquot, file_id="ffff-2"), rna(aliquot, file_id="0000-1")]
    )
    assert (best.file_id, rule) == ("0000-1", "file_id")
    assert CRITERIA[-1] == "file_id"


def test_choose_needs_a_candidate() -> None:
    with pytest.raises(MatchingError):
        choose_expression([])


def test_metastatic_slide_matches_only_metastatic_rna() -> None:
    slides = [slide("TCGA-AC-A6IX-06Z-00-DX1"), slide("TCGA-AC-A6IX-01Z-00-DX1")]
    expression = [rna("TCGA-AC-A6IX-01A-11R-A32P-07"), rna("TCGA-AC-A6IX-06A-11R-A32P-07")]
    report = match_slides_to_expression(slides, expression)
    assert len(report.pairs) == 2
    for pair in report.pairs:
        assert pair.expression.sample_type_code == pair.slide.sample_type_code

    # only primary-tumour RNA: the metastatic slide gets nothing, the RNA is reported unused
    report = match_slides_to_expression([slides[0]], [expression[0]])
    assert report.pairs == ()
    assert [s.slide_barcode for s in report.slides_without_rna] == ["TCGA-AC-A6IX-06Z-00-DX1"]
    assert [r.sample_barcode for r in report.rna_without_slides] == ["TCGA-AC-A6IX-01A"]


def test_dx1_and_dx2_share_one_rna_file() -> None:
    slides = [
        slide("TCGA-A2-A25D-01Z-00-DX1"),
        slide("TCGA-A2-A25D-01Z-00-DX2"),
        slide("TCGA-PL-A8LV-01A-01-DX1"),
        slide("TCGA-PL-A8LV-01A-02-DX2"),  # slide on a portion, vial A
    ]
    expression = [
        rna("TCGA-A2-A25D-01A-11R-A169-07"),
        rna("TCGA-A2-A25D-01A-11R-A16F-07"),
        rna("TCGA-PL-A8LV-01A-11R-A41B-07"),
    ]
    report = match_slides_to_expression(slides, expression)
    assert len(report.pairs) == 4
    by_case: dict[str, set[str]] = {}
    for pair in report.pairs:
        by_case.setdefault(pair.slide.case_barcode, set()).add(pair.expression.file_id)
    assert by_case == {
        "TCGA-A2-A25D": {"rna-tcga-a2-a25d-01a-11r-a16f-07"},
        "TCGA-PL-A8LV": {"rna-tcga-pl-a8lv-01a-11r-a41b-07"},
    }
    # one resolved sample (A25D), counted once although two slides use it
    assert report.duplicates_resolved == 1
    assert report.rna_without_slides == ()


def test_non_tumour_slide_is_reported_apart() -> None:
    report = match_slides_to_expression(
        [slide("TCGA-BH-A0EA-11A-01-DX1")], [rna("TCGA-BH-A0EA-11A-33R-A115-07")]
    )
    assert report.pairs == () and report.slides_without_rna == ()
    assert [s.slide_barcode for s in report.non_tumour_slides] == ["TCGA-BH-A0EA-11A-01-DX1"]
    assert report.normals_dropped == 1
    assert report.to_frame()["status"].tolist() == ["not_tumour"]


def test_control_rna_is_counted_apart_from_normals() -> None:
    report = match_slides_to_expression([], [rna("TCGA-BH-A0EA-20A-01R-A115-07")])
    assert (report.normals_dropped, report.other_non_tumour_dropped) == (0, 1)


def test_file_given_twice_is_an_error() -> None:
    twice = [slide("TCGA-BH-A0EA-01Z-00-DX1"), slide("TCGA-BH-A0EA-01Z-00-DX1")]
    with pytest.raises(MatchingError, match="slide file slide-tcga-bh-a0ea-01z-00-dx1"):
        match_slides_to_expression(twice, [])
    rna_twice = [rna("TCGA-BH-A0EA-01A-11R-A115-07")] * 2
    with pytest.raises(MatchingError, match="given twice"):
        match_slides_to_expression([], rna_twice)


def _mixed_cohort() -> tuple[list[SlideFile], list[ExpressionFile]]:
    slides = [
        slide("TCGA-A7-A0DB-01Z-00-DX1"),
        slide("TCGA-A7-A0DC-01Z-00-DX1"),
        slide("TCGA-A7-A0DC-01Z-00-DX2"),
        slide("TCGA-A7-A13D-01Z-00-DX1"),
        slide("TCGA-BH-A0EA-01Z-00-DX1"),
        slide("TCGA-E2-A1L7-01Z-00-DX1"),
        slide("TCGA-AC-A6IX-06Z-00-DX1"),
    ]
    expression = [rna(a, is_ffpe=parse_barcode(a).vial != "A") for a in A0DB + A0DC + A13D]
    expression += [
        rna("TCGA-BH-A0EA-11A-33R-A115-07"),
        rna("TCGA-BH-A0EA-01A-11R-A115-07"),
        rna("TCGA-E2-A1L7-11A-33R-A144-07"),
        rna("TCGA-AC-A6IX-01A-11R-A32P-07"),
        rna("TCGA-D8-A1XK-01A-21R-A14D-07"),
    ]
    return slides, expression


def test_input_order_never_changes_the_result() -> None:
    slides, expression = _mixed_cohort()
    reference = match_slides_to_expression(slides, expression)
    assert len(reference.pairs) == 5
    assert reference.duplicates_resolved == 3
    rng = random.Random(20240611)
    for _ in range(25):
        s, e = slides[:], expression[:]
        rng.shuffle(s)
        rng.shuffle(e)
        report = match_slides_to_expression(iter(s), iter(e))
        assert report == reference
        assert report.to_frame().equals(reference.to_frame())


def test_to_frame() -> None:
    slides, expression = _mixed_cohort()
    frame = match_slides_to_expression(slides, expression).to_frame()
    assert len(frame) == len(slides)
    assert frame["slide_barcode"].is_unique
    counts = frame["status"].value_counts().to_dict()
    assert counts == {"matched": 5, "no_rna": 2}
    row = frame.set_index("slide_barcode").loc["TCGA-A7-A0DB-01Z-00-DX1"]
    assert row["aliquot_barcode"] == "TCGA-A7-A0DB-01A-11R-A277-07"
    assert row["rule"] == "plate"
    assert row["n_candidates"] == 3
    unmatched = frame[frame["status"] == "no_rna"]
    assert unmatched["expression_file_id"].isna().all()
    assert (unmatched["n_candidates"] == 0).all()
    assert list(frame["case_barcode"]) == sorted(frame["case_barcode"])


def test_real_brca_slide_list(shared_data: Path) -> None:
    """All 1,133 real TCGA-BRCA diagnostic slides against one 01A RNA file per case with a TPM."""
    data = shared_data / "tcga_brca"
    with (data / "diagnostic_slides.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    slides = [
        SlideFile.from_hit(
            {
                "file_id": r["file_id"],
                "file_name": r["file_name"],
                "cases": [
                    {
                        "case_id": r["case_id"],
                        "submitter_id": r["submitter_id"],
                        "project": {"project_id": r["project"]},
                        "tissue_source_site": {"code": r["tss_code"], "name": r["tss_name"]},
                    }
                ],
            }
        )
        for r in rows
    ]
    with (data / "mki67_tpm_unstranded.csv").open(newline="") as fh:
        cases = [r["submitter_id"] for r in csv.DictReader(fh) if r["MKI67_tpm_unst"]]
    expression = [rna(f"{case}-01A-11R-A000-07") for case in cases]
    report = match_slides_to_expression(slides, expression)

    matched_cases = {p.slide.case_barcode for p in report.pairs}
    assert matched_cases <= set(cases)
    assert all(p.expression.case_barcode == p.slide.case_barcode for p in report.pairs)
    assert all(p.expression.sample_type_code == "01" for p in report.pairs)
    # the one metastatic (06Z) slide never takes its case's primary-tumour RNA
    metastatic = [s for s in slides if s.sample_type_code == "06"]
    assert len(metastatic) == 1
    assert metastatic[0] in report.slides_without_rna or metastatic[0].case_barcode not in cases
    assert len(report.pairs) + len(report.slides_without_rna) == len(slides)
    assert {r.case_barcode for r in report.rna_without_slides} == set(cases) - matched_cases
