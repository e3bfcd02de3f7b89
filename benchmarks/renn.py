"""RENN training benchmark: our stacked trainer vs a faithful re-implementation of the reference.

Run from the repository root: ``.venv/bin/python benchmarks/renn.py`` (options: ``--help``).
Side by side in one run, same data, same sub-grid (losses x m), same seeds, same epochs,
reference profile (AdamW 2.5e-5 / 1.5e-3, StepLR 16 x 0.5, fresh 80/20 site split per seed):

(a) ours: ``fit_renn`` trains all seeds of one configuration as one stacked model (batched
    matmuls, hand-written backward into reusable buffers, closed-form losses from per-block
    sums, torch's fused AdamW kernel), and also records the exact NLLs every epoch;
(b) reference: one ``nn.Module`` per seed, a ``DataLoader`` with a group-exclusive batch
    sampler, losses from explicit a x a covariance matrices (``torch.linalg.inv``,
    ``torch.logdet``; the n x n matrix of the site for NLL_cor_1 and NLL_U), one batch and one
    ``torch.optim.AdamW`` step at a time, a validation pass with the same loss every epoch.

Data: the real TCGA-BRCA cohort's y (log MKI67 TPM) and sites (1027 slides, 38 sites, from the
package's copy of the catalogue) with random non-negative 2048-d features (the Inception-v3
width; timing does not depend on what the features say). Both sides are warmed up first and
run with float32 denormals flushed to zero (set before any torch work, so every thread has it).

Printed: the wall-clock ratio (b)/(a) per configuration and overall (goal >= 10x on 2 CPU cores),
both full-grid times (5 losses x 6 m x 10 seeds x 60 epochs) extrapolated from the sub-grid, and
a floor no trainer with these semantics can beat: exact AdamW reads and writes every
first-layer weight and both moments at every step (bytes per step / measured copy bandwidth),
and every training row costs the first layer's forward and weight-gradient products (FLOPs per
row / measured GEMM rate); the larger of the two per configuration. ``--full-grid`` then
trains the whole reference grid with ours.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from histo_renn_dagster.core.renn.data import make_renn_data
from histo_renn_dagster.core.renn.likelihood import LOSSES
from histo_renn_dagster.core.renn.spec import MINIBATCH_GRID, REFERENCE_SEEDS, RennSpec
from histo_renn_dagster.core.renn.train import fit_renn

CATALOGUE = Path(__file__).resolve().parents[1] / "histo_renn_dagster/emulator/data/tcga_brca"


def make_data(features: int, seed: int = 0):
    """Real y and site of every TCGA-BRCA slide with an MKI67 value and a site; random x."""
    slides = pd.read_csv(CATALOGUE / "diagnostic_slides.csv")
    expr = pd.read_csv(CATALOGUE / "mki67_tpm_unstranded.csv")
    table = slides.merge(expr[["submitter_id", "MKI67_tpm_unst"]], on="submitter_id")
    table = table.dropna(subset=["MKI67_tpm_unst", "tss_code"]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(0.3, 0.3, (len(table), features)))  # non-negative, like pooled ReLUs
    y = np.log(table["MKI67_tpm_unst"].to_numpy())
    return make_renn_data(y, table["tss_code"].astype(str).to_numpy(), x)


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

    def covariance(self, size):
        eye, ones = torch.eye(size), torch.ones(size, size)
        return self.log_s2e.exp() * eye + self.log_s2b.exp() * ones

    def loss(self, mode, y, fx, n):
        a = y.shape[0]
        e = (y - fx).unsqueeze(1)
        const = 0.5 * a * math.log(2 * math.pi)
        if mode == "NLL_no_RE":
            v_a = self.log_s2e.exp() * torch.eye(a)
            return (
                0.5 * torch.logdet(v_a) + 0.5 * e.T @ torch.linalg.inv(v_a) @ e + const
            ).squeeze()
        v_a = self.covariance(a)
        if mode in ("NLL", "NLL_cor_det"):
            value = 0.5 * torch.logdet(v_a) + 0.5 * e.T @ torch.linalg.inv(v_a) @ e + const
        else:
            v_n = self.covariance(n)
            v_n_inv = torch.linalg.inv(v_n)
        if mode == "NLL_cor_1":
            value = 0.5 * torch.logdet(v_a) + 0.5 * e.T @ v_n_inv[:a, :a] @ e + const
        if mode in ("NLL_cor_1", "NLL_cor_det"):
            rest = torch.logdet(self.covariance(n - a)) if n > a else 0.0
            v_n_logdet = torch.logdet(self.covariance(n))
            value = value + (a / n) * 0.5 * (v_n_logdet - torch.logdet(v_a) - rest)
        if mode == "NLL_U":
            # unbiased minibatch estimate of the site's exact NLL (our loss, written the same way)
            w = (n - 1) / (a - 1) if a > 1 else 0.0
            off = torch.ones(a, a) - torch.eye(a)
            q = v_n_inv[0, 0] * torch.eye(a) + (w * v_n_inv[0, 1] * off if n > 1 else 0.0)
            value = 0.5 * (a / n) * (torch.logdet(v_n) + n * math.log(2 * math.pi))
            value = value + 0.5 * e.T @ q @ e
        return value.squeeze()


def reference_split(site, seed):
    """The reference's split: sites shuffled by Python's RNG under the seed, 80% for training."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    groups = list(dict.fromkeys(site.tolist()))
    random.shuffle(groups)
    train_groups = set(groups[: int(len(groups) * 0.8)])
    tr = [i for i in range(len(site)) if site[i] in train_groups]
    va = [i for i in range(len(site)) if site[i] not in train_groups]
    return tr, va


