"""Simulated cohorts with known variance components, for checks and studies.

y = f(x) + b_site + e with x ~ N(0, I_p), a fixed nonlinear f (tanh, sine and square terms of the first
three features; the others are noise), b ~ N(0, sigma2_b),
e ~ N(0, sigma2_e), and the caller's site sizes (e.g. the real TCGA-BRCA ones).
"""

from __future__ import annotations

import numpy as np

from histo_renn_dagster.core.errors import RennDataError
from histo_renn_dagster.core.renn.data import RennData, assign_split, make_renn_data


def true_f(x: np.ndarray) -> np.ndarray:
    """The simulation's mean function (variance about 1.4 under x ~ N(0, I))."""
    return 2.0 + 1.2 * np.tanh(1.5 * x[:, 0]) + 0.8 * np.sin(1.2 * x[:, 1]) + 0.3 * x[:, 2] ** 2


def simulate_cohort(
    site_sizes: np.ndarray,
    *,
    sigma2_b: float,
    sigma2_e: float,
    p: int = 4,
    seed: int = 0,
    split: bool = True,
    split_seed: int | None = None,
) -> tuple[RennData, np.ndarray]:
    """A simulated RennData (with train/val/test labels when ``split``) and the true f values."""
    sizes = np.asarray(site_sizes, dtype=np.int64)
    if p < 3 or sizes.size < 2 or (sizes < 1).any():
        raise RennDataError(f"need p >= 3 and >= 2 non-empty sites, got p={p}, sizes={sizes[:5]}")
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(sizes.size), sizes)
    x = rng.standard_normal((site.size, p))
    f = true_f(x)
    b = rng.normal(0.0, np.sqrt(sigma2_b), sizes.size)
    y = f + b[site] + rng.normal(0.0, np.sqrt(sigma2_e), site.size)
    labels = assign_split(site, seed=seed if split_seed is None else split_seed) if split else None
    names = np.array([f"S{i:02d}" for i in site])
    return make_renn_data(y, names, x, labels), f
