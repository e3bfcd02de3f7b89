"""Figures across minibatch sizes: best validation loss, best variance estimates, test MSE.

"Best" is each model's selected epoch (``best_epoch`` in the models table). Lines are means over
runs with +-1 sd error bars and the runs as dots; box plots show the runs' spread per m. The x axis
is m on a log2 scale (the grid doubles). The classical baselines do not depend on m: they appear as
horizontal dashed lines at their mean over runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from histo_renn_dagster.core.reporting.figures_training import (
    COMPONENTS,
    VARIANCE_UNIT,
    ml_handles,
    panel_grid,
    reference_lines,
    variance_top,
)
from histo_renn_dagster.core.reporting.reference import MlReference
from histo_renn_dagster.core.reporting.results import BASELINE_NAMES, NO_RANDOM_EFFECT
from histo_renn_dagster.core.reporting.style import colour, label, new_figure, note, ordered


def _losses(models: pd.DataFrame) -> list[str]:
    return ordered({m for m in set(models["loss_func"]) if m not in BASELINE_NAMES})


def _m_axis(ax: Axes, ms: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.minorticks_off()
    ax.set_xlabel("minibatch size m (rows per site block)")


def _lines_over_m(ax: Axes, frame: pd.DataFrame, column: str, models: list[str]) -> None:
    """Mean +- sd over runs per m for each model, runs as small dots; models nudged apart."""
    for i, model in enumerate(models):
        rows = frame.loc[(frame["loss_func"] == model) & frame[column].notna()]
        if rows.empty:
            continue
        stats_ = rows.groupby("m")[column].agg(["mean", "std"]).sort_index()
        nudge = 2.0 ** (0.06 * (i - (len(models) - 1) / 2))
        x = stats_.index.to_numpy(float) * nudge
        ax.errorbar(
            x,
            stats_["mean"],
            yerr=stats_["std"].fillna(0.0),
            color=colour(model),
            marker="o",
            ms=5,
            lw=1.8,
            capsize=3,
        )
        ax.scatter(
            rows["m"].to_numpy(float) * nudge, rows[column], color=colour(model), s=9, alpha=0.45
        )


def _baseline_lines(ax: Axes, frame: pd.DataFrame, column: str) -> list[str]:
    shown = []
    for model in ordered(set(frame["loss_func"]) & set(BASELINE_NAMES)):
        values = frame.loc[frame["loss_func"] == model, column].dropna()
        if len(values):
            ax.axhline(values.mean(), color=colour(model), ls="--", lw=1.6)
            shown.append(model)
    return shown


def _legend(fig: Figure, lines: list[str], dashed: list[str], extra: list | None = None) -> None:
    handles = [Line2D([], [], color=colour(m), marker="o", lw=2, label=label(m)) for m in lines]
    handles += [Line2D([], [], color=colour(m), ls="--", lw=1.6, label=label(m)) for m in dashed]
    handles += extra or []
    if not handles:
        return
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 7), frameon=False
    )


def best_epoch_rows(models: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The models table joined with the history row of each model's best epoch."""
    keys = ["loss_func", "m", "run"]
    picked = history.rename(columns={"exact_nll_val": "history_exact_nll_val"})
    return models.merge(
        picked[[*keys, "epoch", "train_loss", "val_loss"]],
        left_on=[*keys, "best_epoch"],
        right_on=[*keys, "epoch"],
        how="left",
    )


def draw_best_val_loss_over_m(models: pd.DataFrame, history: pd.DataFrame) -> Figure:
    """Validation loss at the best epoch (each model's own loss) and the exact validation NLL."""
    fig = new_figure(12.0, 4.9)
    left, right = fig.subplots(1, 2)
    losses = _losses(models)
    if not losses:
        note(left, "no models")
        note(right, "no models")
        return fig
    best = best_epoch_rows(models, history)
    ms = sorted(models["m"].unique().tolist())
    _lines_over_m(left, best, "val_loss", losses)
    left.set_title("validation loss at the best epoch (own loss)")
    left.set_ylabel("loss (nats per row)")
    _lines_over_m(right, models, "exact_nll_val", losses)
    dashed = _baseline_lines(right, models, "exact_nll_val")
    right.set_title("exact NLL of the validation rows (comparable)")
    right.set_ylabel("negative log-likelihood (nats)")
    for ax in (left, right):
        _m_axis(ax, ms)
    fig.suptitle("Best validation loss over m (mean ± sd over runs; dots: runs)")
    _legend(fig, losses, dashed)
    return fig


def draw_best_variances_over_m(
    models: pd.DataFrame, component: str, reference: MlReference | None
) -> Figure:
    """Box plots over m of one variance component at each model's best epoch, a panel per loss."""
    symbol, meaning = COMPONENTS[component]
    with_values = models.loc[models[component].notna()]
    if component == "sigma2_b":
        with_values = with_values.loc[~with_values["loss_func"].isin(NO_RANDOM_EFFECT)]
    losses = _losses(with_values)
    ms = sorted(models["m"].unique().tolist())
    fig, axes = panel_grid(max(len(losses), 1), ncols=3, row_height=3.4)
    if not losses:
        note(axes[0], f"no model estimates {symbol}")
        return fig
    for ax, loss in zip(axes, losses, strict=True):
        rows = with_values.loc[with_values["loss_func"] == loss]
        data = [rows.loc[rows["m"] == m, component].to_numpy() for m in ms]
        positions = np.arange(len(ms))
        reference_lines(ax, reference, component)
        boxes = ax.boxplot(
            data,
            positions=positions,
            widths=0.6,
            patch_artist=True,
            showfliers=False,
            medianprops={"color": "black", "lw": 1.5},
        )
        for patch in boxes["boxes"]:
            patch.set_facecolor(colour(loss))
            patch.set_alpha(0.55)
        for pos, values in zip(positions, data, strict=True):
            ax.scatter(np.full(len(values), pos), values, color=colour(loss), s=12, zorder=3)
        ax.set_xticks(positions, [str(m) for m in ms])
        ax.set_title(label(loss), color=colour(loss), fontweight="bold")
        ax.set_xlabel("minibatch size m")
        ax.set_ylabel(f"{symbol} {VARIANCE_UNIT}")
        ax.set_ylim(0, variance_top(with_values[component], reference, component))
    fig.suptitle(f"Best-epoch {symbol} ({meaning}) over m, per loss (boxes: runs)")
    handles = ml_handles(reference)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig


def draw_mse_over_m(models: pd.DataFrame) -> Figure:
    """Test MSE of y_hat over m, at sites seen in training and at held-out sites."""
    fig = new_figure(12.0, 4.9)
    axes = fig.subplots(1, 2, sharey=True)
    losses = _losses(models)
    ms = sorted(models["m"].unique().tolist())
    dashed: list[str] = []
    for ax, subset, title in zip(
        axes,
        ("seen", "unseen"),
        ("test units at sites seen in training", "test units at unseen sites"),
        strict=True,
    ):
        if not losses:
            note(ax, "no models")
            continue
        _lines_over_m(ax, models, f"{subset}_mse", losses)
        dashed = _baseline_lines(ax, models, f"{subset}_mse") or dashed
        _m_axis(ax, ms)
        ax.set_title(title)
        ax.set_ylabel("MSE of ŷ ((log TPM)²)")
    fig.suptitle("Prediction MSE over m (mean ± sd over runs; dashed: classical baselines)")
    _legend(fig, losses, dashed)
    return fig
