"""The closed-form losses against dense matrices, and NLL_U's unbiasedness by enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from histo_renn_dagster.core.errors import RennSpecError
from histo_renn_dagster.core.renn.likelihood import (
    LOSSES,
    block_losses,
    block_stats,
    check_loss,
    exact_nll,
    predictive_nll,
)
from histo_renn_dagster_tests.core.renn.dense import cov, dense_exact_nll, dense_loss

T = torch.float64


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=T)


def _closed(name: str, e: np.ndarray, n: int, s2e: float, s2b: float) -> float:
    a, s, ss = _t(e.size), _t(e.sum()), _t((e * e).sum())
    return float(block_losses(name, a, s, ss, _t(n), _t(s2e), _t(s2b)))


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_matches_dense_matrices_on_random_batches(name: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(60):
        n = int(rng.integers(2, 40))
        a = int(rng.integers(2, n + 1)) if name == "NLL_U" else int(rng.integers(1, n + 1))
        e = rng.normal(0.3, 1.5, a)
        s2e, s2b = float(rng.uniform(0.05, 3)), float(rng.uniform(0.001, 2))
        want = dense_loss(name, e, n, s2e, s2b)
        assert _closed(name, e, n, s2e, s2b) == pytest.approx(want, rel=1e-10, abs=1e-10)


def test_losses_score_many_blocks_of_many_seeds_in_one_call() -> None:
    rng = np.random.default_rng(5)
    seeds, width, blocks = 3, 40, 6
    resid = rng.normal(size=(seeds, width))
    block = rng.integers(0, blocks, size=(seeds, width))
    weight = (rng.random((seeds, width)) < 0.8).astype(float)
    block_n = rng.integers(45, 60, size=(seeds, blocks)).astype(float)
    s2e, s2b = rng.uniform(0.5, 2, seeds), rng.uniform(0.1, 1, seeds)
    a, s, ss = block_stats(_t(resid), torch.as_tensor(block), blocks, _t(weight))
    for name in LOSSES:
        got = block_losses(name, a, s, ss, _t(block_n), _t(s2e)[:, None], _t(s2b)[:, None])
        for i in range(seeds):
            for k in range(blocks):
                e = resid[i][(block[i] == k) & (weight[i] > 0)]
                n = int(block_n[i, k])
                want = 0.0 if e.size == 0 else dense_loss(name, e, n, s2e[i], s2b[i])
                if name == "NLL_U" and e.size == 1:
                    continue  # singleton blocks of larger sites are never sampled for NLL_U
                assert float(got[i, k]) == pytest.approx(want, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("name", LOSSES)
def test_empty_padding_blocks_score_zero_with_finite_gradients(name: str) -> None:
    log_e = torch.tensor(0.2, dtype=T, requires_grad=True)
    log_b = torch.tensor(-1.0, dtype=T, requires_grad=True)
    zero = torch.zeros(4, dtype=T)
    value = block_losses(name, zero, zero, zero, zero, log_e.exp(), log_b.exp()).sum()
    value.backward()
    assert float(value.detach()) == 0.0
    assert log_e.grad is not None and torch.isfinite(log_e.grad)
    assert log_b.grad is None or torch.isfinite(log_b.grad)


def test_exact_and_predictive_nll_match_dense_gaussians() -> None:
    rng = np.random.default_rng(11)
    site = rng.integers(0, 7, 90)
    e = rng.normal(size=90)
    s2e, s2b = 0.8, 0.4
    got = exact_nll(_t(e), torch.as_tensor(site), 9, _t(s2e), _t(s2b))
    assert float(got) == pytest.approx(dense_exact_nll(e, site, s2e, s2b), rel=1e-12)
    # predictive: the conditional Gaussian of test rows given the training rows of the site
    train = rng.random(90) < 0.6
    site[:5] = 8  # site 8 has test rows only when train is False there
    train[:5] = False
    want = 0.0
    for j in np.unique(site[~train]):
        r1, r2 = e[train & (site == j)], e[~train & (site == j)]
        v = cov(r1.size + r2.size, s2e, s2b)
        k = r1.size
        v11, v12, v22 = v[:k, :k], v[:k, k:], v[k:, k:]
        mean = v12.T @ np.linalg.solve(v11, r1) if k else np.zeros(r2.size)
        c = v22 - (v12.T @ np.linalg.solve(v11, v12) if k else 0)
        d = r2 - mean
        want += 0.5 * (
            np.linalg.slogdet(c)[1] + d @ np.linalg.solve(c, d) + r2.size * math.log(2 * math.pi)
        )
    got = predictive_nll(
        _t(e[train]),
        torch.as_tensor(site[train]),
        _t(e[~train]),
        torch.as_tensor(site[~train]),
        9,
        _t(s2e),
        _t(s2b),
    )
    assert float(got) == pytest.approx(want, rel=1e-12)


def _chunk_sizes(n: int, m: int) -> list[int]:
    sizes = [min(m, n - i) for i in range(0, n, m)]
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2] += 1
        sizes.pop()
    return sizes


def _expected_over_partitions(name: str, e: np.ndarray, m: int, s2e: float, s2b: float) -> float:
    n = e.size
    sizes = _chunk_sizes(n, m)
    total, count = 0.0, 0
    for perm in itertools.permutations(range(n)):
        start = 0
        for a in sizes:
            total += _closed(name, e[list(perm[start : start + a])], n, s2e, s2b)
            start += a
        count += 1
    return total / count


@pytest.mark.parametrize(
    ("n", "m"), [(1, 2), (2, 2), (3, 2), (5, 2), (6, 4), (6, 3), (5, 5), (4, 8)]
)
def test_nll_u_expected_over_all_partitions_is_the_exact_nll(n: int, m: int) -> None:
    rng = np.random.default_rng(n * 10 + m)
    for _ in range(3):
        e = rng.normal(0.5, 1.2, n)
        s2e, s2b = float(rng.uniform(0.2, 2)), float(rng.uniform(0.01, 1.5))
        want = dense_exact_nll(e, np.zeros(n), s2e, s2b)
        got = _expected_over_partitions("NLL_U", e, m, s2e, s2b)
        assert got == pytest.approx(want, rel=1e-11, abs=1e-11)


def test_the_plain_block_nll_is_not_unbiased_so_the_check_can_fail() -> None:
    e = np.array([0.9, 1.4, -0.2, 1.1, 0.6])
    want = dense_exact_nll(e, np.zeros(5), 0.7, 0.5)
    assert abs(_expected_over_partitions("NLL", e, 2, 0.7, 0.5) - want) > 1e-3


def test_nll_u_expected_gradient_is_the_exact_gradient() -> None:
    e = np.array([0.3, -1.2, 0.8, 2.0, 0.1, 0.7, -0.4])
    n, a = e.size, 3
    theta = torch.tensor([0.1, -0.7], dtype=T, requires_grad=True)
    total = torch.zeros((), dtype=T)
    subsets = list(itertools.combinations(range(n), a))
    for rows in subsets:
        r = _t(e[list(rows)])
        total = total + block_losses(
            "NLL_U", _t(a), r.sum(), (r * r).sum(), _t(n), theta[0].exp(), theta[1].exp()
        )
    (grad_u,) = torch.autograd.grad(total / len(subsets) * (n / a), theta)
    exact = exact_nll(_t(e), torch.zeros(n, dtype=torch.long), 1, theta[0].exp(), theta[1].exp())
    (grad_exact,) = torch.autograd.grad(exact, theta)
    torch.testing.assert_close(grad_u, grad_exact, rtol=1e-11, atol=1e-11)


def test_unknown_loss_is_named() -> None:
    with pytest.raises(RennSpecError, match="NLL_X"):
        check_loss("NLL_X")
