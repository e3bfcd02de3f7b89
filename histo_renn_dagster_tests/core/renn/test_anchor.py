"""The maximum-likelihood anchor on the real TCGA-BRCA table (y = log MKI67 TPM, site only).

The test finds the exact ML optimum itself (dense per-site likelihood + scipy) and checks that
minibatch training reaches it. Tolerances for m = 2, 8, 32 come from repeated runs
(benchmarks/renn_study.py --parts anchor, 10 seeds): the largest single-seed relative deviation
of NLL_U from the ML values was 4.9% / 2.9% / 0.8% for sigma2_b (m = 2 / 8 / 32), 0.7% for
sigma2_e and 0.1% for mu. The test averages 3 seeds and allows about twice the single-seed
spread: 9% / 5% / 3% (sigma2_b), 1.6% (sigma2_e), 0.3% (mu).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from histo_renn_dagster.core.renn.baselines import fit_lmm
from histo_renn_dagster.core.renn.data import make_renn_data
from histo_renn_dagster.core.renn.spec import RennSpec
from histo_renn_dagster.core.renn.train import fit_renn


def _ml_optimum(y: np.ndarray, site: np.ndarray) -> tuple[float, float, float, float]:
    groups = [y[site == j] for j in np.unique(site)]

    def nll(theta: np.ndarray) -> float:
        mu, s2b, s2e = theta[0], math.exp(theta[1]), math.exp(theta[2])
        total = 0.0
        for g in groups:
            r = g - mu
            v = s2e * np.eye(r.size) + s2b
            total += 0.5 * (np.linalg.slogdet(v)[1] + r @ np.linalg.solve(v, r))
            total += 0.5 * r.size * math.log(2 * math.pi)
        return total

    start = np.array([y.mean(), math.log(0.1 * y.var()), math.log(0.9 * y.var())])
    res = optimize.minimize(nll, start, method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-9})
    return float(res.x[0]), math.exp(res.x[1]), math.exp(res.x[2]), float(res.fun)


@pytest.fixture(scope="module")
def slide_optimum(slide_table: pd.DataFrame):
    return _ml_optimum(slide_table["y"].to_numpy(), slide_table["tss_code"].to_numpy())


def _data(table: pd.DataFrame):
    return make_renn_data(table["y"].to_numpy(), table["tss_code"].to_numpy())


def test_exact_optimum_is_the_documented_one(slide_optimum) -> None:
    mu, s2b, s2e, nll = slide_optimum
    assert (round(mu, 3), round(s2b, 4), round(s2e, 4)) == (2.866, 0.1126, 1.0048)
    assert nll == pytest.approx(1478.71, abs=0.01)


def test_default_profile_full_sites_reaches_the_ml_optimum(slide_table, slide_optimum) -> None:
    mu, s2b, s2e, _ = slide_optimum
    fit = fit_renn(_data(slide_table), RennSpec(loss="NLL_U", m=None, intercept_only=True))
    assert fit.mu[0] == pytest.approx(mu, rel=0.01)
    assert fit.sigma2_b[0] == pytest.approx(s2b, rel=0.01)
    assert fit.sigma2_e[0] == pytest.approx(s2e, rel=0.01)


def test_case_level_rows_reach_their_own_optimum(case_table) -> None:
    mu, s2b, s2e, _ = _ml_optimum(case_table["y"].to_numpy(), case_table["tss_code"].to_numpy())
    assert s2b == pytest.approx(0.120, abs=0.001) and s2e == pytest.approx(1.020, abs=0.001)
    fit = fit_renn(_data(case_table), RennSpec(loss="NLL", m=None, intercept_only=True))
    assert fit.mu[0] == pytest.approx(mu, rel=0.01)
    assert fit.sigma2_b[0] == pytest.approx(s2b, rel=0.01)
    assert fit.sigma2_e[0] == pytest.approx(s2e, rel=0.01)


@pytest.mark.parametrize(("m", "tol_b"), [(2, 0.09), (8, 0.05), (32, 0.03)])
def test_nll_u_minibatches_land_on_the_ml_optimum(slide_table, slide_optimum, m, tol_b) -> None:
    mu, s2b, s2e, _ = slide_optimum
    spec = RennSpec(loss="NLL_U", m=m, intercept_only=True, seeds=(17, 41, 92))
    fit = fit_renn(_data(slide_table), spec)
    assert float(np.mean(fit.mu)) == pytest.approx(mu, rel=0.003)
    assert float(np.mean(fit.sigma2_b)) == pytest.approx(s2b, rel=tol_b)
    assert float(np.mean(fit.sigma2_e)) == pytest.approx(s2e, rel=0.016)


def test_lmm_baseline_matches_the_exact_optimum(slide_table, slide_optimum) -> None:
    mu, s2b, s2e, nll = slide_optimum
    fit = fit_lmm(slide_table["y"].to_numpy(), pd.factorize(slide_table["tss_code"])[0])
    assert (fit.mu, fit.sigma2_b, fit.sigma2_e) == pytest.approx((mu, s2b, s2e), rel=1e-4)
    assert fit.nll == pytest.approx(nll, abs=1e-5)
    lo, hi = fit.sigma2_b_ci
    assert 0.03 < lo < s2b < hi < 0.4
    assert fit.lrt_pvalue < 1e-10
    assert fit.icc == pytest.approx(fit.sigma2_b / (fit.sigma2_b + fit.sigma2_e))
