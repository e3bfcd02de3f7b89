"""Slide gallery: a few test units with their slide thumbnail, some of their tiles, y and y_hat.

Units are the focus model's test units (RENN-U when present), ordered by y and picked at evenly
spaced ranks, so the gallery runs from low to high MKI67. Units whose slide has a preview are
preferred. The tiles shown are those the embedding sampled (its ``indices``), evenly spaced
among them; without an embedding file, evenly spaced tiles of the store. Anything missing is
shown as a labelled empty cell and recorded in ``GalleryItem.problems``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import h5py
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from histo_renn_dagster.core.errors import TileStoreError
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.reporting.figures_predictions import held_out_rows, one_run_per_model
from histo_renn_dagster.core.reporting.results import MODEL_ORDER
from histo_renn_dagster.core.reporting.style import label, new_figure, note
from histo_renn_dagster.core.wsi.images import THUMBNAIL_NAME
from histo_renn_dagster.core.wsi.store import TileStore

GALLERY_MODELS = ("NLL_U", *MODEL_ORDER)
"""Whose predictions the gallery shows: RENN-U, else the first model present."""


@dataclass(frozen=True)
class GalleryItem:
    unit_id: str
    site_code: str
    seen_site: bool
    y: float
    y_hat: float
    file_id: str | None
    thumbnail: np.ndarray | None
    tiles: tuple[np.ndarray, ...]
    problems: tuple[str, ...] = ()


def gallery_model(predictions: pd.DataFrame) -> str | None:
    present = set(predictions["loss_func"])
    return next((m for m in GALLERY_MODELS if m in present), None)


def unit_file_ids(cohort: pd.DataFrame | None) -> dict[str, list[str]]:
    """unit_id -> its slide file ids (``file_ids`` list column of the cohort table)."""
    if cohort is None or "file_ids" not in cohort.columns:
        return {}
    out: dict[str, list[str]] = {}
    for unit, ids in zip(cohort["unit_id"].astype(str), cohort["file_ids"], strict=True):
        out[unit] = [str(i) for i in (ids if isinstance(ids, (list, tuple, np.ndarray)) else [ids])]
    return out


def pick_gallery_units(
    predictions: pd.DataFrame, m: int, count: int, has_preview: set[str] | None = None
) -> pd.DataFrame:
    """``count`` test units of the gallery model at ``m`` at evenly spaced ranks of y."""
    model = gallery_model(predictions)
    if model is None or count < 1:
        return predictions.iloc[0:0]
    rows = held_out_rows(one_run_per_model(predictions, m))
    rows = rows.loc[rows["loss_func"] == model].sort_values(["y", "unit_id"], kind="mergesort")
    if has_preview:
        with_preview = rows.loc[rows["unit_id"].isin(has_preview)]
        rows = with_preview if len(with_preview) else rows
    if len(rows) <= count:
        return rows.reset_index(drop=True)
    picks = np.unique(np.round(np.linspace(0, len(rows) - 1, count)).astype(int))
    return rows.iloc[picks].reset_index(drop=True)


def _read_rgb(path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else np.ascontiguousarray(bgr[..., ::-1])


def _sampled_indices(layout: LakeLayout, file_id: str) -> np.ndarray | None:
    path = layout.embedding_path(file_id)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as h5:
            node = h5.get("indices")
            return np.asarray(node[()], dtype=np.int64) if isinstance(node, h5py.Dataset) else None
    except OSError:
        return None


def _tiles(
    layout: LakeLayout, file_id: str, count: int
) -> tuple[tuple[np.ndarray, ...], str | None]:
    path = layout.tiles_path(file_id)
    if not path.is_file():
        return (), f"{file_id}: no tile store"
    try:
        with TileStore(path) as store:
            pool = _sampled_indices(layout, file_id)
            if pool is None or not len(pool):
                pool = np.arange(len(store))
            pool = np.sort(pool[(pool >= 0) & (pool < len(store))])
            if not len(pool):
                return (), f"{file_id}: tile store has no tiles"
            chosen = pool[
                np.unique(
                    np.round(np.linspace(0, len(pool) - 1, min(count, len(pool)))).astype(int)
                )
            ]
            return tuple(store.read_tiles(chosen)), None
    except TileStoreError as exc:
        return (), str(exc)


def preview_units(layout: LakeLayout, file_ids: dict[str, list[str]]) -> set[str]:
    """Units whose first slide has a thumbnail."""
    return {
        unit
        for unit, ids in file_ids.items()
        if ids and (layout.tile_previews_dir(ids[0]) / THUMBNAIL_NAME).is_file()
    }


def load_gallery(
    picked: pd.DataFrame, file_ids: dict[str, list[str]], layout: LakeLayout, tiles_per_slide: int
) -> list[GalleryItem]:
    """Thumbnails and tiles of the picked units (their first slide)."""
    items = []
    for row in picked.to_dict("records"):
        unit = str(row["unit_id"])
        ids = file_ids.get(unit, [])
        problems: list[str] = []
        thumb, tiles, fid = None, (), ids[0] if ids else None
        if fid is None:
            problems.append(f"{unit}: no slide file id in the cohort table")
        else:
            thumb = _read_rgb(layout.tile_previews_dir(fid) / THUMBNAIL_NAME)
            if thumb is None:
                problems.append(f"{fid}: no thumbnail")
            tiles, problem = _tiles(layout, fid, tiles_per_slide)
            if problem:
                problems.append(problem)
        items.append(
            GalleryItem(
                unit_id=unit,
                site_code=str(row["site_code"]),
                seen_site=bool(row["seen_site"]),
                y=float(row["y"]),
                y_hat=float(row["y_hat"]),
                file_id=fid,
                thumbnail=thumb,
                tiles=tiles,
                problems=tuple(problems),
            )
        )
    return items


def draw_gallery(
    items: Sequence[GalleryItem], model: str | None, m: int, tiles_per_slide: int
) -> Figure:
    """One row per unit: thumbnail (with the unit's y and y_hat) and its tiles."""
    cols = 1 + max(tiles_per_slide, 1)
    rows = max(len(items), 1)
    fig = new_figure(12.0, 2.3 * rows + 0.7)
    grid = fig.add_gridspec(rows, cols, width_ratios=[2.2] + [1.0] * (cols - 1))
    if not items:
        note(fig.add_subplot(grid[0, :]), "no test units with predictions to show")
        return fig
    for r, item in enumerate(items):
        thumb_ax = fig.add_subplot(grid[r, 0])
        _image(thumb_ax, item.thumbnail, "no thumbnail")
        where = "seen" if item.seen_site else "unseen"
        thumb_ax.set_title(
            f"{item.unit_id} · site {item.site_code} ({where})\n"
            f"y = {item.y:.2f}   ŷ = {item.y_hat:.2f}   (log TPM)",
            fontsize=10,
            loc="left",
        )
        for c in range(1, cols):
            ax = fig.add_subplot(grid[r, c])
            tile = item.tiles[c - 1] if c - 1 < len(item.tiles) else None
            _image(ax, tile, "no tile")
            if r == 0:
                ax.set_title(f"tile {c}", fontsize=10)
    who = label(model) if model else "-"
    fig.suptitle(f"Slide gallery: test units from low to high y; ŷ from {who}, m = {m}")
    return fig


def _image(ax, image: np.ndarray | None, missing: str) -> None:
    ax.grid(False)
    if image is None:
        note(ax, missing)
    else:
        ax.imshow(image, interpolation="antialiased")
        ax.set_xticks([])
        ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
