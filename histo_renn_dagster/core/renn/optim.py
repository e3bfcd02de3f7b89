"""AdamW over parameters stacked along a leading seed axis, with a per-seed "active" mask.

Seeds of one configuration may have different numbers of steps per epoch (their train splits
differ), so at a given step some seeds have no batch. ``torch.optim.AdamW`` would still move
them (momentum) and count the step; this optimiser leaves an inactive seed's parameters, moments
and step count untouched, so each seed follows exactly the trajectory it would follow alone. The
update is the one ``torch.optim.AdamW`` documents (decoupled weight decay, bias-corrected
moments, eps added after the square root).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ParamGroupSpec:
    """Names of the parameters in one group, and its base lr and weight decay."""

    names: tuple[str, ...]
    lr: float
    weight_decay: float


class StackedAdamW:
    """AdamW for ``params`` (dict of tensors with a leading seed axis S)."""

    def __init__(
        self,
        params: dict[str, Tensor],
        groups: tuple[ParamGroupSpec, ...],
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.groups = groups
        self.betas = betas
        self.eps = eps
        first = next(iter(params.values()))
        self.steps = torch.zeros(first.shape[0], dtype=first.dtype, device=first.device)
        self.exp_avg = {k: torch.zeros_like(v) for k, v in params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in params.items()}
        # torch's fused CPU/GPU AdamW kernel (one pass over p, g, m, v) when this torch has it
        self.fused = hasattr(torch, "_fused_adamw_")
        self._views: dict[tuple[tuple[str, ...], tuple[int, ...]], tuple[list[Tensor], ...]] = {}
        self._seed_steps = [
            torch.zeros((), dtype=first.dtype, device=first.device) for _ in range(first.shape[0])
        ]

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor], active: Tensor, lr_factor: float | Tensor) -> None:
        """One update of the active seeds; ``lr_factor`` (one value, or one per seed) scales
        every group's base lr."""
        if self.fused:
            self._step_fused(grads, active, lr_factor)
        else:
            self._step_stacked(grads, active, lr_factor)

    def _step_fused(self, grads: dict[str, Tensor], active: Tensor, lr_factor) -> None:
        """Per-seed slices through ``torch._fused_adamw_``: inactive seeds are simply left out,
        and seeds sharing a learning rate share one kernel call."""
        factor = torch.as_tensor(lr_factor, dtype=torch.float64).expand_as(self.steps).tolist()
        on = torch.nonzero(active).flatten().tolist()
        for s in on:
            self._seed_steps[s] += 1.0
        self.steps = self.steps + active.to(self.steps.dtype)
        beta1, beta2 = self.betas
        for group in self.groups:
            by_lr: dict[float, list[int]] = {}
            for s in on:
                by_lr.setdefault(group.lr * factor[s], []).append(s)
            for lr, seeds in by_lr.items():
                names = group.names
                p, m, v, steps = self._state_views(names, tuple(seeds))
                torch._fused_adamw_(  # pyright: ignore[reportPrivateImportUsage]
                    p,
                    [grads[n][s] for n in names for s in seeds],
                    m,
                    v,
                    [],
                    steps,
                    lr=lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group.weight_decay,
                    eps=self.eps,
                    amsgrad=False,
                    maximize=False,
                )

    def _state_views(self, names: tuple[str, ...], seeds: tuple[int, ...]):
        """Per-seed views of (params, exp_avg, exp_avg_sq, step counts) for one kernel call,
        built once per (group, seeds): the tensors are updated in place, so views stay valid."""
        key = (names, seeds)
        views = self._views.get(key)
        if views is None:
            stores = (self.params, self.exp_avg, self.exp_avg_sq)
            per_seed = [[store[n][s] for n in names for s in seeds] for store in stores]
            views = (*per_seed, [self._seed_steps[s] for _ in names for s in seeds])
            self._views[key] = views
        return views

    def _step_stacked(self, grads: dict[str, Tensor], active: Tensor, lr_factor) -> None:
        """Fallback without the fused kernel. The update runs in place on the whole stack (the tensors are large: 2048 x 256 weights
        per seed), and the few inactive seeds (only at the end of an epoch) are restored from a
        copy afterwards, so they move neither parameters nor moments nor step counts.
        """
        beta1, beta2 = self.betas
        idle = torch.nonzero(~active).flatten()
        steps = self.steps + active.to(self.steps.dtype)
        t = torch.clamp(steps, min=1.0)  # inactive seeds at t = 0 would divide by zero
        bc1 = 1.0 - beta1**t
        bc2_sqrt = torch.sqrt(1.0 - beta2**t)
        factor = torch.as_tensor(lr_factor, dtype=self.steps.dtype).expand_as(self.steps)
        for group in self.groups:
            for name in group.names:
                p, g = self.params[name], grads[name]
                m, v = self.exp_avg[name], self.exp_avg_sq[name]
                saved = [x[idle].clone() for x in (p, m, v)] if idle.numel() else None
                shape = (-1,) + (1,) * (p.dim() - 1)
                lr = group.lr * factor
                if group.weight_decay:
                    p.mul_((1.0 - lr * group.weight_decay).view(shape))
                m.lerp_(g, 1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
                p.addcdiv_(m * (-lr / bc1).view(shape), denom)
                if saved is not None:
                    p[idle], m[idle], v[idle] = saved
        self.steps = steps

    def state_dict(self) -> dict[str, object]:
        return {
            "steps": self.steps.clone(),
            "exp_avg": {k: v.clone() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.clone() for k, v in self.exp_avg_sq.items()},
        }