def train_reference(data, mode, m, seed, epochs):
    site = data.site
    tr, va = reference_split(site, seed)
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


def copy_bandwidth(threads: int, megabytes: float) -> float:
    """Bytes per second moved by copying a ``megabytes`` buffer (read + write), best of 20.

    Sized like the optimiser's working set, so it is whichever memory level that set lives in.
    """
    torch.set_num_threads(threads)
    src = torch.ones(int(megabytes * 2**18))
    dst = torch.empty_like(src)
    best = math.inf
    for _ in range(20):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best


def matmul_rate(threads: int, rows: int = 150, features: int = 2048) -> float:
    """Floating-point operations per second of the first layer's forward product, best of 20."""
    torch.set_num_threads(threads)
    x, w = torch.rand(rows, features), torch.rand(features, 256)
    best = math.inf
    for _ in range(20):
        start = time.perf_counter()
        torch.mm(x, w)
        best = min(best, time.perf_counter() - start)
    return 2 * rows * features * 256 / best


def epoch_work(data, m: int, seed: int) -> tuple[int, int]:
    """(optimiser steps, training rows) of one reference epoch of ``seed``."""
    tr, _ = reference_split(data.site, seed)
    sizes = np.bincount(data.site[tr])
    return int(sum(math.ceil(n / m) for n in sizes if n)), len(tr)


def f_parameters(features: int) -> int:
    widths = [features, 256, 64, 1]
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--m", default=",".join(map(str, MINIBATCH_GRID)))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--full-grid",
        action="store_true",
        help="then train the whole reference grid (5 losses x 6 m x 10 seeds x 60 epochs), ours",
    )
    args = parser.parse_args(argv)
    # Before any torch work, so every intra-op thread inherits it: float32 denormals flushed to
    # zero for both sides (our trainer asks for it; see core.renn.train.flush_denormals).
    torch.set_flush_denormal(True)
    seeds = REFERENCE_SEEDS[: args.seeds]
    # weights, two moments and the gradient of every seed, copied as half reads, half writes
    bandwidth = copy_bandwidth(
        args.threads, 4 * 4 * f_parameters(args.features) * len(seeds) / 2**21
    )
    flops = matmul_rate(args.threads, features=args.features)
    torch.set_num_threads(args.threads)
    data = make_data(args.features)
    losses = args.losses.split(",")
    grid = [int(v) for v in args.m.split(",")]
    print(
        f"data: {data.num_rows} rows, {data.num_sites} sites, {args.features} features; "
        f"seeds {seeds}; {args.epochs} epochs; torch threads {torch.get_num_threads()}; "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s; first-layer GEMM {flops / 1e9:.0f} GFLOP/s"
    )
    # warm-up: allocator, thread pool and kernels of both sides, not timed
    fit_renn(data, RennSpec(loss="NLL", m=2, profile="reference", seeds=seeds, epochs=1))
    train_reference(data, "NLL", 2, seeds[0], 1)

    # exact AdamW reads p, g, m, v and writes p, m, v (28 bytes per float32 parameter), and the
    # forward pass reads the weights once more: 32 bytes per parameter per step, at the least
    step_bytes = 32 * f_parameters(args.features)
    row_flops = 2 * 2 * args.features * 256
    total_ours = total_ref = total_floor = full_ours = full_ref = 0.0
    for loss in losses:
        for m in grid:
            start = time.perf_counter()
            spec = RennSpec(loss=loss, m=m, profile="reference", seeds=seeds, epochs=args.epochs)
            fit_renn(data, spec)
            ours = time.perf_counter() - start
            start = time.perf_counter()
            for seed in seeds:
                train_reference(data, loss, m, seed, args.epochs)
            ref = time.perf_counter() - start
            work = [epoch_work(data, m, seed) for seed in seeds]
            steps = sum(w[0] for w in work) * args.epochs
            rows = sum(w[1] for w in work) * args.epochs
            # every training row costs the first layer's forward and weight-gradient products
            floor = max(steps * step_bytes / bandwidth, rows * row_flops / flops)
            total_ours, total_ref, total_floor = (
                total_ours + ours,
                total_ref + ref,
                total_floor + floor,
            )
            scale = (10 * 60) / (len(seeds) * args.epochs)
            full_ours, full_ref = full_ours + ours * scale, full_ref + ref * scale
            print(
                f"{loss:>11} m={m:<4} ours {ours:7.2f} s   reference {ref:7.2f} s   "
                f"ratio {ref / ours:5.1f}x   floor {floor:6.2f} s"
            )
    print(
        f"{'overall':>11}        ours {total_ours:7.2f} s   reference {total_ref:7.2f} s   "
        f"ratio {total_ref / total_ours:5.1f}x   floor {total_floor:6.2f} s"
    )
    print(
        f"floor / ours {total_floor / total_ours:.2f}; reference / floor "
        f"{total_ref / total_floor:.1f}x (the most any exact-AdamW trainer could gain)"
    )
    print(
        f"full grid ({len(losses)} losses x {len(grid)} m x 10 seeds x 60 epochs), extrapolated "
        f"from the sub-grid: ours {full_ours / 60:.1f} min, reference {full_ref / 3600:.2f} h"
    )
    if args.full_grid:
        start = time.perf_counter()
        for loss in losses:
            for m in grid:
                fit_renn(data, RennSpec(loss=loss, m=m, profile="reference", seeds=REFERENCE_SEEDS))
        print(f"full grid, ours, measured: {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
