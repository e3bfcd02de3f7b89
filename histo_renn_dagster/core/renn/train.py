"""fit_renn: train every seed of one configuration (loss x m) together, as one stacked model.

Per step, each seed's batch rows are gathered into a padded (S, B) index tensor, f is evaluated
with batched matmuls, the per-block sufficient statistics come from one scatter-add, every
block's loss from one closed-form expression, and one backward pass gives all seeds' gradients
(the seeds' losses are independent, so the gradient of their sum is each seed's own gradient).
:class:`StackedAdamW` then updates only the seeds that had a batch at this step. Seed s draws its
split, its epoch plans and its initial weights from its own generators, so the result equals
training the seeds one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from histo_renn_dagster.core.errors import RennDataError
from histo_renn_dagster.core.renn.checkpoints import load_checkpoint, save_checkpoint
from histo_renn_dagster.core.renn.data import RennData, reference_site_split
from histo_renn_dagster.core.renn.likelihood import (
    block_losses,
    block_stats,
    site_nll,
    uses_random_effect,
)
from histo_renn_dagster.core.renn.model import ModelSpec, forward_all, forward_rows, init_params
from histo_renn_dagster.core.renn.optim import ParamGroupSpec, StackedAdamW
from histo_renn_dagster.core.renn.samplers import EpochPlan, plan_epoch, stack_plans
from histo_renn_dagster.core.renn.spec import RennSpec, TrainSettings, lr_factor, resolve_settings
from histo_renn_dagster.core.renn.step import MLPStep

HISTORY_COLUMNS: tuple[str, ...] = (
    "loss_func",
    "m",
    "run",
    "seed",
    "epoch",
    "train_loss",
    "val_loss",
    "sigma2_b_est",
    "sigma2_e_est",
    "train_exact_nll",
    "val_exact_nll",
    "lr_factor",
)


@dataclass(frozen=True)
class RennFit:
    """The trained seeds of one configuration, at each seed's selected epoch."""

    spec: RennSpec
    settings: TrainSettings
    params: dict[str, Tensor]  # stacked over seeds, detached
    y_offset: float  # subtracted from y before training (0 unless centred)
    train_rows: tuple[np.ndarray, ...]
    val_rows: tuple[np.ndarray, ...]
    best_epoch: tuple[int, ...]  # 1-based
    epochs: int
    history: pd.DataFrame

    @property
    def intercept_only(self) -> bool:
        return "mu" in self.params

    @property
    def sigma2_e(self) -> np.ndarray:
        return torch.exp(self.params["log_s2e"]).double().numpy()

    @property
    def sigma2_b(self) -> np.ndarray:
        """Zeros for NLL_no_RE, which has no random effect."""
        s2b = torch.exp(self.params["log_s2b"]).double().numpy()
        return s2b if uses_random_effect(self.spec.loss) else np.zeros_like(s2b)

    @property
    def mu(self) -> np.ndarray | None:
        """Intercept of each seed (intercept-only fits), on the original y scale."""
        if not self.intercept_only:
            return None
        return self.params["mu"].double().numpy() + self.y_offset


def moment_variances(y: np.ndarray, site: np.ndarray) -> tuple[float, float]:
    """ANOVA-style starting values (s2e, s2b): pooled within-site variance, and the variance of
    site means less its sampling part, floored at 5% of s2e so log s2b starts finite."""
    sites, inverse, counts = np.unique(site, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    dof = len(y) - len(sites)
    s2e = float(np.sum((y - means[inverse]) ** 2) / dof) if dof > 0 else float(np.var(y))
    s2e = max(s2e, 1e-6)
    spread = float(np.var(means)) - s2e * float(np.mean(1.0 / counts)) if len(sites) > 1 else 0.0
    return s2e, max(spread, 0.05 * s2e)


def _split_rows(data: RennData, spec: RennSpec, settings: TrainSettings, rngs):
    if not settings.reference_split:
        train, val = data.rows("train"), data.rows("val")
        return [train] * len(spec.seeds), [val] * len(spec.seeds)
    pool = np.sort(np.concatenate([data.rows("train"), data.rows("val")]))
    pairs = [reference_site_split(data.site, pool, rng) for rng in rngs]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _masks(rows: list[np.ndarray], n: int, dtype: torch.dtype) -> Tensor:
    mask = torch.zeros(len(rows), n, dtype=dtype)
    for s, r in enumerate(rows):
        mask[s, torch.as_tensor(r, dtype=torch.long)] = 1.0
    return mask


@contextmanager
def torch_threads(num: int | None) -> Iterator[None]:
    """Run with ``num`` intra-op threads (None: leave torch's setting), then restore it.

    The per-step work is small; on a shared machine extra threads mostly wait on each other.
    """
    if num is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush float32 denormals to zero while training, then switch it off again.

    AdamW moments of weights whose gradient stays zero (units whose ReLU is off for every row)
    decay geometrically through the denormal range, where x86 arithmetic is about a hundred
    times slower: measured on 2 seeds at m = 2, epoch time grew from 0.86 s to 3.7 s over five
    epochs without this and stayed at 0.86 s with it. Only values below 1.2e-38 change, far
    below the rounding step of any weight. The mode is per thread: it covers the calling thread
    and intra-op worker threads started after it (a fresh process, or ``threads = 1``).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def fit_renn(
    data: RennData,
    spec: RennSpec,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[int, pd.DataFrame], None] | None = None,
    device: str | torch.device = "cpu",
) -> RennFit:
    """Train all seeds of ``spec`` on ``data``; rows labelled test are never seen.

    Intercept-only when ``spec.intercept_only`` or ``data.x`` is None. ``checkpoint_dir`` gets
    ``epoch_XXX.pt`` every ``spec.checkpoint_every`` epochs and ``best.pt`` at the end.
    ``on_epoch(epoch, rows)`` receives each epoch's history rows (for progress reporting).
    ``device`` is where the parameters and every per-step tensor live (``cpu``, ``cuda``, ...);
    the returned parameters are on the CPU.
    """
    with flush_denormals():
        return _fit(data, spec, checkpoint_dir, on_epoch, device)


