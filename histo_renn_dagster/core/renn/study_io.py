"""Files of one minibatch-size study (``<lake>/models/m=<m>/``), its checks and its summary.

Layout (read by ``renn_results`` and the report):

    history.parquet  models.parquet  predictions.parquet  config.json
    checkpoints/<loss_func>/fit.pt   (the whole RennFit: load with ``train.load_fit``)

The folder is built under a staging name next to it and swapped in at the end, so a reader sees
either the previous complete study or the new complete one, never a mixture; every file inside
is itself written to a temp file and renamed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histo_renn_dagster.core.atomic import atomic_path, atomic_write_bytes
from histo_renn_dagster.core.errors import RennError
from histo_renn_dagster.core.renn.study import BASELINES, StudyResult
from histo_renn_dagster.core.renn.train import save_fit

FRAMES: tuple[str, ...] = ("history", "models", "predictions")
CONFIG_FILE = "config.json"
CHECKS: tuple[str, ...] = ("losses_finite", "variances_in_range", "all_seeds_finished")
# Variance estimates must lie in (lower x var(y), upper x var(y)): a residual variance below a
# millionth of var(y), or any variance far above var(y), means the fit degenerated or diverged.
SIGMA2_E_LOWER, VARIANCE_UPPER = 1e-6, 10.0


@dataclass(frozen=True)
class StudyFiles:
    """A study as read back from its folder."""

    history: pd.DataFrame
    models: pd.DataFrame
    predictions: pd.DataFrame
    config: dict[str, object]


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _atomic_text(text: str, path: Path) -> None:
    atomic_write_bytes(path, text.encode())


def write_study(result: StudyResult, out_dir: Path) -> Path:
    """Write the study's frames, config and one checkpoint per loss to ``out_dir`` (replaced)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; the study folder is an ordinary one
    try:
        for name in FRAMES:
            _atomic_parquet(getattr(result, name), staging / f"{name}.parquet")
        for loss, fit in result.fits.items():
            save_fit(fit, staging / "checkpoints" / loss / "fit.pt")
        config = json.dumps(result.config, indent=2, sort_keys=True, default=_json_value)
        _atomic_text(config + "\n", staging / CONFIG_FILE)
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _json_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``staging``: the old folder is renamed aside first, then removed."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "study")
    try:
        os.replace(staging, out_dir)
    except BaseException:
        if old is not None:  # put the previous study back
            os.replace(old / "study", out_dir)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def read_study(out_dir: Path) -> StudyFiles:
    """Read the files written by :func:`write_study`; a missing or unreadable file raises."""
    frames = {}
    for name in FRAMES:
        path = out_dir / f"{name}.parquet"
        try:
            frames[name] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise RennError(f"study file {path} is missing or unreadable: {exc}") from exc
    try:
        config = json.loads((out_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise RennError(f"study config {out_dir / CONFIG_FILE} is missing or unreadable") from exc
    return StudyFiles(config=config, **frames)


def study_problems(study: StudyFiles) -> dict[str, list[str]]:
    """Problems per check (empty list = passed): finite losses, sane variances, all seeds done."""
    h, models, cfg = study.history, study.models, study.config
    seeds = {int(s) for s in cfg["seeds"]}  # type: ignore[union-attr]
    renn = models[~models["loss_func"].isin(list(BASELINES))]
    out: dict[str, list[str]] = {name: [] for name in CHECKS}
    for column in ("train_loss", "exact_nll_train", "sigma2_e_est", "sigma2_b_est"):
        bad = h.loc[~np.isfinite(h[column].to_numpy(dtype=np.float64))]
        out["losses_finite"] += [
            f"{loss} run {run} epoch {epoch}: {column} = {value}"
            for loss, run, epoch, value in bad[["loss_func", "run", "epoch", column]]
            .head(20)
            .itertuples(index=False, name=None)
        ]
    # validation columns are NaN only for a run without validation rows (its predictions say)
    preds = study.predictions
    val_runs = set(
        preds.loc[preds["split"] == "val", ["loss_func", "run"]].itertuples(index=False, name=None)
    )
    for _, rows in h.groupby(["loss_func", "run"], sort=False):
        loss, run = str(rows["loss_func"].iloc[0]), int(rows["run"].iloc[0])
        for column in ("val_loss", "exact_nll_val"):
            values = rows[column].to_numpy(dtype=np.float64)
            bad = np.isinf(values) | (np.isnan(values) if (loss, run) in val_runs else False)
            if bad.any():
                epochs = rows.loc[bad, "epoch"].tolist()
                out["losses_finite"].append(
                    f"{loss} run {run}: {column} not finite at epochs {epochs[:10]}"
                )
    scale = float(cfg.get("y_variance", math.nan))  # type: ignore[arg-type]
    if not math.isfinite(scale) or scale <= 0:
        out["variances_in_range"].append(f"config y_variance is {scale!r}; cannot judge variances")
    else:
        columns = ["loss_func", "run", "sigma2_e", "sigma2_b"]
        for loss, run, e, b in models[columns].itertuples(index=False, name=None):
            if not SIGMA2_E_LOWER * scale < float(e) < VARIANCE_UPPER * scale:
                out["variances_in_range"].append(f"{loss} run {run}: sigma2_e = {e:.4g}")
            if not 0.0 <= float(b) < VARIANCE_UPPER * scale:
                out["variances_in_range"].append(f"{loss} run {run}: sigma2_b = {b:.4g}")
    epochs = int(cfg["epochs"])  # type: ignore[arg-type]
    for loss in cfg["losses"]:  # type: ignore[union-attr]
        got = {int(r) for r in renn.loc[renn["loss_func"] == loss, "run"]}
        if got != seeds:
            out["all_seeds_finished"].append(
                f"{loss}: models for runs {sorted(got)}, expected {sorted(seeds)}"
            )
        for seed in sorted(seeds):
            done = h.loc[(h["loss_func"] == loss) & (h["run"] == seed), "epoch"]
            if set(done) != set(range(1, epochs + 1)):
                out["all_seeds_finished"].append(
                    f"{loss} run {seed}: {done.nunique()} of {epochs} epochs in the history"
                )
    return out


def study_summary(models: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Per loss (and baseline): mean and sd over seeds of the estimates, the best validation
    NLL, test metrics and wall time (the ``renn_model`` materialization metadata)."""
    out: dict[str, dict[str, float | None]] = {}
    for loss, rows in models.groupby("loss_func", sort=False):
        entry: dict[str, float | None] = {"runs": len(rows)}
        for column in ("sigma2_b", "sigma2_e", "icc"):
            entry[f"{column}_mean"] = _round(rows[column].mean())
            entry[f"{column}_sd"] = _round(rows[column].std(ddof=1) if len(rows) > 1 else 0.0)
        entry["best_val_nll"] = _round(rows["exact_nll_val"].min())
        for column in ("seen_mse", "seen_spearman", "unseen_mse", "unseen_spearman"):
            entry[column] = _round(rows[column].mean())
        entry["wall_s"] = _round(rows["wall_s"].max())
        out[str(loss)] = entry
    return out


def sigma2_b_by_m(models: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Mean over seeds of the selected sigma2_b, per loss (and baseline) and m in increasing
    order: the study's headline (the reference's estimates grow with m; a sound study's do
    not)."""

    def order(m: object) -> tuple[bool, int]:
        text = str(m)
        return (not text.isdigit(), int(text) if text.isdigit() else 0)  # "full" last

    out: dict[str, dict[str, float | None]] = {}
    for loss, rows in models.groupby("loss_func", sort=False):
        means: dict[object, list[float]] = {}
        for m, value in zip(rows["m"], rows["sigma2_b"], strict=True):
            means.setdefault(m, []).append(float(value))
        ordered = sorted(means.items(), key=lambda item: order(item[0]))
        out[str(loss)] = {str(m): _round(sum(v) / len(v)) for m, v in ordered}
    return out


def _round(value: object) -> float | None:
    """Six decimals; None for NaN (JSON metadata has no NaN)."""
    number = float(value)  # type: ignore[arg-type]
    return round(number, 6) if math.isfinite(number) else None
