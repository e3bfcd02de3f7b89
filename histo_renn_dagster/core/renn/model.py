"""The RENN mean function f and its variance parameters, stacked over seeds.

All seeds of one configuration share one set of tensors with a leading seed axis S: weight l has
shape (S, in, out), bias (S, out), and log_s2e, log_s2b have shape (S,). A forward pass over
per-seed row batches is then a handful of batched matmuls, so S seeds cost about as much Python
work as one. Seed s is initialised exactly as ``torch.nn.Linear`` would be after
``torch.manual_seed``-style seeding of its own generator, so a stacked model equals S separately
built models (tests check this in float64).

``hidden = ()`` with ``intercept_only`` gives f(x) = mu, a single scalar per seed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from histo_renn_dagster.core.errors import RennSpecError


@dataclass(frozen=True)
class ModelSpec:
    """Shape of f: input width, hidden widths (default 256, 64) or intercept-only."""

    in_features: int
    hidden: tuple[int, ...] = (256, 64)
    intercept_only: bool = False

    def __post_init__(self) -> None:
        if not self.intercept_only and self.in_features < 1:
            raise RennSpecError(
                f"an MLP needs at least one input feature, got in_features={self.in_features}"
            )
        if any(h < 1 for h in self.hidden):
            raise RennSpecError(f"hidden widths must be positive, got {self.hidden}")


def init_linear(
    generator: torch.Generator, fan_in: int, fan_out: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """(weight (fan_in, fan_out), bias (fan_out,)) drawn like ``nn.Linear.reset_parameters``.

    nn.Linear uses kaiming_uniform(a=sqrt(5)) for the weight, i.e. U(-1/sqrt(fan_in), ...), and
    the same bound for the bias; weight is drawn in nn.Linear's (out, in) layout and transposed.
    """
    bound = 1.0 / math.sqrt(fan_in)
    # drawn in float32 like a freshly built nn.Linear, then cast: a float64 model then starts
    # exactly where ``nn.Linear(...).double()`` starts
    weight = torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=generator)
    bias = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
    return weight.t().contiguous().to(dtype), bias.to(dtype)


def init_params(
    spec: ModelSpec,
    seeds: tuple[int, ...],
    *,
    log_s2e: float | list[float],
    log_s2b: float | list[float],
    mu: float = 0.0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """Stacked parameters of S = len(seeds) models, each from its own seeded generator.

    Keys: ``w0, b0, w1, b1, ...`` for the MLP (or ``mu`` for intercept-only), plus
    ``log_s2e`` and ``log_s2b``. Variance starts may be one value or one per seed.
    """
    params: dict[str, Tensor] = {}
    num = len(seeds)
    if spec.intercept_only:
        params["mu"] = torch.full((num,), float(mu), dtype=dtype)
    else:
        widths = [spec.in_features, *spec.hidden, 1]
        per_seed: list[list[Tensor]] = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            tensors: list[Tensor] = []
            for fan_in, fan_out in itertools.pairwise(widths):
                tensors.extend(init_linear(gen, fan_in, fan_out, dtype))
            per_seed.append(tensors)
        for i in range(len(widths) - 1):
            params[f"w{i}"] = torch.stack([t[2 * i] for t in per_seed])
            params[f"b{i}"] = torch.stack([t[2 * i + 1] for t in per_seed])
    params["log_s2e"] = torch.as_tensor(log_s2e, dtype=dtype).expand(num).clone()
    params["log_s2b"] = torch.as_tensor(log_s2b, dtype=dtype).expand(num).clone()
    return params


def num_layers(params: dict[str, Tensor]) -> int:
    return sum(1 for k in params if k.startswith("w"))


def forward_rows(params: dict[str, Tensor], x: Tensor | None, rows: Tensor) -> Tensor:
    """f for per-seed row batches: ``rows`` (S, B) indexes ``x`` (N, p); returns (S, B)."""
    if "mu" in params:
        return params["mu"].unsqueeze(-1).expand(rows.shape)
    assert x is not None
    h = x[rows]  # (S, B, p)
    layers = num_layers(params)
    for i in range(layers):
        h = torch.baddbmm(params[f"b{i}"].unsqueeze(1), h, params[f"w{i}"])
        if i < layers - 1:
            h = torch.relu(h)
    return h.squeeze(-1)


def forward_all(params: dict[str, Tensor], x: Tensor | None, num_rows: int) -> Tensor:
    """f of every row for every seed, (S, N); the first layer is one (N, p) x (p, S*h) GEMM."""
    if "mu" in params:
        return params["mu"].unsqueeze(-1).expand(-1, num_rows)
    assert x is not None
    w0 = params["w0"]
    seeds, p, width = w0.shape
    h = (x @ w0.permute(1, 0, 2).reshape(p, seeds * width)).reshape(-1, seeds, width)
    h = h.permute(1, 0, 2) + params["b0"].unsqueeze(1)
    layers = num_layers(params)
    for i in range(1, layers):
        h = torch.relu(h)
        h = torch.baddbmm(params[f"b{i}"].unsqueeze(1), h, params[f"w{i}"])
    return h.squeeze(-1)


def select_seed(params: dict[str, Tensor], index: int) -> dict[str, Tensor]:
    """The parameters of one seed, keeping a seed axis of length 1."""
    return {k: v[index : index + 1].clone() for k, v in params.items()}


def to_linear_layers(params: dict[str, Tensor], index: int) -> list[tuple[Tensor, Tensor]]:
    """Seed ``index``'s MLP as nn.Linear-layout (weight (out, in), bias) pairs."""
    return [
        (params[f"w{i}"][index].t().contiguous(), params[f"b{i}"][index].clone())
        for i in range(num_layers(params))
    ]