def _fit(
    data: RennData,
    spec: RennSpec,
    checkpoint_dir: Path | None,
    on_epoch: Callable[[int, pd.DataFrame], None] | None,
    device: str | torch.device,
) -> RennFit:
    settings = resolve_settings(spec)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    seeds = spec.seeds
    intercept_only = spec.intercept_only or data.x is None
    rngs = [np.random.default_rng(seed) for seed in seeds]
    val_rngs = [np.random.default_rng([seed, 7]) for seed in seeds]
    train_rows, val_rows = _split_rows(data, spec, settings, rngs)
    for seed, rows in zip(seeds, train_rows, strict=True):
        if rows.size < 2:
            raise RennDataError(f"seed {seed}: fewer than 2 training rows")
    y_offset = float(data.y[train_rows[0]].mean()) if settings.centre_y else 0.0
    if settings.init_from_data:
        starts = [moment_variances(data.y[r], data.site[r]) for r in train_rows]
        log_e = [math.log(s[0]) for s in starts]
        log_b = [math.log(s[1]) for s in starts]
    else:
        log_e, log_b = [0.0] * len(seeds), [0.0] * len(seeds)
    width = 0 if data.x is None else data.x.shape[1]
    model = ModelSpec(in_features=width, hidden=spec.hidden, intercept_only=intercept_only)
    params = init_params(model, seeds, log_s2e=log_e, log_s2b=log_b, dtype=dtype)
    params = {k: v.to(device) for k, v in params.items()}
    n = data.num_rows
    x = None if intercept_only or data.x is None else torch.tensor(data.x, dtype=dtype)
    x = None if x is None else x.to(device)
    y = torch.as_tensor(data.y - y_offset, dtype=dtype, device=device)
    site = torch.as_tensor(data.site, dtype=torch.long, device=device)
    train_mask = _masks(train_rows, n, dtype).to(device)
    val_mask = _masks(val_rows, n, dtype).to(device)
    f_names = tuple(k for k in params if not k.startswith("log_"))
    var_names = ("log_s2e", "log_s2b") if uses_random_effect(spec.loss) else ("log_s2e",)
    trainable = [*f_names, *var_names]
    # The MLP is differentiated by hand (MLPStep); autograd only sees the loss head.
    step = None if x is None else MLPStep(params, x)  # x is None exactly when intercept-only
    for name in var_names if step is not None else trainable:
        params[name].requires_grad_(True)
    optimiser = StackedAdamW(
        params,
        (
            ParamGroupSpec(f_names, settings.lr_f, settings.weight_decay_f),
            ParamGroupSpec(var_names, settings.lr_var, 0.0),
        ),
    )
    n_train = train_mask.sum(-1)
    n_val = val_mask.sum(-1)
    has_val = n_val > 0

    def plan(rows: np.ndarray, rng: np.random.Generator) -> EpochPlan:
        return plan_epoch(
            data.site,
            rows,
            spec.m,
            rng,
            sampler=settings.sampler,
            rows_per_step=settings.rows_per_step,
            merge_singletons=settings.merge_singletons,
        )

    epochs = settings.epochs
    if epochs is None:
        probe = plan(train_rows[0], np.random.default_rng(0))
        epochs = max(1, math.ceil(settings.step_budget / max(probe.num_steps, 1)))
    total_steps = epochs * max(
        plan(train_rows[0], np.random.default_rng(0)).num_steps,
        1,
    )

    best = {k: v.detach().clone() for k, v in params.items()}
    best_score = torch.full((len(seeds),), math.inf, dtype=torch.float64, device=device)
    best_epoch = torch.zeros(len(seeds), dtype=torch.long, device=device)
    history: list[dict[str, object]] = []
    for epoch in range(epochs):
        stacked = stack_plans([plan(r, g) for r, g in zip(train_rows, rngs, strict=True)])
        rows_t = torch.as_tensor(stacked.rows, device=device)
        weight_t = torch.as_tensor(stacked.weight, dtype=dtype, device=device)
        block_t = torch.as_tensor(stacked.block, device=device)
        block_n_t = torch.as_tensor(stacked.block_n, dtype=dtype, device=device)
        active_t = torch.as_tensor(stacked.active, device=device)
        num_blocks = block_n_t.shape[-1]
        epoch_loss = torch.zeros(len(seeds), dtype=torch.float64, device=device)
        for t in range(rows_t.shape[0]):
            factor = lr_factor(settings, epoch, optimiser.steps, total_steps)
            rows = rows_t[t]
            if step is None:
                resid = y[rows] - forward_rows(params, x, rows)
            else:
                resid = (y[rows] - step.forward(rows)).requires_grad_(True)
            a, s, ss = block_stats(resid, block_t[t], num_blocks, weight_t[t])
            s2e = torch.exp(params["log_s2e"]).unsqueeze(-1)
            s2b = torch.exp(params["log_s2b"]).unsqueeze(-1)
            losses = block_losses(spec.loss, a, s, ss, block_n_t[t], s2e, s2b).sum(-1)
            losses = torch.where(active_t[t], losses, torch.zeros_like(losses))
            if step is None:
                grads = torch.autograd.grad(losses.sum(), [params[k] for k in trainable])
                named = dict(zip(trainable, grads, strict=True))
            else:
                head = torch.autograd.grad(losses.sum(), [resid, *(params[k] for k in var_names)])
                named = {**step.backward(-head[0]), **dict(zip(var_names, head[1:], strict=True))}
            optimiser.step(named, active_t[t], factor)
            epoch_loss += losses.detach().double()
        scores = _evaluate_epoch(
            params, spec, x, y, site, data, train_mask, val_mask, val_rows, val_rngs, plan
        )
        select = scores["val_loss"] if settings.select_by == "val_loss" else scores["val_exact"]
        select = torch.where(has_val, select, torch.full_like(select, -math.inf))
        improved = select < best_score if epoch > 0 else torch.ones_like(has_val)
        improved = improved | ~has_val  # without validation rows the last epoch is kept
        with torch.no_grad():
            for k, v in params.items():
                shape = (-1,) + (1,) * (v.dim() - 1)
                best[k] = torch.where(improved.view(shape), v.detach(), best[k])
        best_score = torch.where(improved, select, best_score)
        best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch + 1), best_epoch)
        factor = lr_factor(settings, epoch, optimiser.steps, total_steps)
        rows_out = _history_rows(spec, epoch, epoch_loss / n_train.double(), scores, factor)
        history.extend(rows_out)
        if on_epoch is not None:
            on_epoch(epoch + 1, pd.DataFrame(rows_out, columns=list(HISTORY_COLUMNS)))
        if checkpoint_dir is not None and ((epoch + 1) % spec.checkpoint_every == 0):
            _save(checkpoint_dir / f"epoch_{epoch + 1:03d}.pt", spec, params, epoch + 1, y_offset)
    final = {k: v.detach().cpu().clone() for k, v in best.items()}
    if checkpoint_dir is not None:
        _save(checkpoint_dir / f"epoch_{epochs:03d}.pt", spec, params, epochs, y_offset)
        _save(checkpoint_dir / "best.pt", spec, final, -1, y_offset)
    return RennFit(
        spec=spec,
        settings=settings,
        params=final,
        y_offset=y_offset,
        train_rows=tuple(train_rows),
        val_rows=tuple(val_rows),
        best_epoch=tuple(int(e) for e in best_epoch.tolist()),
        epochs=epochs,
        history=pd.DataFrame(history, columns=list(HISTORY_COLUMNS)),
    )


