"""Held-out evaluation: BLUPs from training rows only, predictive NLL, MSE, Pearson, Spearman.

Test rows are scored in two groups: ``seen`` (patients held out from sites that have training
rows; y_hat = f(x) + b_site, the BLUP) and ``unseen`` (whole held-out sites; b = 0). The
predictive NLL of test rows is conditional on the training rows of their site (marginal for an
unseen site), so it rewards a model for using what the site's other patients reveal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats

from histo_renn_dagster.core.renn.data import RennData
from histo_renn_dagster.core.renn.likelihood import DISPLAY_NAMES, exact_nll, predictive_nll
from histo_renn_dagster.core.renn.model import forward_all
from histo_renn_dagster.core.renn.train import RennFit

SUBSETS: tuple[str, ...] = ("seen", "unseen")


@dataclass(frozen=True)
class MetricRow:
    """One model's metrics on one subset of the test rows (one seed)."""

    model: str
    loss: str
    m: str
    seed: int
    subset: str
    n_rows: int
    nll: float  # total predictive NLL of the subset's rows
    mse: float
    mse_no_re: float  # MSE of the fixed part alone (b = 0)
    pearson: float
    spearman: float
    sigma2_b: float
    sigma2_e: float

    def as_record(self) -> dict[str, object]:
        return asdict(self)


def blup(
    residuals: np.ndarray, site: np.ndarray, num_sites: int, s2e: float, s2b: float
) -> np.ndarray:
    """b_j = s2b / (s2b + s2e / n_j) x mean residual of site j; 0 for sites without rows."""
    counts = np.bincount(site, minlength=num_sites).astype(np.float64)
    sums = np.bincount(site, weights=residuals, minlength=num_sites)
    means = np.divide(sums, counts, out=np.zeros(num_sites), where=counts > 0)
    if s2b <= 0:
        return np.zeros(num_sites)
    shrink = np.divide(s2b, s2b + np.divide(s2e, counts, where=counts > 0, out=np.ones(num_sites)))
    return np.where(counts > 0, shrink * means, 0.0)


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(fn(a, b)[0])


def score_predictions(
    *,
    model: str,
    loss: str,
    m: str,
    seed: int,
    y: np.ndarray,
    site: np.ndarray,
    num_sites: int,
    fixed: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    s2e: float,
    s2b: float,
) -> list[MetricRow]:
    """Metrics of y_hat = fixed + BLUP on the test rows, split into seen and unseen sites.

    ``fixed`` is the fixed part (f(x), or X beta) for every row of the data, on y's scale.
    """
    resid_train = y[train_rows] - fixed[train_rows]
    b = blup(resid_train, site[train_rows], num_sites, s2e, s2b)
    seen_site = np.bincount(site[train_rows], minlength=num_sites) > 0
    out: list[MetricRow] = []
    for subset in SUBSETS:
        keep = seen_site[site[test_rows]] if subset == "seen" else ~seen_site[site[test_rows]]
        rows = test_rows[keep]
        if rows.size == 0:
            continue
        y_hat = fixed[rows] + b[site[rows]]
        nll = predictive_nll(
            torch.as_tensor(resid_train, dtype=torch.float64),
            torch.as_tensor(site[train_rows]),
            torch.as_tensor(y[rows] - fixed[rows], dtype=torch.float64),
            torch.as_tensor(site[rows]),
            num_sites,
            torch.tensor(s2e, dtype=torch.float64),
            torch.tensor(s2b, dtype=torch.float64),
        )
        out.append(
            MetricRow(
                model=model,
                loss=loss,
                m=m,
                seed=seed,
                subset=subset,
                n_rows=int(rows.size),
                nll=float(nll),
                mse=float(np.mean((y[rows] - y_hat) ** 2)),
                mse_no_re=float(np.mean((y[rows] - fixed[rows]) ** 2)),
                pearson=_corr(stats.pearsonr, y[rows], y_hat),
                spearman=_corr(stats.spearmanr, y[rows], y_hat),
                sigma2_b=float(s2b),
                sigma2_e=float(s2e),
            )
        )
    return out


def fixed_predictions(fit: RennFit, data: RennData) -> np.ndarray:
    """f(x) of every row for every seed, (S, N), on the original y scale."""
    params = {k: v.double() for k, v in fit.params.items()}
    x = None if data.x is None or fit.intercept_only else torch.tensor(data.x)
    with torch.no_grad():
        f = forward_all(params, x, data.num_rows)
    return f.numpy() + fit.y_offset


def evaluate_fit(fit: RennFit, data: RennData) -> list[MetricRow]:
    """Metrics of every seed of ``fit`` on the rows of ``data`` labelled test."""
    test_rows = data.rows("test")
    fixed = fixed_predictions(fit, data)
    rows: list[MetricRow] = []
    for s, seed in enumerate(fit.spec.seeds):
        rows.extend(
            score_predictions(
                model=DISPLAY_NAMES[fit.spec.loss],
                loss=fit.spec.loss,
                m=fit.spec.m_label,
                seed=seed,
                y=data.y,
                site=data.site,
                num_sites=data.num_sites,
                fixed=fixed[s],
                train_rows=fit.train_rows[s],
                test_rows=test_rows,
                s2e=float(fit.sigma2_e[s]),
                s2b=float(fit.sigma2_b[s]),
            )
        )
    return rows


def training_exact_nll(fit: RennFit, data: RennData) -> np.ndarray:
    """Exact NLL of each seed's training rows at its selected parameters."""
    fixed = fixed_predictions(fit, data)
    out = []
    for s in range(len(fit.spec.seeds)):
        rows = fit.train_rows[s]
        value = exact_nll(
            torch.as_tensor(data.y[rows] - fixed[s, rows]),
            torch.as_tensor(data.site[rows]),
            data.num_sites,
            torch.tensor(float(fit.sigma2_e[s]), dtype=torch.float64),
            torch.tensor(float(fit.sigma2_b[s]), dtype=torch.float64),
        )
        out.append(float(value))
    return np.array(out)


def summarise_test(fit: RennFit, data: RennData) -> list[dict[str, float]]:
    """Per seed, over all test rows together: MSE of f + BLUP, MSE of f alone, Spearman."""
    test = data.rows("test")
    fixed = fixed_predictions(fit, data)
    out = []
    for s in range(len(fit.spec.seeds)):
        train = fit.train_rows[s]
        b = blup(
            data.y[train] - fixed[s, train],
            data.site[train],
            data.num_sites,
            float(fit.sigma2_e[s]),
            float(fit.sigma2_b[s]),
        )
        y, f = data.y[test], fixed[s, test]
        y_hat = f + b[data.site[test]]
        out.append(
            {
                "mse": float(np.mean((y - y_hat) ** 2)) if test.size else math.nan,
                "mse_no_re": float(np.mean((y - f) ** 2)) if test.size else math.nan,
                "spearman": _corr(stats.spearmanr, y, y_hat),
            }
        )
    return out
