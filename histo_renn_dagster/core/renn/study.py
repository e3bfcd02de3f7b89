"""The minibatch-size study of one m: every loss x seed trained on the cohort table, plus two
exact-ML baselines, turned into the flat frames the report reads.

Frames (the file contract with ``renn_results`` / the report; see ``study_io`` for the files):

* history: one row per (loss_func, run, epoch) with the minibatch losses (per row), the variance
  estimates and the exact NLLs of the training rows and (predictive) of the validation rows;
* models: one row per (loss_func, run) at the selected epoch, plus ``LMM_intercept`` and
  ``LMM_pca`` rows (exact ML on the same training rows; run -1 when every seed trains on the same
  rows, else one row per seed), with held-out metrics on test rows of seen and of unseen sites;
  ``*_pred_nll`` is the predictive NLL per test row given the training rows of its site;
* predictions: one row per (loss_func, run, unit) with f(x), the BLUP of its site from training
  rows only, y_hat = f(x) + BLUP, and the split that run used for the unit.

``run`` is the seed itself (the reference's ``run`` column is the seed too).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from pandas.util import hash_pandas_object

from histo_renn_dagster.core.errors import RennDataError, RennSpecError
from histo_renn_dagster.core.renn.baselines import fit_lmm, pca_design
from histo_renn_dagster.core.renn.data import RennData, make_renn_data
from histo_renn_dagster.core.renn.evaluate import blup, fixed_predictions, score_predictions
from histo_renn_dagster.core.renn.likelihood import DISPLAY_NAMES, LOSSES, predictive_nll
from histo_renn_dagster.core.renn.spec import REFERENCE_SEEDS, RennSpec
from histo_renn_dagster.core.renn.train import RennFit, fit_renn, torch_threads

STUDY_SPLITS: tuple[str, ...] = ("split_patient", "split_site")
BASELINES: dict[str, str] = {"LMM_intercept": "LMM (intercept)", "LMM_pca": "LMM (PCA features)"}
LOSS_DISPLAY: dict[str, str] = {**DISPLAY_NAMES, **BASELINES}
UNIT, SITE, OUTCOME, FEATURE_PREFIX = "unit_id", "site_code", "y", "emb_"

HISTORY_COLUMNS = (
    "loss_func", "loss_func_disp", "m", "run", "epoch", "train_loss", "val_loss",
    "sigma2_b_est", "sigma2_e_est", "exact_nll_train", "exact_nll_val",
)  # fmt: skip
METRIC_COLUMNS = tuple(
    f"{subset}_{name}"
    for subset in ("seen", "unseen")
    for name in ("mse", "pearson", "spearman", "pred_nll", "n")
)
MODEL_COLUMNS = (
    "loss_func", "loss_func_disp", "m", "run", "best_epoch", "sigma2_b", "sigma2_e",
    "sigma2_b_ci_low", "sigma2_b_ci_high", "icc", "exact_nll_val", *METRIC_COLUMNS,
    "wall_s", "device", "profile", "split",
)  # fmt: skip
PREDICTION_COLUMNS = (
    "loss_func", "loss_func_disp", "m", "run", "unit_id", "site_code", "split", "y", "f_x",
    "blup", "y_hat", "residual", "seen_site",
)  # fmt: skip


@dataclass(frozen=True)
class StudySpec:
    """What one ``renn_model`` partition trains.

    ``epochs`` None takes the profile's (reference: 60; default: derived from ``step_budget``).
    ``features``: ``auto`` uses the ``emb_`` columns when the table has them (else the
    intercept-only model f = mu), ``none`` forces intercept-only, anything else is a prefix.
    """

    m: int
    profile: str = "default"
    seeds: tuple[int, ...] = REFERENCE_SEEDS[:3]
    losses: tuple[str, ...] = LOSSES
    split: str = "split_patient"
    epochs: int | None = None
    step_budget: int = 300
    hidden: tuple[int, ...] = (256, 64)
    features: str = "auto"
    pca_components: int = 10
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.split not in STUDY_SPLITS:
            raise RennSpecError(f"split {self.split!r} is not one of {list(STUDY_SPLITS)}")
        if not self.losses or len(set(self.losses)) != len(self.losses):
            raise RennSpecError(f"losses must be distinct and non-empty, got {self.losses}")
        if self.pca_components < 1:
            raise RennSpecError(f"pca_components must be >= 1, got {self.pca_components}")
        for loss in self.losses:  # RennSpec validates loss, m, profile, seeds and epochs
            self.renn_spec(loss)

    def renn_spec(self, loss: str, *, intercept_only: bool = False) -> RennSpec:
        return RennSpec(
            loss=loss,
            m=self.m,
            profile=self.profile,
            seeds=tuple(self.seeds),
            hidden=tuple(self.hidden),
            intercept_only=intercept_only,
            epochs=self.epochs,
            step_budget=self.step_budget,
            # the study keeps one whole-fit file per loss (study_io); no per-epoch files
            checkpoint_every=10**9,
        )


@dataclass(frozen=True)
class StudyData:
    """The cohort rows a study fits: RennData plus the unit id of each row."""

    data: RennData
    unit_id: np.ndarray
    site_code: np.ndarray
    feature_columns: tuple[str, ...]

    @property
    def intercept_only(self) -> bool:
        return self.data.x is None


@dataclass(frozen=True)
class StudyResult:
    history: pd.DataFrame
    models: pd.DataFrame
    predictions: pd.DataFrame
    fits: dict[str, RennFit]
    config: dict[str, object]


def study_data(table: pd.DataFrame, spec: StudySpec) -> StudyData:
    """Rows of the cohort table with a finite y, a site and a split label, as RennData."""
    needed = (UNIT, SITE, OUTCOME, spec.split)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise RennDataError(
            f"cohort table lacks column(s) {missing} (has {list(table.columns)[:12]})"
        )
    y = np.asarray(pd.to_numeric(table[OUTCOME], errors="coerce"), dtype=np.float64)
    keep = np.isfinite(y) & table[SITE].notna().to_numpy() & table[spec.split].notna().to_numpy()
    rows = table.loc[keep].reset_index(drop=True)
    if len(rows) < 3:
        raise RennDataError(f"cohort table has {len(rows)} usable rows; a study needs >= 3")
    prefix = FEATURE_PREFIX if spec.features == "auto" else spec.features
    columns = (
        ()
        if spec.features == "none"
        else tuple(str(c) for c in rows.columns if str(c).startswith(prefix))
    )
    if not columns and spec.features not in ("auto", "none"):
        raise RennDataError(f"no feature columns start with {spec.features!r}")
    x = rows[list(columns)].to_numpy(dtype=np.float64) if columns else None
    data = make_renn_data(
        rows[OUTCOME].to_numpy(dtype=np.float64),
        rows[SITE].astype(str).to_numpy(),
        x,
        rows[spec.split].astype(str).to_numpy(),
    )
    return StudyData(
        data=data,
        unit_id=rows[UNIT].astype(str).to_numpy(),
        site_code=rows[SITE].astype(str).to_numpy(),
        feature_columns=columns,
    )


def history_frame(fit: RennFit, m: int) -> pd.DataFrame:
    """The trainer's history in the study's columns (run = seed, exact NLLs renamed)."""
    h = fit.history
    return pd.DataFrame(
        {
            "loss_func": h["loss_func"].astype(str),
            "loss_func_disp": h["loss_func"].map(LOSS_DISPLAY),
            "m": m,
            "run": h["seed"].astype(np.int64),
            "epoch": h["epoch"].astype(np.int64),
            "train_loss": h["train_loss"].astype(np.float64),
            "val_loss": h["val_loss"].astype(np.float64),
            "sigma2_b_est": h["sigma2_b_est"].astype(np.float64),
            "sigma2_e_est": h["sigma2_e_est"].astype(np.float64),
            "exact_nll_train": h["train_exact_nll"].astype(np.float64),
            "exact_nll_val": h["val_exact_nll"].astype(np.float64),
        },
        columns=list(HISTORY_COLUMNS),
    )


def _metrics(
    sd: StudyData, fixed: np.ndarray, train: np.ndarray, s2e: float, s2b: float, name: str
) -> dict[str, float]:
    data = sd.data
    out: dict[str, float] = {col: math.nan for col in METRIC_COLUMNS}
    out.update({"seen_n": 0, "unseen_n": 0})
    test = data.rows("test")
    if test.size == 0:
        return out
    for row in score_predictions(
        model=name, loss=name, m="", seed=0, y=data.y, site=data.site,
        num_sites=data.num_sites, fixed=fixed, train_rows=train, test_rows=test,
        s2e=s2e, s2b=s2b,
    ):  # fmt: skip
        p = row.subset
        out.update({f"{p}_mse": row.mse, f"{p}_pearson": row.pearson,
                    f"{p}_spearman": row.spearman, f"{p}_pred_nll": row.nll / row.n_rows,
                    f"{p}_n": row.n_rows})  # fmt: skip
    return out


def _predictions(
    sd: StudyData, fixed: np.ndarray, train: np.ndarray, val: np.ndarray, s2e: float, s2b: float
) -> dict[str, np.ndarray]:
    data = sd.data
    b = blup(data.y[train] - fixed[train], data.site[train], data.num_sites, s2e, s2b)
    split = np.full(data.num_rows, "test", dtype=object)
    split[val] = "val"
    split[train] = "train"
    y_hat = fixed + b[data.site]
    return {
        "unit_id": sd.unit_id, "site_code": sd.site_code, "split": split.astype(str),
        "y": data.y, "f_x": fixed, "blup": b[data.site], "y_hat": y_hat,
        "residual": data.y - y_hat,
        "seen_site": (np.bincount(data.site[train], minlength=data.num_sites) > 0)[data.site],
    }  # fmt: skip


def _val_nll(sd: StudyData, fixed: np.ndarray, train: np.ndarray, val: np.ndarray, s2e, s2b):
    if val.size == 0:
        return math.nan
    data = sd.data
    value = predictive_nll(
        torch.as_tensor(data.y[train] - fixed[train]),
        torch.as_tensor(data.site[train]),
        torch.as_tensor(data.y[val] - fixed[val]),
        torch.as_tensor(data.site[val]),
        data.num_sites,
        torch.tensor(float(s2e), dtype=torch.float64),
        torch.tensor(float(s2b), dtype=torch.float64),
    )
    return float(value)


def fit_frames(
    fit: RennFit, sd: StudyData, spec: StudySpec, *, wall_s: float, device: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(models rows, prediction rows) of every seed of one trained loss."""
    fixed = fixed_predictions(fit, sd.data)
    loss = fit.spec.loss
    hist = fit.history.set_index(["seed", "epoch"])["val_exact_nll"]
    models, preds = [], []
    for s, seed in enumerate(fit.spec.seeds):
        s2e, s2b = float(fit.sigma2_e[s]), float(fit.sigma2_b[s])
        train, val = fit.train_rows[s], fit.val_rows[s]
        common = {"loss_func": loss, "loss_func_disp": LOSS_DISPLAY[loss], "m": spec.m, "run": seed}
        models.append(
            {
                **common,
                "best_epoch": fit.best_epoch[s],
                "sigma2_b": s2b,
                "sigma2_e": s2e,
                "sigma2_b_ci_low": math.nan,
                "sigma2_b_ci_high": math.nan,
                "icc": s2b / (s2b + s2e),
                "exact_nll_val": float(hist.loc[(seed, fit.best_epoch[s])]),
                **_metrics(sd, fixed[s], train, s2e, s2b, loss),
                "wall_s": wall_s,
                "device": device,
                "profile": spec.profile,
                "split": spec.split,
            }
        )
        preds.append(pd.DataFrame({**common, **_predictions(sd, fixed[s], train, val, s2e, s2b)}))
    return pd.DataFrame(models, columns=list(MODEL_COLUMNS)), pd.concat(preds, ignore_index=True)


