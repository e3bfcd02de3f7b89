"""Cohort table: units, y, exclusions with reasons, embeddings, splits, validation, real facts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from histo_renn_dagster.core.cohort.embeddings import directory_embeddings
from histo_renn_dagster.core.cohort.from_local import (
    expression_from_case_values,
    slides_from_catalogue,
)
from histo_renn_dagster.core.cohort.splits import SplitSpec
from histo_renn_dagster.core.cohort.table import (
    CohortSpec,
    TargetSpec,
    build_cohort_table,
    embedding_columns,
    target_value,
)
from histo_renn_dagster.core.cohort.validate import validate_cohort_table
from histo_renn_dagster.core.errors import CohortError
from histo_renn_dagster_tests.core.cohort.helpers import (
    SITE_NAMES,
    expression_rows,
    slide,
    write_embedding,
)

SLIDES = [
    slide("TCGA-A2-A25D-01Z-00-DX1"),
    slide("TCGA-A2-A25D-01Z-00-DX2"),
    slide("TCGA-BH-A0EA-01Z-00-DX1"),
    slide("TCGA-BH-A0EA-11A-01-TS1".replace("TS1", "DX1")),  # a normal-tissue slide
    slide("TCGA-E2-A1L7-01Z-00-DX1"),
    slide("TCGA-E2-A1L8-01Z-00-DX1"),
]
VALUES = {"TCGA-A2-A25D": 10.0, "TCGA-BH-A0EA": 20.0, "TCGA-E2-A1L7": 5.0, "TCGA-E2-A1L8": 7.5}


@pytest.fixture
def embedded(tmp_path):
    """Embeddings for every slide but E2-A1L8 (not materialized yet)."""
    for i, s in enumerate(SLIDES):
        if not s.case_barcode.endswith("A1L8"):
            write_embedding(tmp_path / f"{s.file_id}.h5", [i, i + 1.0, -i])
    return directory_embeddings(tmp_path)


def test_sample_units_average_their_slides(embedded):
    result = build_cohort_table(SLIDES, expression_rows(VALUES), CohortSpec(), embeddings=embedded)
    frame = result.frame.set_index("unit_id")
    assert list(frame.index) == ["TCGA-A2-A25D-01", "TCGA-BH-A0EA-01", "TCGA-E2-A1L7-01"]
    a2 = frame.loc["TCGA-A2-A25D-01"]
    assert a2["n_slides"] == 2 and list(a2["slide_barcodes"]) == [
        "TCGA-A2-A25D-01Z-00-DX1",
        "TCGA-A2-A25D-01Z-00-DX2",
    ]
    assert [a2[c] for c in embedding_columns(result.frame)] == [0.5, 1.5, -0.5]
    assert frame[embedding_columns(result.frame)].dtypes.eq(np.float32).all()
    assert a2["y"] == pytest.approx(math.log(10.0)) and a2["mki67_tpm"] == 10.0
    assert a2["site_name"] == "Walter Reed" and a2["sample_barcode"] == "TCGA-A2-A25D-01A"
    reasons = {e.item.split(" ")[0]: e.reason for e in result.exclusions}
    assert reasons == {
        "TCGA-BH-A0EA-11A-01-DX1": "not a tumour slide",
        "TCGA-E2-A1L8-01Z-00-DX1": "embedding not materialized",
    }
    s = result.summary
    assert s["not_embedded"] == 1 and s["slides_with_target"] == 5 and s["slides_in_table"] == 4
    assert s["slides_per_site"] == {"A2": 2, "BH": 1, "E2": 1}
    assert s["embedding_dim"] == 3 and s["sites"] == 3
    assert s["y_variance"] == pytest.approx(np.var(np.log([10.0, 20.0, 5.0]), ddof=1))
    assert all(not p for p in validate_cohort_table(result.frame).values())


def test_slide_units_reproduce_the_reference_rows(embedded):
    result = build_cohort_table(
        SLIDES, expression_rows(VALUES), CohortSpec(unit="slide"), embeddings=embedded
    )
    assert len(result.frame) == 4
    assert result.frame["file_ids"].map(len).eq(1).all()
    assert result.frame["unit_id"].tolist() == [ids[0] for ids in result.frame["file_ids"]]
    a2 = result.frame[result.frame["case_barcode"] == "TCGA-A2-A25D"]
    assert a2["y"].nunique() == 1 and a2["split_patient"].nunique() == 1


def test_splits_do_not_move_while_embeddings_arrive(tmp_path, embedded):
    partial = build_cohort_table(SLIDES, expression_rows(VALUES), CohortSpec(), embeddings=embedded)
    write_embedding(tmp_path / f"{SLIDES[-1].file_id}.h5", [9.0, 9.0, 9.0])
    full = build_cohort_table(SLIDES, expression_rows(VALUES), CohortSpec(), embeddings=embedded)
    assert len(full.frame) == 4 and full.summary["not_embedded"] == 0
    merged = partial.frame.merge(full.frame, on="unit_id")
    assert (merged["split_patient_x"] == merged["split_patient_y"]).all()
    assert (merged["split_site_x"] == merged["split_site_y"]).all()


def test_zero_and_bad_tpms_are_excluded_with_reasons_never_nan(embedded):
    values = {"TCGA-A2-A25D": 0.0, "TCGA-BH-A0EA": "abc", "TCGA-E2-A1L7": None}
    result = build_cohort_table(SLIDES, expression_rows(values), CohortSpec(), embeddings=embedded)
    assert result.frame.empty
    reasons = sorted({e.reason for e in result.exclusions})
    assert reasons == [
        "missing TPM",
        "no tumour RNA",
        "non-numeric TPM",
        "not a tumour slide",
        "zero TPM",
    ]
    kept = build_cohort_table(
        SLIDES,
        expression_rows(values),
        CohortSpec(target=TargetSpec(transform="log_pseudocount", pseudocount=1.0)),
        embeddings=embedded,
    )
    assert kept.frame["y"].tolist() == [0.0]  # log(0 + 1), the zero-TPM sample is kept


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(float("nan"), "missing TPM"), (-1.0, "negative or infinite TPM"), (True, "non-numeric TPM")],
)
def test_target_value_rejects(raw, reason):
    assert target_value(raw, TargetSpec()) == (None, None, reason)


def test_unknown_site_codes_are_excluded(embedded):
    odd = [*SLIDES, slide("TCGA-ZZ-A000-01Z-00-DX1"), slide("TCGA-A2-A0XX-01Z-00-DX1", site=None)]
    values = {**VALUES, "TCGA-ZZ-A000": 3.0, "TCGA-A2-A0XX": 3.0}
    result = build_cohort_table(
        odd, expression_rows(values), CohortSpec(), embeddings=None, site_names=SITE_NAMES
    )
    unknown = sorted(
        e.item.split(" ")[0] for e in result.exclusions if e.reason == "unknown site code"
    )
    assert unknown == ["TCGA-A2-A0XX-01Z-00-DX1", "TCGA-ZZ-A000-01Z-00-DX1"]
    assert not embedding_columns(result.frame) and len(result.frame) == 4


def test_global_problems_raise(tmp_path, embedded):
    with pytest.raises(CohortError, match="more than once"):
        build_cohort_table(
            [SLIDES[0], SLIDES[0]], expression_rows(VALUES), CohortSpec(), embeddings=None
        )
    normal = pd.concat([expression_rows(VALUES), expression_rows({"TCGA-A2-A25D": 1.0}, "11")])
    with pytest.raises(CohortError, match="non-tumour sample"):
        build_cohort_table(SLIDES, normal, CohortSpec(), embeddings=None)
    with pytest.raises(CohortError, match="twice"):
        doubled = pd.concat([expression_rows(VALUES), expression_rows({"TCGA-A2-A25D": 1.0})])
        build_cohort_table(SLIDES, doubled, CohortSpec(), embeddings=None)
    write_embedding(tmp_path / f"{SLIDES[-1].file_id}.h5", [1.0, 2.0])  # D = 2, others 3
    with pytest.raises(CohortError, match="different dimensions"):
        build_cohort_table(SLIDES, expression_rows(VALUES), CohortSpec(), embeddings=embedded)
    write_embedding(tmp_path / f"{SLIDES[-1].file_id}.h5", [1.0, 2.0, 3.0], backbone="resnet50")
    with pytest.raises(CohortError, match="different backbones"):
        build_cohort_table(SLIDES, expression_rows(VALUES), CohortSpec(), embeddings=embedded)
    with pytest.raises(CohortError, match="unit"):
        CohortSpec(unit="patient")


def test_malformed_and_empty_embeddings_exclude_their_slide(tmp_path, embedded):
    (tmp_path / f"{SLIDES[2].file_id}.h5").write_bytes(b"not hdf5")
    write_embedding(tmp_path / f"{SLIDES[4].file_id}.h5", [0.0, 0.0, 0.0], k=0)
    result = build_cohort_table(SLIDES, expression_rows(VALUES), CohortSpec(), embeddings=embedded)
    reasons = {e.item.split(" ")[0]: e.reason for e in result.exclusions}
    assert reasons["TCGA-BH-A0EA-01Z-00-DX1"] == "unreadable embedding"
    assert reasons["TCGA-E2-A1L7-01Z-00-DX1"] == "embedding without tiles"
    assert result.frame["unit_id"].tolist() == ["TCGA-A2-A25D-01"]


def test_validation_catches_broken_tables(embedded):
    frame = build_cohort_table(
        SLIDES, expression_rows(VALUES), CohortSpec(splits=SplitSpec(seed=1)), embeddings=embedded
    ).frame
    broken = frame.copy()
    broken.loc[1, "file_ids"] = list(broken.loc[0, "file_ids"])
    broken.loc[1, "case_barcode"] = broken.loc[0, "case_barcode"]
    broken.loc[1, "split_patient"] = "val" if broken.loc[0, "split_patient"] != "val" else "test"
    broken.loc[2, "y"] = -math.inf
    broken.loc[2, "site_name"] = None
    broken.loc[0, "sample_barcode"] = "TCGA-A2-A25D-11A"
    broken.loc[0, "emb_0001"] = np.nan
    problems = validate_cohort_table(broken)
    assert all(problems.values()), problems
    assert "TCGA-A2-A25D-11A" in problems["tumour_slides_paired_with_tumour_rna"][0]


def test_real_tables_reproduce_the_known_facts(shared_data):
    folder = shared_data / "tcga_brca"
    slides, rejected = slides_from_catalogue(folder / "diagnostic_slides.csv")
    expression = expression_from_case_values(folder / "mki67_tpm_unstranded.csv")
    result = build_cohort_table(slides, expression, CohortSpec(unit="slide"), embeddings=None)
    s = result.summary
    assert not rejected and s["catalogue_slides"] == 1133
    assert s["units"] == 1027 and s["sites"] == 38 and s["patients"] == 963
    assert s["y_variance"] == pytest.approx(1.11, abs=0.005)
    assert s["excluded"] == {"missing TPM": 105, "no tumour RNA": 1}  # the one 06 slide
    assert all(not p for p in validate_cohort_table(result.frame, embeddings=False).values())
    by_sample = build_cohort_table(slides, expression, CohortSpec(), embeddings=None)
    assert by_sample.summary["units"] == 963 and by_sample.summary["slides_in_table"] == 1027
