"""Exact-ML linear mixed models: GLS profiling, profile-likelihood intervals, boundary LRT."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from histo_renn_dagster.core.errors import RennDataError
from histo_renn_dagster.core.renn.baselines import CHI2_95_HALF, fit_lmm, pca_design
from histo_renn_dagster_tests.core.renn.dense import dense_exact_nll


def _sim(seed: int, s2b: float, k: int = 2):
    rng = np.random.default_rng(seed)
    site = rng.integers(0, 25, 400)
    design = np.column_stack([np.ones(400), rng.normal(size=(400, k))])
    beta = np.arange(1, k + 2, dtype=float)
    y = design @ beta + rng.normal(0, math.sqrt(s2b), 25)[site] + rng.normal(0, 1, 400)
    return y, site, design


def _profile_b(y, site, design, s2b: float) -> float:
    """min over beta (least squares under V) and s2e of the dense NLL at fixed s2b."""

    def nll(log_e: float) -> float:
        s2e = math.exp(log_e)
        # GLS through a dense V per site
        blocks = [np.flatnonzero(site == j) for j in np.unique(site)]
        a = sum(
            design[b].T @ np.linalg.solve(s2e * np.eye(b.size) + s2b, design[b]) for b in blocks
        )
        r = sum(design[b].T @ np.linalg.solve(s2e * np.eye(b.size) + s2b, y[b]) for b in blocks)
        beta = np.linalg.solve(a, r)
        return dense_exact_nll(y - design @ beta, site, s2e, s2b)

    return float(optimize.minimize_scalar(nll, bounds=(-3, 3), method="bounded").fun)


def test_fixed_effects_and_variances_match_a_dense_likelihood() -> None:
    y, site, design = _sim(0, 0.5)
    fit = fit_lmm(y, site, design)
    dense = dense_exact_nll(y - design @ fit.beta, site, fit.sigma2_e, fit.sigma2_b)
    assert fit.nll == pytest.approx(dense, rel=1e-10)
    assert _profile_b(y, site, design, fit.sigma2_b) == pytest.approx(fit.nll, abs=1e-5)
    # the optimum: moving either variance raises the NLL
    for s2b in (fit.sigma2_b * 0.9, fit.sigma2_b * 1.1):
        assert _profile_b(y, site, design, s2b) > fit.nll


def test_profile_interval_ends_sit_at_the_chi2_cutoff() -> None:
    y, site, design = _sim(1, 0.4)
    fit = fit_lmm(y, site, design)
    lo, hi = fit.sigma2_b_ci
    assert lo < fit.sigma2_b < hi
    for end in (lo, hi):
        assert _profile_b(y, site, design, end) - fit.nll == pytest.approx(CHI2_95_HALF, abs=1e-3)
    assert fit.sigma2_e_ci[0] < fit.sigma2_e < fit.sigma2_e_ci[1]


def test_lrt_of_no_random_effect() -> None:
    y, site, design = _sim(2, 0.5)
    fit = fit_lmm(y, site, design)
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    null = dense_exact_nll(resid, site, float(np.mean(resid**2)), 0.0)
    assert fit.lrt_stat == pytest.approx(2 * (null - fit.nll), rel=1e-6)
    assert fit.lrt_pvalue < 1e-6
    y0, site0, design0 = _sim(3, 0.0)
    null_fit = fit_lmm(y0, site0, design0)
    assert null_fit.sigma2_b_ci[0] == 0.0 and null_fit.lrt_pvalue > 0.05


def test_pca_design_uses_training_rows_only() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 6))
    train = np.arange(30)
    design = pca_design(x, train, 3)
    assert design.shape == (50, 4) and (design[:, 0] == 1).all()
    np.testing.assert_allclose(design[train, 1:].std(0), 1.0)
    x2 = x.copy()
    x2[30:] += 100.0  # test rows do not move the components
    np.testing.assert_allclose(pca_design(x2, train, 3)[train], design[train])


def test_rank_deficient_design_is_named() -> None:
    y, site, design = _sim(5, 0.2)
    with pytest.raises(RennDataError, match="rank deficient"):
        fit_lmm(y, site, np.column_stack([design, design[:, 1]]))
