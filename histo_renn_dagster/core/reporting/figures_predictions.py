"""Prediction figures: observed vs predicted, residual histograms, residual box plots over m.

The scatter and histogram grids show one minibatch size (the report's focus m) and one run per
model (its first seed), so each dot is one test unit; seen-site and unseen-site units are drawn
apart because the BLUP only helps the former. The box plots pool the runs and show every m.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from histo_renn_dagster.core.reporting.figures_training import panel_grid
from histo_renn_dagster.core.reporting.results import BASELINE_NAMES
from histo_renn_dagster.core.reporting.style import SUBSET_COLOURS, colour, label, note, ordered

Y_UNIT = "log TPM"
TEST = "test"


def one_run_per_model(predictions: pd.DataFrame, m: int) -> pd.DataFrame:
    """Rows at minibatch size ``m``, keeping each model's first (smallest) run."""
    at_m = predictions.loc[predictions["m"] == m]
    first = at_m.groupby("loss_func")["run"].transform("min")
    return at_m.loc[at_m["run"] == first]


def held_out_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions.loc[predictions["split"] == TEST]


def _subset_masks(rows: pd.DataFrame):
    return (
        ("seen", rows["seen_site"].to_numpy(bool)),
        ("unseen", ~rows["seen_site"].to_numpy(bool)),
    )


def _subset_legend(fig: Figure, kind: str) -> None:
    if kind == "scatter":
        handles = [
            Line2D([], [], ls="", marker="o", color=SUBSET_COLOURS["seen"], label="seen site"),
            Line2D(
                [],
                [],
                ls="",
                marker="^",
                mfc="none",
                color=SUBSET_COLOURS["unseen"],
                label="unseen site",
            ),
            Line2D([], [], color="#444444", ls=":", label="ŷ = y"),
        ]
    else:
        handles = [
            Patch(color=SUBSET_COLOURS[s], alpha=0.6, label=f"{s} site") for s in ("seen", "unseen")
        ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)


def draw_prediction_scatter(predictions: pd.DataFrame, m: int) -> Figure:
    """y against y_hat on the test units, one panel per model, at minibatch size ``m``."""
    rows = held_out_rows(one_run_per_model(predictions, m))
    models = ordered(set(rows["loss_func"]))
    fig, axes = panel_grid(max(len(models), 1), ncols=4, width=13.0, row_height=3.4)
    if not models:
        note(axes[0], f"no test predictions at m = {m}")
        return fig
    values = np.concatenate([rows["y"].to_numpy(), rows["y_hat"].to_numpy()])
    pad = 0.05 * float(np.ptp(values) or 1.0)
    lims = (float(values.min()) - pad, float(values.max()) + pad)
    for ax, model in zip(axes, models, strict=True):
        own = rows.loc[rows["loss_func"] == model]
        for subset, mask in _subset_masks(own):
            ax.scatter(
                own["y_hat"][mask],
                own["y"][mask],
                s=22,
                marker="o" if subset == "seen" else "^",
                facecolors=SUBSET_COLOURS[subset] if subset == "seen" else "none",
                edgecolors=SUBSET_COLOURS[subset],
                alpha=0.8,
            )
        ax.plot(lims, lims, color="#444444", ls=":", lw=1.2)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        ax.set_aspect("equal")
        mse = float(np.mean(own["residual"] ** 2)) if len(own) else float("nan")
        ax.set_title(f"{label(model)}  (MSE {mse:.2f})", color=colour(model), fontweight="bold")
        ax.set_xlabel(f"predicted ŷ ({Y_UNIT})")
        ax.set_ylabel(f"observed y ({Y_UNIT})")
    fig.suptitle(f"Observed vs predicted, test units, m = {m} (first run of each model)")
    _subset_legend(fig, "scatter")
    return fig


def draw_residual_histograms(predictions: pd.DataFrame, m: int) -> Figure:
    """Histograms of test residuals y - y_hat per model at ``m``, seen and unseen sites stacked."""
    rows = held_out_rows(one_run_per_model(predictions, m))
    models = ordered(set(rows["loss_func"]))
    fig, axes = panel_grid(max(len(models), 1), ncols=4, width=13.0, row_height=3.0)
    if not models:
        note(axes[0], f"no test predictions at m = {m}")
        return fig
    bound = float(np.abs(rows["residual"]).max() or 1.0)
    bins = np.linspace(-bound, bound, 17)
    for ax, model in zip(axes, models, strict=True):
        own = rows.loc[rows["loss_func"] == model]
        parts = [own["residual"][mask].to_numpy() for _, mask in _subset_masks(own)]
        ax.hist(
            parts,
            bins=bins,
            stacked=True,
            color=[SUBSET_COLOURS["seen"], SUBSET_COLOURS["unseen"]],
            alpha=0.6,
        )
        ax.axvline(0, color="#444444", lw=1)
        ax.set_title(label(model), color=colour(model), fontweight="bold")
        ax.set_xlabel(f"residual y − ŷ ({Y_UNIT})")
        ax.set_ylabel("test units")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Residuals of the test units, m = {m} (first run of each model)")
    _subset_legend(fig, "hist")
    return fig


def draw_residual_boxes(predictions: pd.DataFrame) -> Figure:
    """Box plots of test residuals per m, one panel per loss (runs pooled), baselines last."""
    rows = held_out_rows(predictions)
    losses = ordered({m for m in set(rows["loss_func"]) if m not in BASELINE_NAMES})
    baselines = ordered(set(rows["loss_func"]) & set(BASELINE_NAMES))
    count = len(losses) + (1 if baselines else 0)
    fig, axes = panel_grid(max(count, 1), ncols=3, row_height=3.3)
    if not count:
        note(axes[0], "no test predictions")
        return fig
    ms = sorted(rows["m"].unique().tolist())
    share = float(np.abs(rows["residual"]).max() or 1.0) * 1.05
    for ax, loss in zip(axes, losses, strict=False):
        own = rows.loc[rows["loss_func"] == loss]
        data = [own.loc[own["m"] == m, "residual"].to_numpy() for m in ms]
        _boxes(ax, data, [str(m) for m in ms], [colour(loss)] * len(ms))
        ax.set_title(label(loss), color=colour(loss), fontweight="bold")
        ax.set_xlabel("minibatch size m")
    if baselines:
        ax = axes[len(losses)]
        data = [rows.loc[rows["loss_func"] == b, "residual"].to_numpy() for b in baselines]
        _boxes(ax, data, [label(b) for b in baselines], [colour(b) for b in baselines])
        ax.set_title("classical baselines (all m)")
        ax.set_xlabel("model")
    for ax in axes[:count]:
        ax.axhline(0, color="#444444", lw=1)
        ax.set_ylim(-share, share)
        ax.set_ylabel(f"residual y − ŷ ({Y_UNIT})")
    fig.suptitle("Test residuals over m (runs pooled)")
    return fig


def _boxes(ax, data: list[np.ndarray], labels: list[str], colours: list[str]) -> None:
    positions = np.arange(len(data))
    kept = [(p, d, c) for p, d, c in zip(positions, data, colours, strict=True) if len(d)]
    if kept:
        boxes = ax.boxplot(
            [d for _, d, _ in kept],
            positions=[p for p, _, _ in kept],
            widths=0.6,
            patch_artist=True,
            flierprops={"markersize": 3},
            medianprops={"color": "black", "lw": 1.5},
        )
        for patch, (_, _, c) in zip(boxes["boxes"], kept, strict=True):
            patch.set_facecolor(c)
            patch.set_alpha(0.55)
    ax.set_xticks(positions, labels)
