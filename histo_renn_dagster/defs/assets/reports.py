"""Result and report assets: the flat RENN result tables and every analysis figure, in the UI."""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

import dagster as dg
from pydantic import Field

from histo_renn_dagster.core.reporting.report import ReportSpec, render_report
from histo_renn_dagster.core.reporting.results import (
    KINDS,
    collect_results,
    read_results,
    results_version,
    write_results,
)
from histo_renn_dagster.core.wsi.images import image_data_uri
from histo_renn_dagster.defs.automation import settled_refresh
from histo_renn_dagster.defs.partitions import MINIBATCH_SIZES
from histo_renn_dagster.defs.resources import LayoutResource

RENN_MODEL = dg.AssetKey("renn_model")
RENN_RESULTS = dg.AssetKey("renn_results")
PREVIEW_SIDE_PX = 900  # the UI shows metadata images at about this width; text stays legible


@dg.asset(
    group_name="renn",
    kinds={"parquet"},
    deps=[dg.AssetDep(RENN_MODEL, partition_mapping=dg.AllPartitionMapping())],
    automation_condition=settled_refresh(require_all_deps=True),
)
def renn_results(context: dg.AssetExecutionContext, layout: LayoutResource) -> dg.MaterializeResult:
    """Flat Parquet results of every ``renn_model`` partition (one per minibatch size m).

    ``tables/renn_results_history.parquet``: per (loss, m, run, epoch) losses and variance
    estimates; ``renn_results_models.parquet``: per model best epoch, exact NLL, variance
    intervals, ICC, seen/unseen-site metrics, plus the two classical baselines;
    ``renn_results_predictions.parquet``: per model and unit y, f(x), BLUP, y_hat, residual, site
    and split. Sorted and typed the same way every time: unchanged inputs give identical tables.
    Minibatch sizes without model files are skipped and listed in ``missing_partitions``.
    """
    lake = layout.lake()
    tables = collect_results(lake, MINIBATCH_SIZES)
    for issue in tables.missing:
        context.log.warning(f"renn_model m={issue.m} not available: {issue.detail}")
    paths = write_results(tables, lake)
    counts = tables.row_counts()
    metadata = {
        "partitions": dg.MetadataValue.json(list(tables.partitions)),
        "missing_partitions": dg.MetadataValue.json(
            [{"m": i.m, "detail": i.detail} for i in tables.missing]
        ),
        "dagster/row_count": counts["models"],
        **{f"{kind}_rows": counts[kind] for kind in KINDS},
        **{f"{kind}_path": dg.MetadataValue.path(str(paths[kind])) for kind in KINDS},
        "preview": dg.MetadataValue.md(
            tables.models.head(12).to_markdown(index=False, floatfmt=".4g")
            if len(tables.models)
            else "(no model results yet)"
        ),
    }
    return dg.MaterializeResult(
        metadata=metadata, data_version=dg.DataVersion(results_version(tables))
    )


class ReportConfig(dg.Config):
    focus_m: int | None = Field(
        default=None,
        description="Minibatch size of the per-model figures; default the largest with results",
    )
    gallery_slides: int = Field(default=4, ge=0, description="Slides in the gallery")
    gallery_tiles: int = Field(default=4, ge=0, description="Tiles shown per gallery slide")


@dg.asset(
    group_name="reports",
    kinds={"html", "png"},
    deps=[RENN_RESULTS],
    automation_condition=settled_refresh(),
)
def renn_report(
    context: dg.AssetExecutionContext, config: ReportConfig, layout: LayoutResource
) -> dg.MaterializeResult:
    """Every figure of the analysis, regenerated from ``renn_results`` with matplotlib.

    PNGs and ``report.html`` (configuration, GDC data release, backbone and weights; a banner
    when the weights were random) go to ``<lake>/reports/``; each figure is also shown here.
    The cohort table, manifest sidecar, embeddings and tile previews are read for provenance and
    the slide gallery only (not declared as dependencies, so a new slide does not redraw the
    report before the models have been retrained on it).
    """
    lake = layout.lake()
    tables = read_results(lake, MINIBATCH_SIZES)
    spec = ReportSpec(
        focus_m=config.focus_m,
        gallery_slides=config.gallery_slides,
        gallery_tiles=config.gallery_tiles,
    )
    result = render_report(tables, lake, spec)
    for problem in result.problems:
        context.log.warning(problem)
    figures = {
        f.key: dg.MetadataValue.md(
            f"**{f.title}**: {f.caption}\n\n"
            f"![{f.title}]({image_data_uri(f.path, max_side=PREVIEW_SIDE_PX, quality=80)})"
        )
        for f in result.figures
    }
    provenance = result.provenance
    return dg.MaterializeResult(
        metadata={
            "report_html": dg.MetadataValue.path(str(result.html_path)),
            "figure_paths": dg.MetadataValue.json({f.key: str(f.path) for f in result.figures}),
            "focus_m": result.focus_m,
            "gdc_data_release": provenance.data_release or "unknown",
            "random_weights": provenance.random_weights,
            "weights": dg.MetadataValue.json([w.__dict__ for w in provenance.weights]),
            "ml_reference": dg.MetadataValue.json(
                result.reference.as_record() if result.reference else {}
            ),
            "problems": dg.MetadataValue.json(list(result.problems)),
            **figures,
        }
    )
