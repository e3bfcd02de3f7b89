"""Cohort assets: the tumour expression table and the cohort table the models train on."""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

from collections.abc import Callable, Sequence

import dagster as dg
import pandas as pd
from pydantic import Field

from histo_renn_dagster.core.cohort.embeddings import FileEmbeddings
from histo_renn_dagster.core.cohort.expression import (
    Exclusion,
    build_expression_table,
    expression_files_from_frame,
    fetch_expression_files,
    records_from_frame,
    resolve_genes,
    select_tumour_expression,
)
from histo_renn_dagster.core.cohort.splits import SplitSpec
from histo_renn_dagster.core.cohort.table import CohortSpec, TargetSpec, build_cohort_table
from histo_renn_dagster.core.cohort.validate import COHORT_CHECKS, expression_table_problems
from histo_renn_dagster.core.gdc.matching import MATCH_RULE
from histo_renn_dagster.core.gdc.records import SlideFile
from histo_renn_dagster.defs.automation import settled_refresh
from histo_renn_dagster.defs.resources import GDCResource, LayoutResource

SLIDE_EMBEDDING = dg.AssetKey("slide_embedding")


class ExpressionConfig(dg.Config):
    genes: list[str] = Field(
        default_factory=lambda: ["ERBB2", "ESR1", "PGR"],
        description="Genes besides MKI67 (always included): known symbols (ERBB2, ESR1, PGR, "
        "TP53), Ensembl ids, or SYMBOL=ENSG... ; matched by unversioned id",
    )
    workers: int = Field(default=4, description="Parallel STAR-Counts downloads (bounded pool)")


class CohortConfig(dg.Config):
    unit: str = Field(default="sample", description="sample (mean of its slides) | slide")
    transform: str = Field(
        default="log",
        description="log (zero TPM rows excluded) | log_pseudocount | identity",
    )
    pseudocount: float = Field(default=1.0, description="Added to TPM by log_pseudocount")
    seed: int = Field(default=0, description="Seed of split_patient and split_site")
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    min_site_patients: int = Field(
        default=5, description="Sites with fewer patients stay wholly in train"
    )

    def spec(self) -> CohortSpec:
        return CohortSpec(
            unit=self.unit,
            target=TargetSpec(transform=self.transform, pseudocount=self.pseudocount),
            splits=SplitSpec(
                seed=self.seed,
                val_fraction=self.val_fraction,
                test_fraction=self.test_fraction,
                min_site_patients=self.min_site_patients,
            ),
        )


def _exclusion_metadata(exclusions: Sequence[Exclusion]) -> dg.JsonMetadataValue:
    return dg.MetadataValue.json(
        [{"item": e.item, "reason": e.reason, "detail": e.detail} for e in exclusions[:50]]
    )


@dg.asset(
    group_name="cohort",
    kinds={"parquet"},
    ins={"gdc_expression_manifest": dg.AssetIn()},
    automation_condition=settled_refresh(),
)
def expression_table(
    context: dg.AssetExecutionContext,
    config: ExpressionConfig,
    gdc_expression_manifest: pd.DataFrame,
    gdc: GDCResource,
    layout: LayoutResource,
) -> dg.Output[pd.DataFrame]:
    """One row per tumour sample: case, sample, the chosen STAR-Counts file, the rule, gene TPMs.

    Normal samples are dropped; among several RNA files of one sample the documented rule picks
    one. Files are downloaded (resumable, md5-verified) to ``lake/expression/<file_id>/``.
    """
    genes = resolve_genes(config.genes)
    selection = select_tumour_expression(expression_files_from_frame(gdc_expression_manifest))
    chosen = [s.chosen for s in selection.samples]
    context.log.info(f"{len(chosen)} tumour samples; fetching their STAR-Counts files")
    paths = fetch_expression_files(
        chosen, layout.lake().expression_dir, gdc.client, workers=config.workers
    )
    table = build_expression_table(selection, paths, genes)
    for e in table.exclusions:
        context.log.warning(f"excluded {e.item} ({e.reason}): {e.detail}")
    summary = table.summary()
    return dg.Output(
        table.frame,
        metadata={
            "cases": summary["cases"],
            "tumour_samples": summary["tumour_samples"],
            "normals_dropped": summary["normals_dropped"],
            "other_non_tumour_dropped": summary["other_non_tumour_dropped"],
            "duplicates_resolved": summary["duplicates_resolved"],
            "excluded": dg.MetadataValue.json(summary["excluded"]),
            "excluded_examples": _exclusion_metadata(table.exclusions),
            "genes": dg.MetadataValue.json(summary["genes"]),
            "rule": MATCH_RULE,
        },
    )


