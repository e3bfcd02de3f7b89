"""Direct dense-matrix versions of every loss (float64 numpy), written from the definitions with
explicit covariance matrices, inverses and determinants: the yardstick for the closed forms."""

from __future__ import annotations

import math

import numpy as np


def cov(k: int, s2e: float, s2b: float) -> np.ndarray:
    return s2e * np.eye(k) + s2b * np.ones((k, k))


def logdet(mat: np.ndarray) -> float:
    sign, value = np.linalg.slogdet(mat)
    assert sign > 0
    return float(value)


def alpha(a: int, n: int, s2e: float, s2b: float) -> float:
    if a == n:
        return 0.0
    ratio = logdet(cov(n, s2e, s2b)) - logdet(cov(a, s2e, s2b)) - logdet(cov(n - a, s2e, s2b))
    return (a / n) * 0.5 * ratio


def dense_loss(name: str, e: np.ndarray, n: int, s2e: float, s2b: float) -> float:
    a = e.size
    const = a * math.log(2 * math.pi)
    if name == "NLL_no_RE":
        v = s2e * np.eye(a)
        return 0.5 * (logdet(v) + e @ np.linalg.inv(v) @ e + const)
    v_a = cov(a, s2e, s2b)
    if name in ("NLL", "NLL_cor_det"):
        base = 0.5 * (logdet(v_a) + e @ np.linalg.inv(v_a) @ e + const)
        return base + (alpha(a, n, s2e, s2b) if name == "NLL_cor_det" else 0.0)
    v_inv_n = np.linalg.inv(cov(n, s2e, s2b))
    if name == "NLL_cor_1":
        sub = v_inv_n[:a, :a]
        return 0.5 * (logdet(v_a) + e @ sub @ e + const) + alpha(a, n, s2e, s2b)
    if name == "NLL_U":
        diag = v_inv_n[0, 0]
        off = v_inv_n[0, 1] if n > 1 else 0.0
        weight = (n - 1) / (a - 1) if a > 1 else 0.0
        q = diag * np.eye(a) + weight * off * (np.ones((a, a)) - np.eye(a))
        share = (a / n) * (logdet(cov(n, s2e, s2b)) + n * math.log(2 * math.pi))
        return 0.5 * (share + e @ q @ e)
    raise KeyError(name)


def dense_exact_nll(e: np.ndarray, site: np.ndarray, s2e: float, s2b: float) -> float:
    total = 0.0
    for j in np.unique(site):
        r = e[site == j]
        v = cov(r.size, s2e, s2b)
        total += 0.5 * (logdet(v) + r @ np.linalg.solve(v, r) + r.size * math.log(2 * math.pi))
    return total
