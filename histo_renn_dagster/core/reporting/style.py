"""One look for every figure: a fixed colour per model, fonts legible at UI size, stable PNGs.

Figures are built as ``matplotlib.figure.Figure`` objects (never through pyplot, so no global
figure registry and no GUI backend) and rendered by Agg. Saved PNGs carry no software/date
metadata, so the same data gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from histo_renn_dagster.core.atomic import atomic_write_bytes
from histo_renn_dagster.core.reporting.results import MODEL_NAMES, MODEL_ORDER

DPI = 110
"""Pixels per inch of every PNG: a 10-inch-wide figure is 1100 px, about what the UI shows."""

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies, and the same
# model keeps its colour in every figure.
MODEL_COLOURS: dict[str, str] = {
    "NLL": "#0072B2",  # RENN: blue
    "NLL_cor_det": "#E69F00",  # RENN-det: orange
    "NLL_cor_1": "#009E73",  # RENN-cor: green
    "NLL_no_RE": "#D55E00",  # NN-noRE: vermillion
    "NLL_U": "#CC79A7",  # RENN-U: purple
    "LMM_intercept": "#555555",  # grey
    "LMM_pca": "#56B4E9",  # sky blue
}
ML_COLOUR = "#000000"
"""The exact ML reference (intercept-only LMM) on variance plots."""
SUBSET_COLOURS = {"seen": "#0072B2", "unseen": "#D55E00"}

_RC: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 14,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def colour(model: str) -> str:
    return MODEL_COLOURS[model]


def label(model: str) -> str:
    return MODEL_NAMES[model]


def ordered(models: list[str] | set[str]) -> list[str]:
    """``models`` in the canonical order (losses, then baselines)."""
    present = set(models)
    return [m for m in MODEL_ORDER if m in present]


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """The shared rc settings while a figure is built and saved (restored afterwards)."""
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]  # keys are valid rc names
        yield


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout Figure of ``width`` x ``height`` inches, not registered with pyplot."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def note(ax: Axes, text: str) -> None:
    """Say in the panel why it is empty, instead of leaving a blank axis."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def message_figure(title: str, text: str) -> Figure:
    """A small figure that says why there is nothing to plot."""
    fig = new_figure(8.0, 2.5)
    ax = fig.subplots()
    note(ax, text)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(title)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # "Software": None drops the matplotlib version stamp, so equal figures give equal bytes.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def save_png(fig: Figure, path: Path) -> Path:
    """Render ``fig`` with Agg and write it atomically."""
    atomic_write_bytes(path, png_bytes(fig))
    return path
