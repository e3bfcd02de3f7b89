"""Synthetic ``renn_model`` outputs and lake inputs for the reporting tests.

``write_model_partition`` writes the four files of one ``models/m=<m>/`` folder following the
file contract (history, models, predictions Parquet and config.json) with plausible numbers: a
random-intercept cohort y = mu + f + b_site + e, losses that decay over epochs, variance estimates
that drift from 1.0 towards a loss- and m-dependent value, BLUPs shrunk from training residuals,
and metrics computed from the written predictions. ``write_lake_inputs`` adds the cohort table,
the manifest sidecar with a data release, embedding files with provenance attributes and tile
stores with preview PNGs, for provenance and the slide gallery.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
from scipy import stats

from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.renn.likelihood import DISPLAY_NAMES, LOSSES
from histo_renn_dagster.core.wsi.store import TileStoreWriter

SITES = ("A2", "A8", "AR", "BH", "D8", "E2", "OL", "PL")
BASELINES = {"LMM_intercept": "LMM (intercept)", "LMM_pca": "LMM (PCA features)"}
TRUE_S2B, TRUE_S2E, MU = 0.30, 0.55, 2.6


def file_id(label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, label))


@dataclass(frozen=True)
class World:
    """The units every synthetic model was fitted on."""

    units: pd.DataFrame  # unit_id, file_id, site_code, y, signal, split, seen_site


def make_world(n_sites: int = 8, per_site: int = 6, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    sites = SITES[:n_sites]
    b = dict(zip(sites, rng.normal(0, np.sqrt(TRUE_S2B), n_sites), strict=True))
    unseen = set(sites[-max(1, n_sites // 4) :])
    rows = []
    for s in sites:
        for k in range(per_site + int(rng.integers(0, 3))):
            unit = f"TCGA-{s}-{k:04d}-01"
            signal = float(rng.normal(0, 0.5))
            y = MU + signal + b[s] + float(rng.normal(0, np.sqrt(TRUE_S2E)))
            split = "test" if s in unseen else ("train", "train", "train", "val", "test")[k % 5]
            rows.append(
                {
                    "unit_id": unit,
                    "file_id": file_id(unit),
                    "site_code": s,
                    "y": y,
                    "signal": signal,
                    "split": split,
                    "seen_site": s not in unseen,
                }
            )
    return World(pd.DataFrame(rows))


def _variance_targets(loss: str, m: int) -> tuple[float, float]:
    shrink = m / (m + 6.0)  # block losses see too little of a site at small m
    return {
        "NLL": (TRUE_S2B * shrink, TRUE_S2E),
        "NLL_cor_det": (TRUE_S2B * (0.5 + 0.5 * shrink), TRUE_S2E),
        "NLL_cor_1": (TRUE_S2B * (0.8 + 0.2 * shrink), TRUE_S2E * 1.02),
        "NLL_no_RE": (0.0, TRUE_S2E + TRUE_S2B),  # the study writes 0 for no random effect
        "NLL_U": (TRUE_S2B, TRUE_S2E * 0.98),
        "LMM_intercept": (TRUE_S2B, TRUE_S2E + 0.25),
        "LMM_pca": (TRUE_S2B, TRUE_S2E + 0.1),
    }[loss]


def _predictions(world: World, loss: str, m: int, run: int, s2b: float, s2e: float, rng):
    u = world.units
    quality = {"LMM_intercept": 0.0, "LMM_pca": 0.6}.get(loss, 0.85)
    f_x = MU + quality * u["signal"].to_numpy() + rng.normal(0, 0.15, len(u))
    resid = u["y"].to_numpy() - f_x
    train = (u["split"] == "train").to_numpy()
    blup = np.zeros(len(u))
    if np.isfinite(s2b) and s2b > 0:
        for s in u["site_code"].unique():
            rows = (u["site_code"] == s).to_numpy()
            n = int((rows & train).sum())
            if n:
                blup[rows] = s2b / (s2b + s2e / n) * resid[rows & train].mean()
    y_hat = f_x + blup
    return pd.DataFrame(
        {
            "loss_func": loss,
            "loss_func_disp": {**DISPLAY_NAMES, **BASELINES}[loss],
            "m": m,
            "run": run,
            "unit_id": u["unit_id"],
            "site_code": u["site_code"],
            "split": u["split"],
            "y": u["y"],
            "f_x": f_x,
            "blup": blup,
            "y_hat": y_hat,
            "residual": u["y"].to_numpy() - y_hat,
            "seen_site": u["seen_site"],
        }
    )


def _metrics(pred: pd.DataFrame, s2e: float, s2b: float) -> dict[str, float]:
    out: dict[str, float] = {}
    test = pred[pred["split"] == "test"]
    for name, rows in (("seen", test[test["seen_site"]]), ("unseen", test[~test["seen_site"]])):
        r = rows["residual"].to_numpy()
        var = s2e + (0.0 if name == "seen" or not np.isfinite(s2b) else s2b)
        out[f"{name}_mse"] = float(np.mean(r**2))
        out[f"{name}_pearson"] = float(stats.pearsonr(rows["y"], rows["y_hat"])[0])
        out[f"{name}_spearman"] = float(stats.spearmanr(rows["y"], rows["y_hat"])[0])
        out[f"{name}_pred_nll"] = float(0.5 * np.mean(np.log(2 * np.pi * var) + r**2 / var))
        out[f"{name}_n"] = len(rows)
    return out


def write_model_partition(
    layout: LakeLayout,
    m: int,
    world: World,
    *,
    runs: tuple[int, ...] = (17, 41),
    epochs: int = 6,
    losses: tuple[str, ...] = LOSSES,
    baselines: bool = True,
) -> Path:
    """Write the four contract files of ``models/m=<m>/``; returns the folder."""
    rng = np.random.default_rng(1000 + m)
    folder = layout.models_dir(m)
    folder.mkdir(parents=True, exist_ok=True)
    history, models, preds = [], [], []
    n_val = int((world.units["split"] == "val").sum())
    for loss in losses:
        t_b, t_e = _variance_targets(loss, m)
        for run in runs:
            ep = np.arange(1, epochs + 1)
            decay = np.exp(-ep / max(epochs / 3.0, 1.0))
            s2b = np.where(np.isfinite(t_b), t_b + (1.0 - t_b) * decay, np.nan)
            s2b = s2b * (1 + rng.normal(0, 0.04, epochs))
            s2e = (t_e + (1.0 - t_e) * decay) * (1 + rng.normal(0, 0.03, epochs))
            train = 1.25 + 0.6 * decay + rng.normal(0, 0.02, epochs)
            val = 1.35 + 0.5 * decay + 0.02 * ep / epochs + rng.normal(0, 0.03, epochs)
            history.append(
                pd.DataFrame(
                    {
                        "loss_func": loss,
                        "loss_func_disp": DISPLAY_NAMES[loss],
                        "m": m,
                        "run": run,
                        "epoch": ep,
                        "train_loss": train,
                        "val_loss": val,
                        "sigma2_b_est": s2b,
                        "sigma2_e_est": s2e,
                        "exact_nll_train": 40 * train + rng.normal(0, 0.5, epochs),
                        "exact_nll_val": n_val * val + rng.normal(0, 0.3, epochs),
                    }
                )
            )
            best = int(np.argmin(val))
            pred = _predictions(world, loss, m, run, float(s2b[best]), float(s2e[best]), rng)
            preds.append(pred)
            models.append(
                _model_row(loss, m, run, best + 1, s2b[best], s2e[best], val[best] * n_val, pred)
            )
    if baselines:
        for loss in BASELINES:  # run -1: one fit, every seed trained on the same rows
            t_b, t_e = _variance_targets(loss, m)
            pred = _predictions(world, loss, m, -1, t_b, t_e, rng)
            preds.append(pred)
            models.append(_model_row(loss, m, -1, -1, t_b, t_e, 1.4 * n_val, pred))
    pd.concat(history).to_parquet(folder / "history.parquet", index=False)
    pd.DataFrame(models).to_parquet(folder / "models.parquet", index=False)
    pd.concat(preds).to_parquet(folder / "predictions.parquet", index=False)
    config = {
        "profile": "default",
        "seeds": list(runs),
        "epochs": epochs,
        "split": "split_site",
        "losses": list(losses),
        "hidden": [256, 64],
        "rows": len(world.units),
        "device": "cpu",
        "m": m,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _model_row(loss, m, run, best_epoch, s2b, s2e, nll_val, pred) -> dict:
    s2b, s2e = float(s2b), float(s2e)
    return {
        "loss_func": loss,
        "loss_func_disp": {**DISPLAY_NAMES, **BASELINES}[loss],
        "m": m,
        "run": run,
        "best_epoch": best_epoch,
        "sigma2_b": s2b,
        "sigma2_e": s2e,
        "sigma2_b_ci_low": s2b * 0.45 if np.isfinite(s2b) else np.nan,
        "sigma2_b_ci_high": s2b * 2.1 if np.isfinite(s2b) else np.nan,
        "icc": s2b / (s2b + s2e) if np.isfinite(s2b) else np.nan,
        "exact_nll_val": float(nll_val),
        **_metrics(pred, s2e, s2b),
        "wall_s": 1.5 + 0.1 * m,
        "device": "cpu",
        "profile": "default",
        "split": "split_site",
    }


def _tile(rng: np.random.Generator, px: int) -> np.ndarray:
    base = np.array([200, 150, 200], dtype=np.float64)
    img = np.clip(base + rng.normal(0, 25, (px, px, 3)), 0, 255).astype(np.uint8)
    for _ in range(12):  # purple nuclei
        c = (int(rng.integers(0, px)), int(rng.integers(0, px)))
        cv2.circle(img, c, int(rng.integers(3, 7)), (90, 40, 140), -1)
    return img


def write_lake_inputs(
    layout: LakeLayout,
    world: World,
    *,
    weights: str = "random",
    data_release: str = "Data Release 43.0 - May 07, 2025",
    previews: int | None = None,
) -> None:
    """Cohort table, manifest sidecar, embedding files and tile stores (with previews) for the
    first ``previews`` units (all when None)."""
    u = world.units
    cohort = u[["unit_id", "site_code", "y"]].copy()
    cohort["file_ids"] = [[f] for f in u["file_id"]]
    layout.tables_dir.mkdir(parents=True, exist_ok=True)
    cohort.to_parquet(layout.table_path("cohort_table"), index=False)
    manifest = layout.manifests_dir / "gdc_slide_manifest.txt"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.with_name(manifest.name + ".json").write_text(
        json.dumps({"data_release": data_release, "rows": len(u)})
    )
    rng = np.random.default_rng(7)
    for i, fid in enumerate(u["file_id"]):
        emb = layout.embedding_path(fid)
        emb.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(emb, "w") as h5:
            h5.create_dataset("indices", data=np.array([0, 2, 4, 6], dtype=np.int64))
            h5.create_dataset("mean", data=np.zeros(8, dtype=np.float32))
            h5.attrs["backbone"] = "inception_v3"
            h5.attrs["weights"] = weights
            h5.attrs["weights_source"] = (
                "random init (seed 0)" if weights == "random" else "torchvision cache"
            )
            h5.attrs["weights_sha256"] = "" if weights == "random" else "b" * 64
        if previews is not None and i >= previews:
            continue
        with TileStoreWriter(layout.tiles_path(fid), tile_px=64, jpeg_quality=90) as w:
            n = 8
            w.append(
                {
                    "coords": np.stack([np.arange(n) * 64, np.zeros(n)], 1),
                    "tissue_fraction": np.ones(n),
                    "qc_pen_fraction": np.zeros(n),
                    "qc_laplacian_var": np.full(n, 100.0),
                    "qc_pen": np.zeros(n, bool),
                    "qc_blur": np.zeros(n, bool),
                },
                [w.encode(_tile(rng, 64)) for _ in range(n)],
            )
            w.commit({"slide_id": fid, "level0_tile_px": 64, "mpp0": 0.5})
        pdir = layout.tile_previews_dir(fid)
        pdir.mkdir(parents=True, exist_ok=True)
        thumb = np.full((120, 200, 3), 245, np.uint8)
        cv2.ellipse(thumb, (100, 60), (70, 40), 15, 0, 360, (180, 120, 190), -1)
        cv2.imwrite(str(pdir / "thumbnail.png"), thumb)