@torch.no_grad()
def _evaluate_epoch(params, spec, x, y, site, data, train_mask, val_mask, val_rows, rngs, plan):
    """Exact NLL of the training rows, exact predictive NLL of the validation rows given the
    training rows of their site, and the reference's minibatch validation loss per row."""
    resid = y.unsqueeze(0) - forward_all(params, x, data.num_rows)
    s2e = torch.exp(params["log_s2e"])
    s2b = torch.exp(params["log_s2b"]) if uses_random_effect(spec.loss) else torch.zeros_like(s2e)
    e, b = s2e.unsqueeze(-1), s2b.unsqueeze(-1)
    sites = data.num_sites
    at, st, sst = block_stats(resid, site.expand(resid.shape), sites, train_mask)
    av, sv, ssv = block_stats(resid, site.expand(resid.shape), sites, val_mask)
    train_site = site_nll(at, st, sst, e, b)
    train_exact = train_site.sum(-1)
    val_exact = (site_nll(at + av, st + sv, sst + ssv, e, b) - train_site).sum(-1)
    stacked = stack_plans([plan(r, g) for r, g in zip(val_rows, rngs, strict=True)])
    val_loss = torch.full_like(s2e, math.nan)
    if stacked.rows.shape[0]:
        # every validation chunk is scored, step by step, with the training loss
        total = torch.zeros_like(s2e)
        for t in range(stacked.rows.shape[0]):
            rows = torch.as_tensor(stacked.rows[t], device=resid.device)
            r = torch.gather(resid, 1, rows)
            w = torch.as_tensor(stacked.weight[t], dtype=resid.dtype, device=resid.device)
            blocks = torch.as_tensor(stacked.block[t], device=resid.device)
            n_blocks = torch.as_tensor(stacked.block_n[t], dtype=resid.dtype, device=resid.device)
            a, s, ss = block_stats(r, blocks, n_blocks.shape[-1], w)
            total += block_losses(spec.loss, a, s, ss, n_blocks, e, b).sum(-1)
        val_loss = total / torch.clamp(val_mask.sum(-1), min=1.0)
        val_loss = torch.where(val_mask.sum(-1) > 0, val_loss, torch.full_like(val_loss, math.nan))
    return {
        "train_exact": train_exact.double(),
        "val_exact": val_exact.double(),
        "val_loss": val_loss.double(),
        "s2e": s2e.double(),
        "s2b": s2b.double(),
    }


