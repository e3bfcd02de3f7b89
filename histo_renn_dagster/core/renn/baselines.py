"""Classical baselines fitted by exact maximum likelihood: y = X beta + b_site + e.

For fixed (s2e, s2b) the GLS estimate of beta and the profiled NLL need only per-site sums
(X_j'X_j, X_j'1, X_j'y, 1'y_j, y_j'y_j), because V_j^{-1} = I/s2e - c_j 1 1'. The ML variance
components then come from a 2-D optimisation over (log s2e, log s2b), and each profile-likelihood
interval from root-finding on the profiled NLL. X = a column of ones gives the intercept-only
mixed model; ones plus principal-component scores of the image features give the linear
mixed model on PCA-reduced features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from histo_renn_dagster.core.errors import RennDataError
from histo_renn_dagster.core.renn.likelihood import LOG_2PI

CHI2_95_HALF = float(stats.chi2.ppf(0.95, 1) / 2.0)


@dataclass(frozen=True)
class LmmFit:
    """ML fit of a random-intercept linear mixed model with 95% profile-likelihood intervals."""

    beta: np.ndarray
    sigma2_b: float
    sigma2_e: float
    nll: float
    sigma2_b_ci: tuple[float, float]
    sigma2_e_ci: tuple[float, float]
    icc: float
    lrt_stat: float  # 2 (NLL at sigma2_b = 0 - NLL at the optimum)
    lrt_pvalue: float  # boundary test: 50:50 mixture of chi2_0 and chi2_1

    @property
    def mu(self) -> float:
        return float(self.beta[0])


class _SiteSums:
    def __init__(self, y: np.ndarray, site: np.ndarray, design: np.ndarray) -> None:
        num = int(site.max()) + 1
        self.n = np.bincount(site, minlength=num).astype(np.float64)
        keep = self.n > 0
        k = design.shape[1]
        self.xtx = np.zeros((num, k, k))
        np.add.at(self.xtx, site, design[:, :, None] * design[:, None, :])
        self.x1 = np.zeros((num, k))
        np.add.at(self.x1, site, design)
        self.xy = np.zeros((num, k))
        np.add.at(self.xy, site, design * y[:, None])
        self.y1 = np.bincount(site, weights=y, minlength=num)
        self.yy = np.bincount(site, weights=y * y, minlength=num)
        self.n, self.xtx, self.x1, self.xy = (
            self.n[keep],
            self.xtx[keep],
            self.x1[keep],
            self.xy[keep],
        )
        self.y1, self.yy = self.y1[keep], self.yy[keep]
        self.total = float(self.n.sum())

    def profile(self, s2e: float, s2b: float) -> tuple[float, np.ndarray]:
        """NLL minimised over beta at (s2e, s2b), and that beta (GLS)."""
        c = s2b / (s2e * (s2e + self.n * s2b))
        a = self.xtx.sum(0) / s2e - np.einsum("j,jk,jl->kl", c, self.x1, self.x1)
        r = self.xy.sum(0) / s2e - (c * self.y1) @ self.x1
        beta = np.linalg.solve(a, r)
        quad = self.yy.sum() / s2e - float(np.sum(c * self.y1**2)) - float(r @ beta)
        logdet = float(np.sum((self.n - 1) * math.log(s2e) + np.log(s2e + self.n * s2b)))
        return 0.5 * (logdet + quad + self.total * LOG_2PI), beta


def _inner_min(fun, lo: float, hi: float) -> float:
    res = optimize.minimize_scalar(fun, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
    return float(res.fun)


def fit_lmm(y: np.ndarray, site: np.ndarray, design: np.ndarray | None = None) -> LmmFit:
    """Exact ML fit; ``design`` defaults to an intercept column."""
    y = np.asarray(y, dtype=np.float64)
    design = np.ones((y.size, 1)) if design is None else np.asarray(design, dtype=np.float64)
    if design.shape[0] != y.size or y.size < 3:
        raise RennDataError(f"design has {design.shape[0]} rows for {y.size} outcomes (need >= 3)")
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise RennDataError(
            f"the fixed-effect design ({design.shape[1]} columns) is rank deficient"
        )
    sums = _SiteSums(y, np.asarray(site), design)
    scale = float(np.var(y)) or 1.0
    lo, hi = math.log(scale * 1e-10), math.log(scale * 1e3)

    def nll(theta: np.ndarray) -> float:
        return sums.profile(math.exp(theta[0]), math.exp(theta[1]))[0]

    # no random effect: closed form s2e = RSS / N
    null_nll = sums.profile(1.0, 0.0)[0]
    beta0 = sums.profile(1.0, 0.0)[1]
    rss = float(np.sum((y - design @ beta0) ** 2))
    null_nll = sums.profile(rss / y.size, 0.0)[0]
    best = None
    for start_b in (0.1, 0.5):
        x0 = np.array([math.log(rss / y.size * (1 - start_b)), math.log(rss / y.size * start_b)])
        res = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=[(lo, hi), (lo, hi)])
        res = optimize.minimize(
            nll,
            res.x,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000},
        )
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    s2e, s2b = math.exp(best.x[0]), math.exp(best.x[1])
    value, beta = sums.profile(s2e, s2b)
    if null_nll < value:  # the optimum is on the boundary sigma2_b = 0
        s2e, s2b, value, beta = rss / y.size, 0.0, null_nll, beta0
    b_ci = _interval(
        lambda lb: _inner_min(lambda le: nll(np.array([le, lb])), lo, hi),
        s2b,
        value,
        lo,
        hi,
        lambda le: sums.profile(math.exp(le), 0.0)[0],
    )
    e_ci = _interval(
        lambda le: _inner_min(lambda lb: nll(np.array([le, lb])), lo, hi), s2e, value, lo, hi, None
    )
    lrt = max(2.0 * (null_nll - value), 0.0)
    return LmmFit(
        beta=beta,
        sigma2_b=s2b,
        sigma2_e=s2e,
        nll=value,
        sigma2_b_ci=b_ci,
        sigma2_e_ci=e_ci,
        icc=s2b / (s2b + s2e),
        lrt_stat=lrt,
        lrt_pvalue=1.0 if lrt == 0 else float(0.5 * stats.chi2.sf(lrt, 1)),
    )


def _interval(profile, estimate: float, optimum: float, lo: float, hi: float, at_zero):
    """95% profile interval of a variance from its profiled NLL on the log scale.

    ``at_zero`` (for sigma2_b) is the profile at the boundary value 0, as a function of the
    other log-variance; when it is within the cut-off the lower end is 0.
    """

    def excess(log_v: float) -> float:
        return profile(log_v) - optimum - CHI2_95_HALF

    centre = math.log(estimate) if estimate > 0 else lo
    if at_zero is not None and _inner_min(at_zero, lo, hi) - optimum - CHI2_95_HALF <= 0:
        lower = 0.0
    elif excess(lo) <= 0:
        lower = math.exp(lo)
    else:
        lower = math.exp(float(optimize.brentq(excess, lo, centre, xtol=1e-10)))  # type: ignore[arg-type]
    upper = (
        math.exp(float(optimize.brentq(excess, centre, hi, xtol=1e-10)))  # type: ignore[arg-type] if excess(hi) > 0 else math.inf
    )
    return (lower, upper)


def pca_scores(x_train: np.ndarray, x_all: np.ndarray, n_components: int) -> np.ndarray:
    """Scores of every row on the first principal components of the training features."""
    mean = x_train.mean(0)
    _, _, vt = np.linalg.svd(x_train - mean, full_matrices=False)
    k = min(n_components, vt.shape[0])
    return (x_all - mean) @ vt[:k].T


def pca_design(x: np.ndarray, train_rows: np.ndarray, n_components: int) -> np.ndarray:
    """[1, PCA scores] for every row; components fitted on the training rows only."""
    scores = pca_scores(x[train_rows], x, n_components)
    sd = scores[train_rows].std(0)
    scores = scores / np.where(sd > 0, sd, 1.0)  # unit scale keeps the GLS system well conditioned
    return np.column_stack([np.ones(x.shape[0]), scores])
