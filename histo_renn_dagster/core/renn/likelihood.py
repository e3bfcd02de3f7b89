"""Closed-form likelihoods of the random-intercept model y = f(x) + b_site + e.

Within one site the covariance of n rows is V_n = s2e I + s2b 1 1'. Its inverse and determinant
are known in closed form,

    V_n^{-1} = I / s2e - c_n 1 1',   c_n = s2b / (s2e (s2e + n s2b)),
    log det V_n = (n - 1) log s2e + log(s2e + n s2b),

so every quadratic form e' M e with M built from I and 1 1' needs only the block's count a, sum
s = sum(e) and sum of squares ss = sum(e^2). All losses here take those sufficient statistics as
tensors of any (broadcastable) shape, so one call scores many blocks of many seeds at once, in
O(rows) time and without a x a matrices. A block with a = 0 scores exactly 0 under every loss,
which lets callers pad ragged batches with empty blocks.

Losses (one value per block A of size a drawn from a site of size n):

- ``NLL`` (RENN): the Gaussian NLL of the block alone (V_a).
- ``NLL_cor_det`` (RENN-det): NLL plus the log-determinant correction alpha.
- ``NLL_cor_1`` (RENN-cor): log det V_a, the a x a block of V_n^{-1} in the quadratic form, alpha.
- ``NLL_no_RE`` (NN-noRE): independent errors, no random effect (misspecified baseline).
- ``NLL_U`` (RENN-U): an unbiased minibatch estimate of the exact full-site NLL; see
  :func:`loss_nll_u` for the proof.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from histo_renn_dagster.core.errors import RennSpecError

LOG_2PI = math.log(2.0 * math.pi)

LOSSES: tuple[str, ...] = ("NLL", "NLL_cor_det", "NLL_cor_1", "NLL_no_RE", "NLL_U")
"""Loss names as the reference spells them, plus our NLL_U."""

DISPLAY_NAMES: dict[str, str] = {
    "NLL": "RENN",
    "NLL_cor_det": "RENN-det",
    "NLL_cor_1": "RENN-cor",
    "NLL_no_RE": "NN-noRE",
    "NLL_U": "RENN-U",
}


def check_loss(name: str) -> str:
    """Return ``name`` if it is a known loss, else raise RennSpecError listing the choices."""
    if name not in LOSSES:
        raise RennSpecError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    return name


def uses_random_effect(name: str) -> bool:
    """Whether a loss has a sigma2_b parameter (every loss but NLL_no_RE)."""
    return check_loss(name) != "NLL_no_RE"


def block_stats(residuals: Tensor, block: Tensor, num_blocks: int, weight: Tensor | None = None):
    """Per-block (a, s, ss) of ``residuals`` along the last axis.

    ``block`` holds each row's block index (same shape as ``residuals`` or broadcastable along
    the last axis); ``weight`` (0/1) masks padded rows. Returns three tensors of shape
    ``residuals.shape[:-1] + (num_blocks,)``.
    """
    block = torch.broadcast_to(block, residuals.shape)
    w = (
        torch.ones_like(residuals)
        if weight is None
        else torch.broadcast_to(weight, residuals.shape)
    )
    shape = (*residuals.shape[:-1], num_blocks)
    zeros = residuals.new_zeros(shape)
    a = zeros.scatter_add(-1, block, w)
    s = zeros.scatter_add(-1, block, residuals * w)
    ss = zeros.scatter_add(-1, block, residuals * residuals * w)
    return a, s, ss


def _alpha(a: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor) -> Tensor:
    # The reference's log-det correction: spreads log det V_n - log det V_a - log det V_{n-a}
    # over the blocks in proportion to their size. Zero for a = 0 and for a = n.
    ratio = (
        torch.log(s2e)
        + torch.log(s2e + n * s2b)
        - torch.log(s2e + a * s2b)
        - torch.log(s2e + (n - a) * s2b)
    )
    return (a / n) * 0.5 * ratio


def loss_nll(a: Tensor, s: Tensor, ss: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor) -> Tensor:
    """RENN: 0.5[(a-1) log s2e + log(s2e + a s2b) + ss/s2e - s2b s^2/(s2e(s2e + a s2b)) + a log 2pi]."""
    del n  # the plain block likelihood ignores the site size
    v = s2e + a * s2b
    quad = ss / s2e - s2b * s * s / (s2e * v)
    return 0.5 * ((a - 1) * torch.log(s2e) + torch.log(v) + quad + a * LOG_2PI)


def loss_nll_cor_det(
    a: Tensor, s: Tensor, ss: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor
) -> Tensor:
    """RENN-det: NLL + alpha, alpha = (a/n) 0.5 log[s2e(s2e+n s2b) / ((s2e+a s2b)(s2e+(n-a) s2b))]."""
    return loss_nll(a, s, ss, n, s2e, s2b) + _alpha(a, n, s2e, s2b)


def loss_nll_cor_1(a: Tensor, s: Tensor, ss: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor) -> Tensor:
    """RENN-cor: log det V_a, the a x a block of V_n^{-1} as the quadratic form, plus alpha."""
    v_a = s2e + a * s2b
    quad = ss / s2e - s2b * s * s / (s2e * (s2e + n * s2b))
    base = 0.5 * ((a - 1) * torch.log(s2e) + torch.log(v_a) + quad + a * LOG_2PI)
    return base + _alpha(a, n, s2e, s2b)


def loss_nll_no_re(a: Tensor, s: Tensor, ss: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor) -> Tensor:
    """NN-noRE: 0.5[a log s2e + ss/s2e + a log 2pi]; s, n and s2b are ignored."""
    del s, n, s2b
    return 0.5 * (a * torch.log(s2e) + ss / s2e + a * LOG_2PI)


def cross_weight(a: Tensor, n: Tensor) -> Tensor:
    """(n-1)/(a-1) for a >= 2, else 0 (a singleton has no pairs; n = a = 1 has none to estimate)."""
    safe = torch.where(a > 1, a - 1, torch.ones_like(a))
    return torch.where(a > 1, (n - 1) / safe, torch.zeros_like(a))


def loss_nll_u(a: Tensor, s: Tensor, ss: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor) -> Tensor:
    """RENN-U: an unbiased minibatch estimate of the exact NLL of the block's site.

    With c = s2b / (s2e (s2e + n s2b)),

        L_A = 0.5[(a/n)((n-1) log s2e + log(s2e + n s2b) + n log 2pi)
                  + (1/s2e - c) ss - c (n-1)/(a-1) (s^2 - ss)].

    Claim: if A is a uniformly random subset of size a of a site of size n (a >= 2, or a = n),
    then E[L_A] = (a/n) NLL_site, where NLL_site is the exact marginal NLL of the whole site.
    Summed over the blocks of any partition of the site (sizes a_1 + ... + a_K = n), the
    expectation is exactly NLL_site, for every value of f, s2e and s2b.

    Proof. Write S = sum_i e_i and SS = sum_i e_i^2 over the site, and P = S^2 - SS =
    sum_{i != j} e_i e_j. Each row is in A with probability a/n, so E[ss] = (a/n) SS. Each
    ordered pair (i, j), i != j, is in A with probability a(a-1)/(n(n-1)), and
    s^2 - ss = sum_{i != j in A} e_i e_j, so E[s^2 - ss] = a(a-1)/(n(n-1)) P and
    E[(n-1)/(a-1) (s^2 - ss)] = (a/n) P. Hence

        E[L_A] = (a/n) 0.5[log det V_n + n log 2pi + (1/s2e - c) SS - c P]
               = (a/n) 0.5[log det V_n + n log 2pi + SS/s2e - c S^2]
               = (a/n) NLL_site,

    because e' V_n^{-1} e = SS/s2e - c S^2. Summing over a partition, sum_k a_k/n = 1. The
    statement holds for each chunk of a shuffled site separately (each fixed-position chunk of a
    uniform random permutation is a uniform random subset of its size), so it also holds for the
    reference sampler's chunks and for a merged singleton remainder (a chunk of size m + 1).
    A block that is the whole site (a = n) gives NLL_site exactly, with no randomness; for n = 1
    the cross term is absent (P = 0). A singleton block of a larger site (a = 1 < n) cannot
    estimate P; samplers never produce one for this loss. Because the identity holds for every
    parameter value, the expected epoch objective is the exact NLL and its minimiser does not
    depend on m.
    """
    c = s2b / (s2e * (s2e + n * s2b))
    logdet_n = (n - 1) * torch.log(s2e) + torch.log(s2e + n * s2b)
    share = 0.5 * (a / n) * (logdet_n + n * LOG_2PI)
    quad = (1.0 / s2e - c) * ss - c * cross_weight(a, n) * (s * s - ss)
    return share + 0.5 * quad


LossFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]

LOSS_FUNCTIONS: dict[str, LossFn] = {
    "NLL": loss_nll,
    "NLL_cor_det": loss_nll_cor_det,
    "NLL_cor_1": loss_nll_cor_1,
    "NLL_no_RE": loss_nll_no_re,
    "NLL_U": loss_nll_u,
}


def block_losses(
    name: str, a: Tensor, s: Tensor, ss: Tensor, n: Tensor, s2e: Tensor, s2b: Tensor
) -> Tensor:
    """Per-block loss ``name``; blocks with a = 0 score exactly 0 (padding)."""
    fn = LOSS_FUNCTIONS[check_loss(name)]
    # n is clamped so padded blocks (n = 0) stay finite; their a = 0 zeroes them anyway.
    value = fn(a, s, ss, torch.clamp(n, min=1.0), s2e, s2b)
    return torch.where(a > 0, value, torch.zeros_like(value))


def site_nll(a: Tensor, s: Tensor, ss: Tensor, s2e: Tensor, s2b: Tensor) -> Tensor:
    """Exact marginal NLL of whole sites from their (n, S, SS); 0 for an empty site."""
    return block_losses("NLL", a, s, ss, a, s2e, s2b)


def exact_nll(residuals: Tensor, site: Tensor, num_sites: int, s2e: Tensor, s2b: Tensor) -> Tensor:
    """Exact full-data NLL, summed over sites, in O(n).

    ``residuals`` has shape (..., N); ``site`` the site index of each row (N,); ``s2e`` and
    ``s2b`` broadcast against the leading shape (e.g. (S,) for S seeds). Pass s2b = 0 for the
    no-random-effect model.
    """
    a, s, ss = block_stats(residuals, site.expand(residuals.shape), num_sites)
    return site_nll(a, s, ss, s2e.unsqueeze(-1), s2b.unsqueeze(-1)).sum(-1)


def predictive_nll(
    train_residuals: Tensor,
    train_site: Tensor,
    test_residuals: Tensor,
    test_site: Tensor,
    num_sites: int,
    s2e: Tensor,
    s2b: Tensor,
) -> Tensor:
    """NLL of the test rows conditional on the training rows of their site, in O(n).

    -log p(test | train) = NLL(train and test together) - NLL(train), site by site; a site
    without training rows gets the marginal NLL of its test rows.
    """
    shape = (*train_residuals.shape[:-1], num_sites)
    at, st, sst = block_stats(train_residuals, train_site.expand(train_residuals.shape), num_sites)
    aq, sq, ssq = block_stats(test_residuals, test_site.expand(test_residuals.shape), num_sites)
    at, st, sst = (torch.broadcast_to(t, shape) for t in (at, st, sst))
    e, b = s2e.unsqueeze(-1), s2b.unsqueeze(-1)
    joint = site_nll(at + aq, st + sq, sst + ssq, e, b)
    return (joint - site_nll(at, st, sst, e, b)).sum(-1)
