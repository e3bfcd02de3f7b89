"""RENN training benchmark: our stacked trainer vs a faithful re-implementation of the reference.

Run from the repository root: ``.venv/bin/python benchmarks/renn.py`` (options below). Side by
side in one run, same data, same sub-grid (losses x m), same seeds, same epochs, reference
profile (AdamW 2.5e-5 / 1.5e-3, StepLR 16 x 0.5, fresh 80/20 site split per seed):

(a) ours: ``fit_renn`` trains all seeds of one configuration as one stacked model (batched
    matmuls, closed-form losses from per-block sums, one backward for all seeds), and also
    records the exact NLLs every epoch;
(b) reference: one ``nn.Module`` per seed, a ``DataLoader`` with a group-exclusive batch
    sampler, losses built from explicit a x a covariance matrices and inverses, one batch and
    one optimiser step at a time, a validation pass with the same loss every epoch.

Data: 2048-d features (the Inception-v3 width) for ~1000 rows in 38 sites with a realistic,
skewed size profile; y = nonlinear f + site effect + noise. The wall-clock ratio (b)/(a) per
configuration and overall is printed; the goal is >= 10x on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import defaultdict

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from histo_renn_dagster.core.renn.data import make_renn_data
from histo_renn_dagster.core.renn.spec import REFERENCE_SEEDS, RennSpec
from histo_renn_dagster.core.renn.train import fit_renn


def make_data(features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.maximum(1, np.round(rng.lognormal(3.0, 0.9, 38))).astype(int)
    site = np.repeat(np.arange(sizes.size), sizes)
    x = np.abs(rng.normal(0.3, 0.3, (site.size, features)))  # non-negative, like pooled ReLUs
    f = 2.0 + np.tanh(x[:, :8].sum(1) - 2.4) + 0.5 * np.sin(x[:, 8])
    y = f + rng.normal(0, 0.35, sizes.size)[site] + rng.normal(0, 1.0, site.size)
    return make_renn_data(y, np.array([f"S{j:02d}" for j in site]), x)


# --- (b) the reference, re-implemented: one model, one batch at a time -------------------------


class Rows(Dataset):
    def __init__(self, x, y, g):
        self.x, self.y, self.g = x, y, g

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], self.g[i]


class ChunkSampler(Sampler):
    """Group-exclusive batches: sites in random order, each shuffled and cut into chunks of m."""

    def __init__(self, groups, m):
        self.m = m
        self.by_group = defaultdict(list)
        for i, g in enumerate(groups):
            self.by_group[int(g)].append(i)
        self.keys = list(self.by_group)

    def __iter__(self):
        random.shuffle(self.keys)
        for k in self.keys:
            rows = self.by_group[k]
            random.shuffle(rows)
            for i in range(0, len(rows), self.m):
                yield rows[i : i + self.m]

    def __len__(self):
        return sum(math.ceil(len(r) / self.m) for r in self.by_group.values())


class ReferenceModel(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.f = nn.Sequential(
            nn.Linear(p, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 1)
        )
        self.log_s2e = nn.Parameter(torch.tensor(0.0))
        self.log_s2b = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return self.f(x).squeeze(-1)

    def loss(self, mode, y, fx, n):
        s2e, s2b = self.log_s2e.exp(), self.log_s2b.exp()
        a = y.shape[0]
        e = (y - fx).unsqueeze(1)
        const = 0.5 * a * math.log(2 * math.pi)
        if mode == "NLL_no_RE":
            v_inv = torch.eye(a) / s2e
            return (0.5 * a * torch.log(s2e) + 0.5 * e.T @ v_inv @ e + const).squeeze()
        ones = torch.ones(a, 1)
        logdet_a = (a - 1) * torch.log(s2e) + torch.log(s2e + a * s2b)
        if mode == "NLL_cor_1":
            ones_n = torch.ones(n, 1)
            v_inv = torch.eye(n) / s2e - s2b / (s2e * (s2e + n * s2b)) * (ones_n @ ones_n.T)
            v_inv = v_inv[:a, :a]
        else:
            v_inv = torch.eye(a) / s2e - s2b / (s2e * (s2e + a * s2b)) * (ones @ ones.T)
        value = 0.5 * logdet_a + 0.5 * e.T @ v_inv @ e + const
        if mode in ("NLL_cor_1", "NLL_cor_det"):
            value = value + (a / n) * 0.5 * torch.log(
                s2e * (s2e + n * s2b) / ((s2e + a * s2b) * (s2e + (n - a) * s2b))
            )
        return value.squeeze()


def train_reference(data, mode, m, seed, epochs):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    site = data.site
    groups = list(dict.fromkeys(site.tolist()))
    random.shuffle(groups)
    train_groups = set(groups[: int(len(groups) * 0.8)])
    tr = [i for i in range(len(site)) if site[i] in train_groups]
    va = [i for i in range(len(site)) if site[i] not in train_groups]
    x = torch.tensor(data.x, dtype=torch.float32)
    y = torch.tensor(data.y, dtype=torch.float32)
    g = torch.tensor(site)
    sizes = torch.bincount(g)
    train_loader = DataLoader(Rows(x[tr], y[tr], g[tr]), batch_sampler=ChunkSampler(site[tr], m))
    val_loader = DataLoader(Rows(x[va], y[va], g[va]), batch_sampler=ChunkSampler(site[va], m))
    model = ReferenceModel(x.shape[1])
    opt = torch.optim.AdamW(
        [
            {"params": list(model.f.parameters()), "lr": 2.5e-5, "weight_decay": 1e-3},
            {"params": [model.log_s2e, model.log_s2b], "lr": 1.5e-3, "weight_decay": 0.0},
        ]
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=16, gamma=0.5)
    history = []
    for _ in range(epochs):
        model.train()
        for xb, yb, gb in train_loader:
            opt.zero_grad()
            loss = model.loss(mode, yb, model(xb), int(sizes[gb[0]]))
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            total = sum(
                float(model.loss(mode, yb, model(xb), int(sizes[gb[0]])))
                for xb, yb, gb in val_loader
            )
        history.append((total / max(len(va), 1), model.log_s2b.exp().item()))
        sched.step()
    return history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="NLL,NLL_cor_1")
    parser.add_argument("--m", default="2,32")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = make_data(args.features)
    seeds = REFERENCE_SEEDS[: args.seeds]
    print(
        f"data: {data.num_rows} rows, {data.num_sites} sites, {args.features} features; "
        f"seeds {seeds}; {args.epochs} epochs; torch threads {torch.get_num_threads()}"
    )
    total_ours = total_ref = 0.0
    for loss in args.losses.split(","):
        for m in (int(v) for v in args.m.split(",")):
            start = time.perf_counter()
            spec = RennSpec(loss=loss, m=m, profile="reference", seeds=seeds, epochs=args.epochs)
            fit_renn(data, spec)
            ours = time.perf_counter() - start
            start = time.perf_counter()
            for seed in seeds:
                train_reference(data, loss, m, seed, args.epochs)
            ref = time.perf_counter() - start
            total_ours += ours
            total_ref += ref
            print(
                f"{loss:>10} m={m:<4} ours {ours:7.2f} s   reference {ref:7.2f} s   "
                f"ratio {ref / ours:6.1f}x"
            )
    print(
        f"{'overall':>10}        ours {total_ours:7.2f} s   reference {total_ref:7.2f} s   "
        f"ratio {total_ref / total_ours:6.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
