"""Training configurations: the user's RennSpec and the two profiles it resolves through.

``reference`` reproduces the reference study's optimisation exactly as it ran: group-exclusive
chunks, 60 epochs, AdamW with lr 2.5e-5 (f, weight decay 1e-3) and 1.5e-3 (variances, no decay),
StepLR every 16 epochs x 0.5, variances starting at 1.0, y not centred, a fresh 80/20 split by
site per seed, the best epoch by the validation minibatch loss.

``default`` fixes the study: y centred on its training mean, variances started from moment
estimates, site-mixing steps of about ``rows_per_step`` rows (so the number of steps per epoch
and the step budget do not depend on m), a cosine learning-rate decay over the budget, the best
epoch by the exact predictive NLL of the validation rows (the last epoch when there are none),
and metrics on the caller's separate test rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from histo_renn_dagster.core.errors import RennSpecError
from histo_renn_dagster.core.renn.likelihood import check_loss
from histo_renn_dagster.core.renn.samplers import SAMPLERS, check_m

PROFILES: tuple[str, ...] = ("default", "reference")
REFERENCE_SEEDS: tuple[int, ...] = (17, 41, 92, 14, 68, 31, 89, 15, 21, 60)
MINIBATCH_GRID: tuple[int, ...] = (2, 4, 8, 16, 32, 150)


@dataclass(frozen=True)
class RennSpec:
    """One configuration (loss x m) trained for every seed in ``seeds`` at once.

    Fields left None take the profile's value (see :func:`resolve_settings`).
    """

    loss: str = "NLL_U"
    m: int | None = None  # None: whole sites ("full")
    profile: str = "default"
    seeds: tuple[int, ...] = REFERENCE_SEEDS[:1]
    hidden: tuple[int, ...] = (256, 64)
    intercept_only: bool = False
    epochs: int | None = None
    step_budget: int = 2000
    rows_per_step: int = 128
    sampler: str | None = None
    lr_f: float | None = None
    lr_var: float | None = None
    weight_decay_f: float | None = None
    dtype: str = "float32"
    checkpoint_every: int = 20

    def __post_init__(self) -> None:
        check_loss(self.loss)
        check_m(self.m)
        if self.profile not in PROFILES:
            raise RennSpecError(f"unknown profile {self.profile!r}; expected default or reference")
        if not self.seeds:
            raise RennSpecError("at least one seed is needed")
        if len(set(self.seeds)) != len(self.seeds):
            raise RennSpecError(f"seeds must be distinct, got {self.seeds}")
        if self.loss == "NLL_U" and self.m == 1:
            raise RennSpecError("NLL_U needs m >= 2 (a single row cannot estimate the cross term)")
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise RennSpecError(f"unknown sampler {self.sampler!r}; expected group or mixing")
        if self.dtype not in ("float32", "float64"):
            raise RennSpecError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.epochs is not None and self.epochs < 1:
            raise RennSpecError(f"epochs must be >= 1, got {self.epochs}")
        if self.step_budget < 1 or self.rows_per_step < 1 or self.checkpoint_every < 1:
            raise RennSpecError("step_budget, rows_per_step and checkpoint_every must be >= 1")

    @property
    def m_label(self) -> str:
        return "full" if self.m is None else str(self.m)


@dataclass(frozen=True)
class TrainSettings:
    """A RennSpec with every profile choice made concrete."""

    sampler: str
    rows_per_step: int
    epochs: int | None  # None: derived from the step budget once steps per epoch are known
    step_budget: int
    lr_f: float
    lr_var: float
    weight_decay_f: float
    centre_y: bool
    init_from_data: bool
    schedule: str  # "step16" (x0.5 every 16 epochs) or "cosine" (per step, down to 1%)
    reference_split: bool
    select_by: str  # "val_loss" (minibatch loss) or "val_exact_nll"
    merge_singletons: bool


def resolve_settings(spec: RennSpec) -> TrainSettings:
    """The profile's choices, overridden by the spec's explicit fields."""
    if spec.profile == "reference":
        base = TrainSettings(
            sampler="group",
            rows_per_step=spec.rows_per_step,
            epochs=60,
            step_budget=spec.step_budget,
            lr_f=2.5e-5,
            lr_var=1.5e-3,
            weight_decay_f=1e-3,
            centre_y=False,
            init_from_data=False,
            schedule="step16",
            reference_split=True,
            select_by="val_loss",
            # the reference keeps singleton chunks; NLL_U cannot score them, so it merges
            merge_singletons=spec.loss == "NLL_U",
        )
    else:
        base = TrainSettings(
            sampler="mixing",
            rows_per_step=spec.rows_per_step,
            epochs=None,
            step_budget=spec.step_budget,
            lr_f=1e-3,
            lr_var=2e-2,
            weight_decay_f=1e-3,
            centre_y=True,
            init_from_data=True,
            schedule="cosine",
            reference_split=False,
            select_by="val_exact_nll",
            merge_singletons=True,
        )
    if spec.intercept_only and spec.profile == "default":
        # f = mu is one location parameter: it learns at the variances' rate, without decay
        base = replace(base, lr_f=base.lr_var, weight_decay_f=0.0)
    return replace(
        base,
        sampler=spec.sampler or base.sampler,
        epochs=spec.epochs if spec.epochs is not None else base.epochs,
        lr_f=spec.lr_f if spec.lr_f is not None else base.lr_f,
        lr_var=spec.lr_var if spec.lr_var is not None else base.lr_var,
        weight_decay_f=spec.weight_decay_f
        if spec.weight_decay_f is not None
        else base.weight_decay_f,
    )


def lr_factor(settings: TrainSettings, epoch: int, steps_taken: Tensor, total_steps: int) -> Tensor:
    """Per-seed multiplier of the base learning rates at 0-based ``epoch``, given the number of
    steps each seed has taken (each seed follows its own schedule, as if trained alone)."""
    if settings.schedule == "step16":
        return torch.full_like(steps_taken, 0.5 ** (epoch // 16))
    progress = torch.clamp(steps_taken / max(total_steps, 1), max=1.0)
    return 0.01 + 0.99 * 0.5 * (1.0 + torch.cos(math.pi * progress))
