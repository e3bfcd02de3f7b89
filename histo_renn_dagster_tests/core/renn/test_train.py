"""fit_renn: stacked seeds equal one-by-one torch training; histories, checkpoints, selection."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from histo_renn_dagster.core.errors import RennSpecError
from histo_renn_dagster.core.renn.checkpoints import load_checkpoint
from histo_renn_dagster.core.renn.data import make_renn_data, reference_site_split
from histo_renn_dagster.core.renn.model import ModelSpec, init_params, to_linear_layers
from histo_renn_dagster.core.renn.samplers import plan_epoch
from histo_renn_dagster.core.renn.spec import RennSpec
from histo_renn_dagster.core.renn.train import HISTORY_COLUMNS, fit_renn, moment_variances

T = torch.float64
SIZES = [9, 5, 12, 7, 3, 10, 6]


def _data(with_split: bool):
    rng = np.random.default_rng(0)
    site = np.repeat(np.arange(len(SIZES)), SIZES)
    x = rng.normal(size=(site.size, 5))
    y = np.tanh(x[:, 0]) + rng.normal(0, 0.6, len(SIZES))[site] + rng.normal(0, 0.8, site.size)
    split = None
    if with_split:
        split = np.where(rng.random(site.size) < 0.25, "val", "train")
    return make_renn_data(y + 2.0, np.array([f"s{i}" for i in site]), x, split)


def _dense_loss(name: str, e: torch.Tensor, n: int, log_e, log_b) -> torch.Tensor:
    """The reference's way: explicit a x a matrices and inverses (torch, for autograd)."""
    s2e, s2b = log_e.exp(), log_b.exp()
    a = e.numel()
    ones = torch.ones(a, a, dtype=T)
    v_a = s2e * torch.eye(a, dtype=T) + s2b * ones
    const = 0.5 * a * math.log(2 * math.pi)
    v_n = s2e * torch.eye(n, dtype=T) + s2b * torch.ones(n, n, dtype=T)
    v_n_inv = torch.linalg.inv(v_n)
    if name == "NLL_cor_1":
        alpha = (
            (a / n)
            * 0.5
            * (
                torch.logdet(v_n)
                - torch.logdet(v_a)
                - (torch.logdet(v_n[: n - a, : n - a]) if n > a else 0.0)
            )
        )
        return 0.5 * torch.logdet(v_a) + 0.5 * e @ v_n_inv[:a, :a] @ e + const + alpha
    if name == "NLL_U":
        w = (n - 1) / (a - 1) if a > 1 else 0.0
        off = v_n_inv[0, 1] if n > 1 else 0.0
        q = v_n_inv[0, 0] * torch.eye(a, dtype=T) + w * off * (ones - torch.eye(a, dtype=T))
        return 0.5 * (a / n) * (torch.logdet(v_n) + n * math.log(2 * math.pi)) + 0.5 * e @ q @ e
    raise KeyError(name)


