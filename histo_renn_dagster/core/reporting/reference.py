"""The exact ML reference for the variance plots, and site effects with intervals.

The reference is the intercept-only linear mixed model y = mu + b_site + e fitted by exact maximum
likelihood (``core.renn.baselines.fit_lmm``, with 95% profile-likelihood intervals) on the units
the models trained on: the training units when every run used the same split (the ``default``
profile), else every unit (the ``reference`` profile draws a fresh split per seed, so there is no
single training set); ``MlReference.rows`` says which.

A site effect's interval is its BLUP +- 1.96 conditional standard deviations,
sd_j = sqrt(s2b s2e / (s2e + n_j s2b)) with n_j the site's training units: the posterior spread
of b_j given the training rows when the variances are taken as known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from histo_renn_dagster.core.errors import RennDataError
from histo_renn_dagster.core.renn.baselines import fit_lmm
from histo_renn_dagster.core.renn.evaluate import blup

Z95 = 1.959963984540054


@dataclass(frozen=True)
class MlReference:
    """Exact ML variance components of the intercept-only mixed model, with 95% intervals."""

    sigma2_b: float
    sigma2_b_ci: tuple[float, float]
    sigma2_e: float
    sigma2_e_ci: tuple[float, float]
    icc: float
    mu: float
    units: int
    sites: int
    rows: str  # "train units" | "all units"

    def as_record(self) -> dict[str, object]:
        return {
            "sigma2_b": self.sigma2_b,
            "sigma2_b_ci": list(self.sigma2_b_ci),
            "sigma2_e": self.sigma2_e,
            "sigma2_e_ci": list(self.sigma2_e_ci),
            "icc": self.icc,
            "mu": self.mu,
            "units": self.units,
            "sites": self.sites,
            "rows": self.rows,
        }


def reference_units(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per unit (sorted by unit_id): site_code, y, ``train`` (a training unit in every
    model and run) and ``ever_train`` (in at least one)."""
    if predictions.empty:
        return pd.DataFrame(columns=["unit_id", "site_code", "y", "train", "ever_train"])
    is_train = predictions["split"] == "train"
    grouped = predictions.assign(_train=is_train).groupby("unit_id", sort=True)
    return pd.DataFrame(
        {
            "site_code": grouped["site_code"].first(),
            "y": grouped["y"].first(),
            "train": grouped["_train"].all(),
            "ever_train": grouped["_train"].any(),
        }
    ).reset_index()


def fit_ml_reference(predictions: pd.DataFrame) -> MlReference | None:
    """The exact ML fit on the models' units, or None when there are too few to fit one."""
    units = reference_units(predictions)
    fixed_split = bool(units["train"].any()) and bool((units["train"] == units["ever_train"]).all())
    rows = units.loc[units["train"]] if fixed_split else units
    if len(rows) < 3 or rows["site_code"].nunique() < 2:
        return None
    _, site = np.unique(rows["site_code"].to_numpy(str), return_inverse=True)
    try:
        fit = fit_lmm(rows["y"].to_numpy(np.float64), site)
    except RennDataError:
        return None
    return MlReference(
        sigma2_b=fit.sigma2_b,
        sigma2_b_ci=fit.sigma2_b_ci,
        sigma2_e=fit.sigma2_e,
        sigma2_e_ci=fit.sigma2_e_ci,
        icc=fit.icc,
        mu=fit.mu,
        units=len(rows),
        sites=int(site.max()) + 1,
        rows="train units" if fixed_split else "all units",
    )


def conditional_sd(n_train: np.ndarray, s2b: float, s2e: float) -> np.ndarray:
    """sd of b_j given n_j training rows of its site (sqrt(s2b) for a site without any)."""
    n = np.asarray(n_train, dtype=np.float64)
    if not (math.isfinite(s2b) and s2b > 0):
        return np.zeros(n.shape)
    return np.sqrt(s2b * s2e / (s2e + n * s2b))


def model_site_effects(predictions: pd.DataFrame, s2b: float, s2e: float) -> pd.DataFrame:
    """Site BLUPs of one fitted model (its prediction rows) with 95% intervals, sorted by site."""
    sites = predictions["site_code"].to_numpy(str)
    names, site = np.unique(sites, return_inverse=True)
    train = (predictions["split"] == "train").to_numpy(bool)
    n = np.bincount(site[train], minlength=len(names))
    # A unit's blup is its site's effect (0 at an unseen site); the mean makes it one number.
    b = np.bincount(site, weights=predictions["blup"].to_numpy(np.float64), minlength=len(names))
    b = b / np.bincount(site, minlength=len(names))
    sd = conditional_sd(n, s2b, s2e)
    return pd.DataFrame(
        {
            "site_code": names,
            "n_train": n,
            "blup": b,
            "sd": sd,
            "low": b - Z95 * sd,
            "high": b + Z95 * sd,
        }
    )


def ml_site_effects(predictions: pd.DataFrame, ref: MlReference) -> pd.DataFrame:
    """Site BLUPs of the exact ML reference fit (training residuals y - mu), with intervals."""
    units = reference_units(predictions)
    names = np.array(sorted(units["site_code"].unique()), dtype=str)
    site = np.searchsorted(names, units["site_code"].to_numpy(str))
    train = (
        units["train"].to_numpy(bool) if ref.rows == "train units" else np.ones(len(units), bool)
    )
    resid = units["y"].to_numpy(np.float64)[train] - ref.mu
    b = blup(resid, site[train], len(names), ref.sigma2_e, ref.sigma2_b)
    n = np.bincount(site[train], minlength=len(names))
    sd = conditional_sd(n, ref.sigma2_b, ref.sigma2_e)
    return pd.DataFrame(
        {
            "site_code": names,
            "n_train": n,
            "blup": b,
            "sd": sd,
            "low": b - Z95 * sd,
            "high": b + Z95 * sd,
        }
    )
