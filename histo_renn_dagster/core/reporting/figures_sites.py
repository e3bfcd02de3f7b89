"""Site-level figures: a caterpillar plot of site BLUPs, and seen- vs unseen-site metrics.

Caterpillar: each site's predicted random effect b_j with its 95% interval (see
``reference.model_site_effects``), one panel per random-effect loss at the focus m (first run),
over the exact ML reference fit's BLUPs in grey; sites sorted by the reference. A site without
training units (an unseen site) has b = 0 and the prior interval +-1.96 sqrt(sigma2_b), drawn
hollow.

Metrics: MSE, Pearson r, Spearman rho and predictive NLL per unit (``*_pred_nll`` is already per
test row, given the training rows of its site) of the test units at seen and at unseen sites, side by side for every loss and the two classical baselines (mean +- sd over
runs).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from histo_renn_dagster.core.reporting.figures_predictions import Y_UNIT, one_run_per_model
from histo_renn_dagster.core.reporting.figures_training import panel_grid
from histo_renn_dagster.core.reporting.reference import (
    MlReference,
    ml_site_effects,
    model_site_effects,
    reference_units,
)
from histo_renn_dagster.core.reporting.results import BASELINE_NAMES, NO_RANDOM_EFFECT
from histo_renn_dagster.core.reporting.style import (
    ML_COLOUR,
    SUBSET_COLOURS,
    colour,
    label,
    new_figure,
    note,
    ordered,
)

METRICS = (
    ("mse", "MSE of ŷ ((log TPM)²)", "lower is better"),
    ("pearson", "Pearson r (y, ŷ)", "higher is better"),
    ("spearman", "Spearman ρ (y, ŷ)", "higher is better"),
    ("pred_nll", "predictive NLL per unit (nats)", "lower is better"),
)


def draw_site_caterpillar(
    predictions: pd.DataFrame, models: pd.DataFrame, reference: MlReference | None, m: int
) -> Figure:
    """Site BLUPs with 95% intervals per random-effect loss at ``m``, over the ML reference."""
    chosen = one_run_per_model(predictions, m)
    fitted = models.loc[(models["m"] == m) & models["sigma2_b"].notna()]
    skip = set(BASELINE_NAMES) | NO_RANDOM_EFFECT
    losses = ordered(
        {x for x in set(chosen["loss_func"]) & set(fitted["loss_func"]) if x not in skip}
    )
    height = 1.9 + 0.32 * max(predictions["site_code"].nunique(), 4)
    fig = new_figure(13.0, height)
    axes = np.atleast_1d(fig.subplots(1, max(len(losses), 1), sharey=True, squeeze=False).ravel())
    if not losses:
        note(axes[0], f"no random-effect model at m = {m}")
        return fig
    ref = ml_site_effects(predictions, reference) if reference is not None else None
    if ref is not None:
        base = ref
    else:
        base = model_site_effects(chosen.loc[chosen["loss_func"] == losses[0]], 0.0, 1.0)
    order = base.sort_values(["blup", "site_code"], kind="mergesort")["site_code"].tolist()
    y_of = {s: i for i, s in enumerate(order)}
    for ax, loss in zip(axes, losses, strict=True):
        run = int(chosen.loc[chosen["loss_func"] == loss, "run"].iloc[0])
        fit = fitted.loc[(fitted["loss_func"] == loss) & (fitted["run"] == run)].iloc[0]
        effects = model_site_effects(
            chosen.loc[chosen["loss_func"] == loss], float(fit["sigma2_b"]), float(fit["sigma2_e"])
        )
        if ref is not None:
            ys = ref["site_code"].map(y_of).to_numpy(float) + 0.18
            ax.hlines(ys, ref["low"], ref["high"], color="#9a9a9a", lw=3.5, alpha=0.7)
            ax.scatter(ref["blup"], ys, color=ML_COLOUR, s=14, zorder=3)
        ys = effects["site_code"].map(y_of).to_numpy(float) - 0.18
        seen = effects["n_train"].to_numpy() > 0
        ax.hlines(ys, effects["low"], effects["high"], color=colour(loss), lw=1.8)
        ax.scatter(effects["blup"][seen], ys[seen], color=colour(loss), s=26, zorder=4)
        ax.scatter(
            effects["blup"][~seen],
            ys[~seen],
            facecolors="white",
            edgecolors=colour(loss),
            s=26,
            zorder=4,
        )
        ax.axvline(0, color="#444444", lw=1)
        ax.set_title(f"{label(loss)} (run {run})", color=colour(loss), fontweight="bold")
        ax.set_xlabel(f"site effect b ({Y_UNIT})")
    first_loss = chosen.loc[chosen["loss_func"] == losses[0]]
    in_train = first_loss.loc[first_loss["split"] == "train"]
    train_units = in_train.groupby("site_code")["unit_id"].nunique().to_dict()
    all_units = reference_units(predictions).groupby("site_code").size().to_dict()
    axes[0].set_yticks(
        range(len(order)),
        [f"{s} ({train_units.get(s, 0)}/{all_units.get(s, 0)})" for s in order],
    )
    axes[0].set_ylabel("tissue source site (train / all units)")
    axes[0].set_ylim(-0.8, len(order) - 0.2)
    fig.suptitle(f"Site random effects (BLUP ± 95% interval), m = {m}")
    handles = [
        Line2D([], [], color="#555555", marker="o", lw=1.8, label="model BLUP, seen site"),
        Line2D(
            [], [], color="#555555", marker="o", mfc="white", lw=1.8, label="unseen site (prior)"
        ),
    ]
    if reference is not None:
        handles.append(
            Line2D(
                [],
                [],
                color="#9a9a9a",
                lw=3.5,
                marker="o",
                mfc=ML_COLOUR,
                mec=ML_COLOUR,
                label=f"exact ML LMM (intercept, {reference.rows})",
            )
        )
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    return fig


def metric_frame(models: pd.DataFrame, m: int) -> pd.DataFrame:
    """Long table (loss_func, subset, metric, mean, sd) of the test metrics at ``m``."""
    at_m = models.loc[models["m"] == m]
    rows = []
    for model in ordered(set(at_m["loss_func"])):
        own = at_m.loc[at_m["loss_func"] == model]
        for subset in ("seen", "unseen"):
            for metric, _, _ in METRICS:
                values = own[f"{subset}_{metric}"].to_numpy(float)
                values = values[np.isfinite(values)]
                rows.append(
                    {
                        "loss_func": model,
                        "subset": subset,
                        "metric": metric,
                        "mean": float(values.mean()) if values.size else math.nan,
                        "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    }
                )
    return pd.DataFrame(rows, columns=["loss_func", "subset", "metric", "mean", "sd"])


def draw_seen_unseen(models: pd.DataFrame, m: int) -> Figure:
    """Seen-site vs unseen-site test metrics for every model at ``m``, baselines included."""
    table = metric_frame(models, m)
    fig, axes = panel_grid(len(METRICS), ncols=2, width=13.0, row_height=3.6)
    names = ordered(set(table["loss_func"]))
    if not names:
        for ax in axes:
            note(ax, f"no models at m = {m}")
        return fig
    x = np.arange(len(names))
    for ax, (metric, ylabel, better) in zip(axes, METRICS, strict=True):
        for offset, subset in ((-0.2, "seen"), (0.2, "unseen")):
            part = table.loc[(table["metric"] == metric) & (table["subset"] == subset)]
            part = part.set_index("loss_func").reindex(names)
            means = part["mean"].to_numpy(float)
            ax.bar(
                x + offset,
                np.nan_to_num(means),
                width=0.38,
                yerr=part["sd"].fillna(0.0),
                color=[colour(n) for n in names],
                alpha=0.9 if subset == "seen" else 0.45,
                hatch=None if subset == "seen" else "//",
                edgecolor=SUBSET_COLOURS[subset],
                linewidth=1.2,
                capsize=3,
            )
            # undefined (e.g. a correlation of constant predictions, or no test unit there)
            for pos in (x + offset)[~np.isfinite(means)]:
                ax.text(pos, 0, "n/a", ha="center", va="bottom", fontsize=9, color="#666666")
        ax.set_xticks(x, [label(n) for n in names], rotation=20, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel.split(' (')[0]} ({better})")
        ax.axhline(0, color="#444444", lw=0.8)
    fig.suptitle(f"Test metrics at seen vs unseen sites, m = {m} (mean ± sd over runs)")
    handles = [
        Patch(facecolor="#888888", alpha=0.9, edgecolor=SUBSET_COLOURS["seen"], label="seen sites"),
        Patch(
            facecolor="#888888",
            alpha=0.45,
            hatch="//",
            edgecolor=SUBSET_COLOURS["unseen"],
            label="unseen sites",
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig
