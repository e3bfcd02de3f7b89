"""MLPStep: the hand-written forward/backward equals autograd through forward_rows."""

from __future__ import annotations

import torch

from histo_renn_dagster.core.renn.model import ModelSpec, forward_rows, init_params
from histo_renn_dagster.core.renn.step import MLPStep


def test_hand_backward_equals_autograd_including_padded_rows() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 7, generator=gen, dtype=torch.float64)
    params = init_params(ModelSpec(7, (5, 4)), (1, 2, 3), log_s2e=0.0, log_s2b=0.0, dtype=x.dtype)
    step = MLPStep(params, x)
    for batch in (4, 2, 4):  # buffers are resized and reused
        rows = torch.randint(0, 20, (3, batch), generator=gen)
        upstream = torch.randn(3, batch, generator=gen, dtype=x.dtype)
        upstream[:, -1] = 0.0  # a padded row contributes nothing
        f = step.forward(rows)
        grads = step.backward(upstream)

        leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        expected_f = forward_rows(leaves, x, rows)
        names = [k for k in leaves if k[0] in "wb"]
        expected = torch.autograd.grad((expected_f * upstream).sum(), [leaves[k] for k in names])
        torch.testing.assert_close(f, expected_f.detach(), rtol=0, atol=1e-12)
        for name, want in zip(names, expected, strict=True):
            torch.testing.assert_close(grads[name], want, rtol=0, atol=1e-12, msg=name)
