"""One training step of the stacked MLP without autograd: forward and backward by hand.

The training loop's cost is dominated by the first layer (2048 x 256 weights per seed): its
gradient is a (p, B) x (B, 256) product per seed, written to memory and then read once by the
fused AdamW kernel. Through autograd, every step allocates a fresh (S, p, 256) gradient, and
memory that large comes straight from the operating system, page faults and all: that costs more
than the product itself. :class:`MLPStep` keeps every activation and gradient in buffers that
live as long as the fit, writes products into them with ``out=``, and back-propagates the three
layers explicitly (the loss head, a few small tensors, still goes through autograd, so the loss
formulas stay in one place: :mod:`likelihood`).

The arithmetic is the one autograd performs (same products, same order), so results equal the
autograd path; a test compares both in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from histo_renn_dagster.core.renn.model import num_layers


class MLPStep:
    """Forward and backward of the stacked MLP ``params`` for (S, B) row batches of ``x``."""

    def __init__(self, params: dict[str, Tensor], x: Tensor) -> None:
        self.params = params
        self.x = x
        self.layers = num_layers(params)
        self.weights = [params[f"w{i}"] for i in range(self.layers)]
        self.biases = [params[f"b{i}"] for i in range(self.layers)]
        self.grads = {
            name: torch.empty_like(params[name])
            for i in range(self.layers)
            for name in (f"w{i}", f"b{i}")
        }
        self._batch = -1
        self._inputs: Tensor | None = None
        self._pre: list[Tensor] = []  # pre-activations z_i = a_{i-1} W_i + b_i, (S, B, width)
        self._act: list[Tensor] = []  # activations relu(z_i) of the hidden layers

    def _buffers(self, batch: int) -> None:
        if batch == self._batch:
            return
        seeds = self.weights[0].shape[0]
        like = self.weights[0]
        self._inputs = like.new_empty(seeds, batch, self.x.shape[1])
        self._pre = [like.new_empty(seeds, batch, w.shape[-1]) for w in self.weights]
        self._act = [like.new_empty(seeds, batch, w.shape[-1]) for w in self.weights[:-1]]
        self._batch = batch

    @torch.no_grad()
    def forward(self, rows: Tensor) -> Tensor:
        """f(x) of ``rows`` (S, B), (S, B); keeps what :meth:`backward` needs."""
        self._buffers(rows.shape[-1])
        assert self._inputs is not None
        torch.index_select(self.x, 0, rows.reshape(-1), out=self._inputs.view(-1, self.x.shape[1]))
        h = self._inputs
        for i in range(self.layers):
            z = self._pre[i]
            torch.baddbmm(self.biases[i].unsqueeze(1), h, self.weights[i], out=z)
            if i < self.layers - 1:
                h = torch.clamp_min(z, 0.0, out=self._act[i])  # ReLU
        return self._pre[-1].squeeze(-1)

    @torch.no_grad()
    def backward(self, grad_f: Tensor) -> dict[str, Tensor]:
        """Gradients of every weight and bias given d loss / d f(x) of the last forward rows,
        (S, B); returned tensors are the step's reusable buffers."""
        grad = grad_f.unsqueeze(-1)  # (S, B, 1)
        for i in reversed(range(self.layers)):
            below = self._inputs if i == 0 else self._act[i - 1]
            assert below is not None
            torch.bmm(below.transpose(1, 2), grad, out=self.grads[f"w{i}"])
            torch.sum(grad, dim=1, out=self.grads[f"b{i}"])
            if i > 0:
                grad = torch.bmm(grad, self.weights[i].transpose(1, 2))
                grad = grad.mul_(self._pre[i - 1] > 0)
        return self.grads
