"""Render the whole report: every figure as a PNG and ``report.html`` under ``<lake>/reports/``.

The file set is fixed (``FIGURES``): a figure whose data is absent is still written, with a note
saying why, so a report never silently loses a file. Per-model figures (predictions, residual
histograms, caterpillar, seen/unseen metrics, gallery) show one minibatch size, the focus m:
``ReportSpec.focus_m`` when given, else the largest m with results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from histo_renn_dagster.core.errors import ReportError
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.reporting import (
    figures_over_m,
    figures_predictions,
    figures_sites,
    figures_training,
    gallery,
)
from histo_renn_dagster.core.reporting.html import write_report_html
from histo_renn_dagster.core.reporting.provenance import Provenance, gather_provenance, read_cohort
from histo_renn_dagster.core.reporting.reference import MlReference, fit_ml_reference
from histo_renn_dagster.core.reporting.results import ResultTables
from histo_renn_dagster.core.reporting.style import (
    label,
    message_figure,
    ordered,
    save_png,
    theme,
)

REPORT_HTML = "report.html"
NO_RESULTS = "no model results yet: materialize renn_model, then renn_results"


@dataclass(frozen=True)
class ReportSpec:
    focus_m: int | None = None
    gallery_slides: int = 4
    gallery_tiles: int = 4

    def __post_init__(self) -> None:
        if self.gallery_slides < 0 or self.gallery_tiles < 0:
            raise ReportError(
                f"gallery_slides ({self.gallery_slides}) and gallery_tiles ({self.gallery_tiles}) "
                "must be >= 0"
            )


@dataclass(frozen=True)
class FigureFile:
    key: str
    title: str
    caption: str
    path: Path


@dataclass(frozen=True)
class ReportResult:
    figures: tuple[FigureFile, ...]
    html_path: Path
    focus_m: int | None
    reference: MlReference | None
    provenance: Provenance
    problems: tuple[str, ...]


@dataclass(frozen=True)
class _Inputs:
    tables: ResultTables
    reference: MlReference | None
    m: int
    items: list[gallery.GalleryItem]
    gallery_model: str | None
    spec: ReportSpec


_Draw = Callable[[_Inputs], Figure]

FIGURES: tuple[tuple[str, str, str, _Draw], ...] = (
    (
        "loss_per_epoch",
        "Loss per epoch",
        "Training (solid) and validation (dashed) loss per epoch, one panel per minibatch size.",
        lambda i: figures_training.draw_loss_per_epoch(i.tables.history),
    ),
    (
        "sigma2_b_per_epoch",
        "Site variance per epoch",
        "Estimated site variance per epoch with the exact ML estimate and its 95% interval.",
        lambda i: figures_training.draw_variance_per_epoch(
            i.tables.history, "sigma2_b", i.reference
        ),
    ),
    (
        "sigma2_e_per_epoch",
        "Residual variance per epoch",
        "Estimated residual variance per epoch with the exact ML estimate and its 95% interval.",
        lambda i: figures_training.draw_variance_per_epoch(
            i.tables.history, "sigma2_e", i.reference
        ),
    ),
    (
        "best_val_loss_over_m",
        "Best validation loss over m",
        "Validation loss at each model's best epoch, and the exact validation NLL, over m.",
        lambda i: figures_over_m.draw_best_val_loss_over_m(i.tables.models, i.tables.history),
    ),
    (
        "best_sigma2_b_over_m",
        "Best site variance over m",
        "Best-epoch site variance per loss and m (boxes over runs), with the exact ML reference.",
        lambda i: figures_over_m.draw_best_variances_over_m(
            i.tables.models, "sigma2_b", i.reference
        ),
    ),
    (
        "best_sigma2_e_over_m",
        "Best residual variance over m",
        "Best-epoch residual variance per loss and m (boxes over runs), with the ML reference.",
        lambda i: figures_over_m.draw_best_variances_over_m(
            i.tables.models, "sigma2_e", i.reference
        ),
    ),
    (
        "mse_over_m",
        "Prediction MSE over m",
        "Test MSE at seen and unseen sites over m; the classical baselines dashed.",
        lambda i: figures_over_m.draw_mse_over_m(i.tables.models),
    ),
    (
        "prediction_scatter",
        "Observed vs predicted",
        "y against ŷ for the test units at the focus m, one panel per model.",
        lambda i: figures_predictions.draw_prediction_scatter(i.tables.predictions, i.m),
    ),
    (
        "residual_histograms",
        "Residual histograms",
        "Test residuals at the focus m per model, seen and unseen sites stacked.",
        lambda i: figures_predictions.draw_residual_histograms(i.tables.predictions, i.m),
    ),
    (
        "residual_boxes",
        "Residuals over m",
        "Test residuals per loss and m (runs pooled), and the classical baselines.",
        lambda i: figures_predictions.draw_residual_boxes(i.tables.predictions),
    ),
    (
        "site_caterpillar",
        "Site effects",
        "Site BLUPs with 95% intervals per random-effect loss, over the exact ML fit's.",
        lambda i: figures_sites.draw_site_caterpillar(
            i.tables.predictions, i.tables.models, i.reference, i.m
        ),
    ),
    (
        "seen_unseen_metrics",
        "Seen vs unseen sites",
        "Test metrics at seen and unseen sites for every loss and both classical baselines.",
        lambda i: figures_sites.draw_seen_unseen(i.tables.models, i.m),
    ),
    (
        "slide_gallery",
        "Slide gallery",
        "A few test slides from low to high y: thumbnail, sampled tiles, y and ŷ.",
        lambda i: gallery.draw_gallery(i.items, i.gallery_model, i.m, i.spec.gallery_tiles),
    ),
)


def choose_focus_m(models: pd.DataFrame, requested: int | None) -> int | None:
    present = sorted(int(m) for m in models["m"].unique())
    if requested is not None:
        if requested not in present:
            raise ReportError(f"focus_m {requested} has no results; available: {present}")
        return requested
    return present[-1] if present else None


def summary_table(models: pd.DataFrame, m: int | None) -> pd.DataFrame:
    """Mean over runs per model at ``m``: variances, ICC and test metrics (the page's table)."""
    columns = ["sigma2_b", "sigma2_e", "icc", "exact_nll_val", "seen_mse", "unseen_mse",
               "seen_pearson", "unseen_pearson"]  # fmt: skip
    at_m = models.loc[models["m"] == m] if m is not None else models.iloc[0:0]
    rows = []
    for model in ordered(set(at_m["loss_func"])):
        own = at_m.loc[at_m["loss_func"] == model]
        means = [
            float(np.nanmean(own[c])) if own[c].notna().any() else float("nan") for c in columns
        ]
        rows.append([label(model), len(own), *[round(v, 4) for v in means]])
    return pd.DataFrame(rows, columns=["model", "runs", *columns])


def render_report(
    tables: ResultTables, layout: LakeLayout, spec: ReportSpec | None = None
) -> ReportResult:
    """Write every figure and report.html to ``layout.reports_dir``."""
    spec = spec or ReportSpec()
    out = layout.reports_dir
    focus = choose_focus_m(tables.models, spec.focus_m)
    m = focus if focus is not None else -1
    reference = fit_ml_reference(tables.predictions)
    cohort = read_cohort(layout)
    provenance = gather_provenance(layout, cohort)
    file_ids = gallery.unit_file_ids(cohort)
    picked = gallery.pick_gallery_units(
        tables.predictions, m, spec.gallery_slides, gallery.preview_units(layout, file_ids)
    )
    items = gallery.load_gallery(picked, file_ids, layout, spec.gallery_tiles)
    inputs = _Inputs(tables, reference, m, items, gallery.gallery_model(tables.predictions), spec)
    problems = [f"m = {p.m}: {p.detail}" for p in tables.missing]
    problems += [p for item in items for p in item.problems]
    if reference is None:
        problems.append("too few units or sites for the exact ML reference")
    written = []
    for key, title, caption, draw in FIGURES:
        with theme():
            # no model at all: say so instead of drawing empty axes
            figure = message_figure(title, NO_RESULTS) if focus is None else draw(inputs)
            path = save_png(figure, out / f"{key}.png")
        written.append(FigureFile(key=key, title=title, caption=caption, path=path))
    html_path = write_report_html(
        out / REPORT_HTML,
        figures=[(f.path.name, f.title, f.caption) for f in written],
        provenance=provenance,
        reference=reference,
        configs=tables.configs,
        partitions=tables.partitions,
        missing=tables.missing,
        row_counts=tables.row_counts(),
        summary=summary_table(tables.models, focus),
        focus_m=focus,
        problems=problems,
    )
    return ReportResult(
        figures=tuple(written),
        html_path=html_path,
        focus_m=focus,
        reference=reference,
        provenance=provenance,
        problems=tuple(problems),
    )