@dg.asset(
    group_name="cohort",
    kinds={"parquet"},
    ins={"gdc_slide_manifest": dg.AssetIn(), "expression_table": dg.AssetIn()},
    deps=[SLIDE_EMBEDDING],
    automation_condition=settled_refresh(),
)
def cohort_table(
    context: dg.AssetExecutionContext,
    config: CohortConfig,
    gdc_slide_manifest: pd.DataFrame,
    expression_table: pd.DataFrame,
    layout: LayoutResource,
) -> dg.Output[pd.DataFrame]:
    """One row per tumour sample (or slide): ids, site, y, splits and emb_0000... columns.

    Slides whose embedding is not materialized yet are left out and counted, so the table can be
    refreshed while the slide_embedding backfill runs.
    """
    slides: list[SlideFile] = records_from_frame(gdc_slide_manifest, SlideFile)
    lake = layout.lake()
    result = build_cohort_table(
        slides,
        expression_table,
        config.spec(),
        embeddings=FileEmbeddings(lake.embedding_path),
    )
    s = result.summary
    context.log.info(
        f"{s['units']} {s['unit']} rows from {s['slides_in_table']} slides at {s['sites']} sites; "
        f"{s['not_embedded']} slides not embedded yet"
    )
    return dg.Output(
        result.frame,
        metadata={
            "unit": str(s["unit"]),
            "target": str(s["target"]),
            "units": s["units"],
            "slides_in_table": s["slides_in_table"],
            "catalogue_slides": s["catalogue_slides"],
            "slides_with_target": s["slides_with_target"],
            "not_embedded": s["not_embedded"],
            "patients": s["patients"],
            "sites": s["sites"],
            "slides_per_site": dg.MetadataValue.json(s["slides_per_site"]),
            "y_mean": dg.MetadataValue.float(s["y_mean"]) if s["y_mean"] is not None else None,
            "y_variance": dg.MetadataValue.float(s["y_variance"])
            if s["y_variance"] is not None
            else None,
            "embedding_dim": s["embedding_dim"],
            "split_patient": dg.MetadataValue.json(s["split_patient"]),
            "split_site": dg.MetadataValue.json(s["split_site"]),
            "seed": s["seed"],
            "excluded": dg.MetadataValue.json(s["excluded"]),
            "excluded_examples": _exclusion_metadata(
                [e for e in result.exclusions if e.reason != "embedding not materialized"]
            ),
        },
    )


_CHECK_DESCRIPTIONS = {
    "no_duplicate_slides": "No slide file id appears twice",
    "no_case_in_two_splits": "No patient sits in two splits (split_patient, split_site)",
    "y_finite": "Every y is finite (no log(0) = -inf, no NaN)",
    "sites_present": "Every row has a site code and name",
    "embedding_dimension_constant": "Embedding columns emb_0000.. are complete float32 in every row",
    "tumour_slides_paired_with_tumour_rna": "Every slide is paired with tumour RNA of its sample",
}


def _cohort_check(
    name: str, check: Callable[[pd.DataFrame], list[str]]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=cohort_table, name=name, description=_CHECK_DESCRIPTIONS[name], blocking=True
    )
    def _check(cohort_table: pd.DataFrame) -> dg.AssetCheckResult:
        problems = check(cohort_table)
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"problems": dg.MetadataValue.json(problems), "rows": len(cohort_table)},
        )

    return _check


cohort_table_checks = [_cohort_check(name, check) for name, check in COHORT_CHECKS.items()]


@dg.asset_check(
    asset=expression_table,
    description="One row per tumour sample and no normal or other non-tumour sample",
    blocking=True,
)
def expression_table_tumour_only(expression_table: pd.DataFrame) -> dg.AssetCheckResult:
    problems = expression_table_problems(expression_table)
    return dg.AssetCheckResult(
        passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
    )


cohort_checks = [*cohort_table_checks, expression_table_tumour_only]