def _one_by_one(data, spec: RennSpec, seed: int, lr_f: float, lr_var: float) -> dict:
    """A plain per-seed loop: nn.Sequential, torch.optim.AdamW, dense losses, LR schedulers."""
    rng = np.random.default_rng(seed)
    if spec.profile == "reference":
        pool = np.arange(data.num_rows)
        train, _ = reference_site_split(data.site, pool, rng)
        y, log_e0, log_b0 = data.y, 0.0, 0.0
    else:
        train = data.rows("train")
        y = data.y - data.y[train].mean()
        s2e0, s2b0 = moment_variances(y[train], data.site[train])
        log_e0, log_b0 = math.log(s2e0), math.log(s2b0)
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 1)]
    model = nn.Sequential(*layers).double()
    log_e = nn.Parameter(torch.tensor(log_e0, dtype=T))
    log_b = nn.Parameter(torch.tensor(log_b0, dtype=T))
    opt = torch.optim.AdamW(
        [
            {"params": list(model.parameters()), "lr": lr_f, "weight_decay": 1e-3},
            {"params": [log_e, log_b], "lr": lr_var, "weight_decay": 0.0},
        ],
        foreach=False,
    )
    x, yt = torch.as_tensor(data.x, dtype=T), torch.as_tensor(y, dtype=T)
    counts = np.bincount(data.site[train], minlength=data.num_sites)
    kwargs = dict(merge_singletons=spec.loss == "NLL_U" or spec.profile == "default")
    if spec.profile == "default":
        kwargs.update(sampler="mixing", rows_per_step=spec.rows_per_step)
        probe = plan_epoch(data.site, train, spec.m, np.random.default_rng(0), **kwargs)
        total = spec.epochs * probe.num_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(k / total, 1.0)))
        )
    else:
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=16, gamma=0.5)
    for _ in range(spec.epochs):
        plan = plan_epoch(data.site, train, spec.m, rng, **kwargs)
        for t in range(plan.num_steps):
            opt.zero_grad()
            loss = torch.zeros((), dtype=T)
            in_step = plan.step == t
            for k in np.unique(plan.block[in_step]):
                rows = torch.as_tensor(plan.rows[in_step & (plan.block == k)])
                e = yt[rows] - model(x[rows]).squeeze(-1)
                n = int(counts[data.site[int(rows[0])]])
                loss = loss + _dense_loss(spec.loss, e, n, log_e, log_b)
            loss.backward()
            opt.step()
            if spec.profile == "default":
                sched.step()
        if spec.profile == "reference":
            sched.step()
    return {"model": model, "log_s2e": log_e.detach(), "log_s2b": log_b.detach()}


@pytest.mark.parametrize(
    ("profile", "loss", "m", "epochs"),
    [("reference", "NLL_cor_1", 4, 18), ("reference", "NLL_U", 3, 17), ("default", "NLL_U", 2, 6)],
)
def test_stacked_seeds_equal_training_each_seed_alone(
    tmp_path: Path, profile: str, loss: str, m: int, epochs: int
) -> None:
    data = _data(with_split=profile == "default")
    seeds = (17, 41, 92)
    spec = RennSpec(
        loss=loss,
        m=m,
        profile=profile,
        seeds=seeds,
        hidden=(6, 3),
        epochs=epochs,
        lr_f=1e-2,
        lr_var=5e-2,
        weight_decay_f=1e-3,
        dtype="float64",
        rows_per_step=10,
        checkpoint_every=epochs,
    )
    fit_renn(data, spec, checkpoint_dir=tmp_path)
    stacked = load_checkpoint(tmp_path / f"epoch_{epochs:03d}.pt")["params"]
    for s, seed in enumerate(seeds):
        alone = _one_by_one(data, spec, seed, 1e-2, 5e-2)
        linear = [layer for layer in alone["model"] if isinstance(layer, nn.Linear)]
        for (w, b), layer in zip(to_linear_layers(stacked, s), linear, strict=True):
            torch.testing.assert_close(w, layer.weight.detach(), rtol=0, atol=1e-10)
            torch.testing.assert_close(b, layer.bias.detach(), rtol=0, atol=1e-10)
        assert float(stacked["log_s2e"][s]) == pytest.approx(float(alone["log_s2e"]), abs=1e-10)
        assert float(stacked["log_s2b"][s]) == pytest.approx(float(alone["log_s2b"]), abs=1e-10)
        assert abs(float(stacked["log_s2b"][s])) > 0.05  # the variances did move


def test_initial_weights_are_those_of_nn_linear_under_the_seed() -> None:
    params = init_params(ModelSpec(5, (6, 3)), (17, 41), log_s2e=0.0, log_s2b=0.0, dtype=T)
    for s, seed in enumerate((17, 41)):
        torch.manual_seed(seed)
        layers = [nn.Linear(5, 6), nn.Linear(6, 3), nn.Linear(3, 1)]
        for (w, b), layer in zip(to_linear_layers(params, s), layers, strict=True):
            torch.testing.assert_close(w, layer.weight.detach().double())
            torch.testing.assert_close(b, layer.bias.detach().double())