def _history_rows(spec: RennSpec, epoch: int, train_loss: Tensor, scores, factor: Tensor):
    rows = []
    for s, seed in enumerate(spec.seeds):
        rows.append(
            {
                "loss_func": spec.loss,
                "m": spec.m_label,
                "run": s,
                "seed": seed,
                "epoch": epoch + 1,
                "train_loss": float(train_loss[s]),
                "val_loss": float(scores["val_loss"][s]),
                "sigma2_b_est": float(scores["s2b"][s]),
                "sigma2_e_est": float(scores["s2e"][s]),
                "train_exact_nll": float(scores["train_exact"][s]),
                "val_exact_nll": float(scores["val_exact"][s]),
                "lr_factor": float(factor[s]),
            }
        )
    return rows


def _save(path: Path, spec: RennSpec, params: dict[str, Tensor], epoch: int, offset: float):
    payload = {
        "spec": asdict(spec),
        "epoch": epoch,
        "y_offset": offset,
        "params": {k: v.detach().cpu().clone() for k, v in params.items()},
    }
    save_checkpoint(path, payload)


def save_fit(fit: RennFit, path: Path) -> Path:
    """Write a whole RennFit (spec, parameters, rows, history) atomically to ``path``."""
    return save_checkpoint(
        path,
        {
            "spec": asdict(fit.spec),
            "settings": asdict(fit.settings),
            "params": fit.params,
            "y_offset": fit.y_offset,
            "train_rows": list(fit.train_rows),
            "val_rows": list(fit.val_rows),
            "best_epoch": list(fit.best_epoch),
            "epochs": fit.epochs,
            "history": fit.history,
        },
    )


def load_fit(path: Path) -> RennFit:
    """Read a RennFit written by :func:`save_fit`."""
    payload = load_checkpoint(path)
    spec_fields = dict(payload["spec"])
    for key in ("seeds", "hidden"):
        spec_fields[key] = tuple(spec_fields[key])
    return RennFit(
        spec=RennSpec(**spec_fields),
        settings=TrainSettings(**payload["settings"]),
        params=payload["params"],
        y_offset=float(payload["y_offset"]),
        train_rows=tuple(payload["train_rows"]),
        val_rows=tuple(payload["val_rows"]),
        best_epoch=tuple(payload["best_epoch"]),
        epochs=int(payload["epochs"]),
        history=payload["history"],
    )
