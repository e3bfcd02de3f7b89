"""Per-epoch figures: training and validation loss, and the variance estimates, one panel per m.

Each line is the mean over runs (seeds) of one loss; the band around it spans the runs' minimum
and maximum, so a single odd seed stays visible. The variance figures draw the exact ML estimate
of the intercept-only mixed model and its 95% profile interval as a black dashed line and a grey
band.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from histo_renn_dagster.core.reporting.reference import MlReference
from histo_renn_dagster.core.reporting.results import NO_RANDOM_EFFECT
from histo_renn_dagster.core.reporting.style import (
    ML_COLOUR,
    colour,
    label,
    new_figure,
    note,
    ordered,
)

VARIANCE_UNIT = "(log TPM)²"
COMPONENTS = {
    "sigma2_b": (r"$\sigma^2_b$", "site (random-effect) variance"),
    "sigma2_e": (r"$\sigma^2_e$", "residual variance"),
}


def panel_grid(count: int, ncols: int = 3, width: float = 12.0, row_height: float = 3.3):
    """A figure with ``count`` panels on a grid of ``ncols`` columns; unused cells are hidden."""
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    fig = new_figure(width, row_height * nrows + 0.9)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, list(axes[:count])


def _band(ax: Axes, frame: pd.DataFrame, column: str, colour_: str, style: str) -> None:
    per_epoch = frame.groupby("epoch")[column].agg(["mean", "min", "max"]).dropna()
    if per_epoch.empty:
        return
    x = per_epoch.index.to_numpy()
    ax.plot(x, per_epoch["mean"], color=colour_, linestyle=style, linewidth=1.8)
    if frame["run"].nunique() > 1:
        ax.fill_between(x, per_epoch["min"], per_epoch["max"], color=colour_, alpha=0.08, lw=0)


def _model_legend(fig: Figure, models: list[str], extra: list[Line2D] | None = None) -> None:
    handles = [Line2D([], [], color=colour(m), lw=2.5, label=label(m)) for m in models]
    handles += extra or []
    if not handles:
        return
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 7), frameon=False
    )


def draw_loss_per_epoch(history: pd.DataFrame) -> Figure:
    """Training (solid) and validation (dashed) loss per epoch, one panel per minibatch size."""
    ms = sorted(history["m"].unique().tolist())
    fig, axes = panel_grid(max(len(ms), 1))
    if not ms:
        note(axes[0], "no training history")
        return fig
    models = ordered(set(history["loss_func"]))
    for ax, m in zip(axes, ms, strict=True):
        at_m = history.loc[history["m"] == m]
        for model in models:
            rows = at_m.loc[at_m["loss_func"] == model]
            _band(ax, rows, "train_loss", colour(model), "-")
            _band(ax, rows, "val_loss", colour(model), "--")
        ax.set_title(f"minibatch size m = {m}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (nats per row)")
    fig.suptitle("Loss per epoch (mean over runs; band: min-max)")
    styles = [
        Line2D([], [], color="#333333", lw=1.8, ls="-", label="train"),
        Line2D([], [], color="#333333", lw=1.8, ls="--", label="validation"),
    ]
    _model_legend(fig, models, styles)
    return fig


def reference_lines(
    ax: Axes, ref: MlReference | None, component: str, *, vertical: bool = False
) -> None:
    """The exact ML estimate (dashed) and its 95% interval (band) of one variance component."""
    if ref is None:
        return
    value = ref.sigma2_b if component == "sigma2_b" else ref.sigma2_e
    low, high = ref.sigma2_b_ci if component == "sigma2_b" else ref.sigma2_e_ci
    span = ax.axvspan if vertical else ax.axhspan
    line = ax.axvline if vertical else ax.axhline
    if math.isfinite(high):
        span(low, high, color="#999999", alpha=0.2, lw=0, zorder=0)
    line(value, color=ML_COLOUR, ls=(0, (5, 3)), lw=1.4, zorder=1)


def variance_top(values: pd.Series, ref: MlReference | None, component: str) -> float:
    """Upper y limit of a variance panel: the estimates and the ML point estimate, padded.

    The ML interval can be far wider than the estimates' spread (few sites), so it does not set
    the scale; its band is clipped at the top instead of squashing every curve to the bottom.
    """
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if len(finite) else 0.0
    if ref is not None:
        top = max(top, ref.sigma2_b if component == "sigma2_b" else ref.sigma2_e)
    return 1.15 * top if top > 0 else 1.0


def ml_handles(ref: MlReference | None) -> list:
    if ref is None:
        return []
    from matplotlib.patches import Patch

    return [
        Line2D([], [], color=ML_COLOUR, ls=(0, (5, 3)), lw=1.4, label=f"exact ML ({ref.rows})"),
        Patch(color="#999999", alpha=0.3, label="ML 95% profile interval"),
    ]


def draw_variance_per_epoch(
    history: pd.DataFrame, component: str, reference: MlReference | None
) -> Figure:
    """One variance component's estimate per epoch, one panel per m, with the ML reference."""
    symbol, meaning = COMPONENTS[component]
    column = f"{component}_est"
    ms = sorted(history["m"].unique().tolist())
    fig, axes = panel_grid(max(len(ms), 1))
    if not ms:
        note(axes[0], "no training history")
        return fig
    with_values = history.loc[history[column].notna()]
    if component == "sigma2_b":
        with_values = with_values.loc[~with_values["loss_func"].isin(NO_RANDOM_EFFECT)]
    models = ordered(set(with_values["loss_func"]))
    for ax, m in zip(axes, ms, strict=True):
        at_m = with_values.loc[with_values["m"] == m]
        reference_lines(ax, reference, component)
        for model in models:
            _band(ax, at_m.loc[at_m["loss_func"] == model], column, colour(model), "-")
        ax.set_title(f"minibatch size m = {m}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{symbol} {VARIANCE_UNIT}")
        ax.set_ylim(0, variance_top(with_values[column], reference, component))
    fig.suptitle(f"{symbol} ({meaning}) per epoch (mean over runs; band: min-max)")
    _model_legend(fig, models, ml_handles(reference))
    return fig