def test_history_has_the_reference_columns_and_checkpoints_are_written(tmp_path: Path) -> None:
    data = _data(with_split=True)
    spec = RennSpec(loss="NLL", m=4, seeds=(17, 41), hidden=(4,), epochs=5, checkpoint_every=2)
    fit = fit_renn(data, spec, checkpoint_dir=tmp_path)
    assert tuple(fit.history.columns) == HISTORY_COLUMNS
    assert len(fit.history) == 10 and set(fit.history["run"]) == {0, 1}
    assert (
        fit.history[["train_loss", "val_loss", "train_exact_nll", "val_exact_nll"]]
        .notna()
        .all()
        .all()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.pt",
        "epoch_002.pt",
        "epoch_004.pt",
        "epoch_005.pt",
    ]
    # the selected epoch is the one with the lowest validation exact NLL, per seed
    for run, part in fit.history.groupby("run"):
        assert fit.best_epoch[run] == int(part.loc[part["val_exact_nll"].idxmin(), "epoch"])
        row = part[part["epoch"] == fit.best_epoch[run]].iloc[0]
        assert fit.sigma2_b[run] == pytest.approx(row["sigma2_b_est"], rel=1e-6)


def test_no_re_loss_has_no_random_effect() -> None:
    data = _data(with_split=True)
    fit = fit_renn(data, RennSpec(loss="NLL_no_RE", m=4, seeds=(17,), hidden=(4,), epochs=3))
    assert (fit.sigma2_b == 0).all() and (fit.history["sigma2_b_est"] == 0).all()


def test_bad_specs_are_named() -> None:
    with pytest.raises(RennSpecError, match="NLL_U needs m >= 2"):
        RennSpec(loss="NLL_U", m=1)
    with pytest.raises(RennSpecError, match="profile"):
        RennSpec(profile="fast")
    with pytest.raises(RennSpecError, match="distinct"):
        RennSpec(seeds=(1, 1))


def test_a_fit_round_trips_through_save_and_load(tmp_path: Path) -> None:
    from histo_renn_dagster.core.renn.train import load_fit, save_fit

    data = _data(with_split=True)
    fit = fit_renn(data, RennSpec(loss="NLL_U", m=3, seeds=(17, 41), hidden=(4,), epochs=2))
    again = load_fit(save_fit(fit, tmp_path / "fit.pt"))
    assert again.spec == fit.spec and again.best_epoch == fit.best_epoch
    np.testing.assert_array_equal(again.sigma2_b, fit.sigma2_b)
    np.testing.assert_array_equal(again.train_rows[1], fit.train_rows[1])
    assert again.history.equals(fit.history)


def test_fallback_optimiser_path_matches_the_fused_kernel() -> None:
    from histo_renn_dagster.core.renn.optim import ParamGroupSpec, StackedAdamW

    rng = torch.Generator().manual_seed(0)
    start = torch.randn(3, 5, 4, generator=rng, dtype=T)
    grads = [torch.randn(3, 5, 4, generator=rng, dtype=T) for _ in range(6)]
    active = [
        torch.tensor(a) for a in ([1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0])
    ]
    results = []
    for fused in (True, False):
        params = {"w": start.clone()}
        opt = StackedAdamW(params, (ParamGroupSpec(("w",), 0.1, 0.01),))
        opt.fused = fused
        for g, a in zip(grads, active, strict=True):
            opt.step({"w": g}, a.bool(), torch.tensor([1.0, 0.5, 0.25], dtype=T))
        results.append(params["w"])
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_the_cpu() -> None:
    data = _data(with_split=True)
    spec = RennSpec(loss="NLL_U", m=3, seeds=(17, 41), hidden=(6, 3), epochs=4, dtype="float64")
    on_cpu = fit_renn(data, spec)
    on_gpu = fit_renn(data, spec, device="cuda")
    for name, value in on_cpu.params.items():
        assert on_gpu.params[name].device.type == "cpu"  # results come back to the host
        torch.testing.assert_close(on_gpu.params[name], value, rtol=1e-9, atol=1e-9)
    assert on_gpu.best_epoch == on_cpu.best_epoch