def baseline_frames(
    sd: StudyData,
    spec: StudySpec,
    train_rows: tuple[np.ndarray, ...],
    val_rows: tuple[np.ndarray, ...],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact-ML LMMs (intercept; intercept + PCA scores of the features) on the RENN fits'
    training rows: one fit per distinct training set, run -1 when all seeds share it."""
    shared = all(np.array_equal(r, train_rows[0]) for r in train_rows)
    runs = (
        [(-1, train_rows[0], val_rows[0])]
        if shared
        else list(zip(spec.seeds, train_rows, val_rows, strict=True))
    )
    data = sd.data
    models, preds = [], []
    for run, train, val in runs:
        start = time.perf_counter()
        designs = {"LMM_intercept": np.ones((data.num_rows, 1))}
        if data.x is not None:
            # at most a quarter as many components as training rows keeps the GLS fit well posed
            k = max(1, min(spec.pca_components, train.size // 4))
            designs["LMM_pca"] = pca_design(data.x, train, k)
        for name, design in designs.items():
            lmm = fit_lmm(data.y[train], data.site[train], design[train])
            fixed = design @ lmm.beta
            common = {"loss_func": name, "loss_func_disp": BASELINES[name], "m": spec.m, "run": run}
            models.append(
                {
                    **common,
                    "best_epoch": -1,
                    "sigma2_b": lmm.sigma2_b,
                    "sigma2_e": lmm.sigma2_e,
                    "sigma2_b_ci_low": lmm.sigma2_b_ci[0],
                    "sigma2_b_ci_high": lmm.sigma2_b_ci[1],
                    "icc": lmm.icc,
                    "exact_nll_val": _val_nll(sd, fixed, train, val, lmm.sigma2_e, lmm.sigma2_b),
                    **_metrics(sd, fixed, train, lmm.sigma2_e, lmm.sigma2_b, name),
                    "wall_s": time.perf_counter() - start,
                    "device": "cpu",
                    "profile": spec.profile,
                    "split": spec.split,
                }
            )
            preds.append(
                pd.DataFrame(
                    {**common, **_predictions(sd, fixed, train, val, lmm.sigma2_e, lmm.sigma2_b)}
                )
            )
    return pd.DataFrame(models, columns=list(MODEL_COLUMNS)), pd.concat(preds, ignore_index=True)


def run_study(
    table: pd.DataFrame,
    spec: StudySpec,
    *,
    device: str = "cpu",
    on_fit: Callable[[str, RennFit, float], None] | None = None,
) -> StudyResult:
    """Train every loss of ``spec`` (all seeds stacked) on ``device``, fit the baselines, build
    the frames; the model rows and the config record the device. ``on_fit(loss, fit, wall_s)`` is
    called after each loss (progress logging).
    """
    sd = study_data(table, spec)
    fits: dict[str, RennFit] = {}
    histories, models, preds = [], [], []
    for loss in spec.losses:
        start = time.perf_counter()
        with torch_threads(spec.threads):
            fit = fit_renn(
                sd.data, spec.renn_spec(loss, intercept_only=sd.intercept_only), device=device
            )
        wall = time.perf_counter() - start
        fits[loss] = fit
        histories.append(history_frame(fit, spec.m))
        frames = fit_frames(fit, sd, spec, wall_s=wall, device=device)
        models.append(frames[0])
        preds.append(frames[1])
        if on_fit is not None:
            on_fit(loss, fit, wall)
    first = next(iter(fits.values()))
    base = baseline_frames(sd, spec, first.train_rows, first.val_rows)
    models.append(base[0])
    preds.append(base[1])
    config = study_config(spec, sd, first, device=device)
    config["cohort_sha256"] = table_digest(table)
    return StudyResult(
        history=pd.concat(histories, ignore_index=True),
        models=pd.concat(models, ignore_index=True),
        predictions=pd.concat(preds, ignore_index=True),
        fits=fits,
        config=config,
    )


def table_digest(table: pd.DataFrame) -> str:
    """SHA-256 of the table's values and column names: the cohort version a study trained on."""
    digest = hashlib.sha256("\x1f".join(map(str, table.columns)).encode())
    # List-valued cells (cohort_table's file_ids, slide_barcodes) are not hashable: hash their
    # text; only object columns can hold them, so the 2048 float columns are hashed as they are.
    hashable = table.copy()
    for column in [c for c, dtype in table.dtypes.items() if dtype.kind == "O"]:
        hashable[column] = table[column].map(str)
    digest.update(hash_pandas_object(hashable, index=False).to_numpy().tobytes())  # type: ignore[operator]
    return digest.hexdigest()


def study_config(spec: StudySpec, sd: StudyData, fit: RennFit, *, device: str) -> dict[str, object]:
    """What was trained, on what, where: written next to the frames as config.json."""
    data = sd.data
    train = data.rows("train")
    settings = fit.settings
    return {
        "m": spec.m,
        "profile": spec.profile,
        "seeds": list(spec.seeds),
        "losses": list(spec.losses),
        "split": spec.split,
        "epochs": fit.epochs,
        "epochs_requested": spec.epochs,
        "step_budget": spec.step_budget if spec.profile == "default" else None,
        "sampler": settings.sampler,
        "hidden": [] if sd.intercept_only else list(spec.hidden),
        "intercept_only": sd.intercept_only,
        "features": len(sd.feature_columns),
        "pca_components": spec.pca_components,
        "rows": data.num_rows,
        "sites": data.num_sites,
        "split_rows": {k: int(data.rows(k).size) for k in ("train", "val", "test")},
        "y_variance": float(np.var(data.y[train])) if train.size else math.nan,
        "device": device,
        "torch_version": torch.__version__,
    }
