"""The RENN study behind the issue's closing note: what each estimator does over m, once converged.

Run from the repository root (needs ../shared/data/tcga_brca; a few minutes on 2 cores):

    .venv/bin/python benchmarks/renn_study.py [--seeds 10] [--parts anchor,reference,sim]

Parts (each prints a markdown table; CSVs go to --out when given):

anchor     real TCGA-BRCA slides, y = log MKI67 TPM, site only (intercept-only f), default profile:
           every loss x m in {2, 4, 8, 16, 32, 150, full}, mean and sd over the seeds, next to the
           exact ML optimum. Also prints the seed-to-seed spread of NLL_U used for the anchor
           test's tolerances.
reference  the reference profile (60 epochs, its learning rates, variances starting at 1, y not
           centred) on simulated 64-d features with the real site sizes: sigma2_b over m.
sim        simulation with known sigma2_b = 0.3, sigma2_e = 0.5, a nonlinear f and the real site
           sizes, default profile, MLP 64-32: variance estimates per loss and m, and held-out
           metrics (seen / unseen sites) against the no-RE network and two exact-ML baselines.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from histo_renn_dagster.core.renn.baselines import fit_lmm, pca_design
from histo_renn_dagster.core.renn.data import RennData, make_renn_data
from histo_renn_dagster.core.renn.evaluate import evaluate_fit, score_predictions
from histo_renn_dagster.core.renn.simulate import simulate_cohort
from histo_renn_dagster.core.renn.spec import REFERENCE_SEEDS, RennSpec
from histo_renn_dagster.core.renn.train import fit_renn

ROOT = Path(__file__).resolve().parents[1]

GRID: tuple[int | None, ...] = (2, 4, 8, 16, 32, 150, None)
RE_LOSSES = ("NLL", "NLL_cor_det", "NLL_cor_1", "NLL_U")


def real_table(shared: Path) -> pd.DataFrame:
    folder = shared / "data" / "tcga_brca"
    slides = pd.read_csv(folder / "diagnostic_slides.csv")
    expr = pd.read_csv(folder / "mki67_tpm_unstranded.csv")
    table = slides.merge(expr[["submitter_id", "MKI67_tpm_unst"]], on="submitter_id")
    table = table.dropna(subset=["MKI67_tpm_unst", "tss_code"]).reset_index(drop=True)
    return table.assign(y=np.log(table["MKI67_tpm_unst"]))


def label(m: int | None) -> str:
    return "full" if m is None else str(m)


def part_anchor(table: pd.DataFrame, seeds: tuple[int, ...]) -> pd.DataFrame:
    data = make_renn_data(table["y"].to_numpy(), table["tss_code"].to_numpy())
    ml = fit_lmm(data.y, data.site)
    print(
        f"\nexact ML (slides, n = {data.num_rows}, sites = {data.num_sites}): mu = {ml.mu:.4f}, "
        f"sigma2_b = {ml.sigma2_b:.4f} [{ml.sigma2_b_ci[0]:.4f}, {ml.sigma2_b_ci[1]:.4f}], "
        f"sigma2_e = {ml.sigma2_e:.4f} [{ml.sigma2_e_ci[0]:.4f}, {ml.sigma2_e_ci[1]:.4f}], "
        f"ICC = {ml.icc:.3f}, LRT = {ml.lrt_stat:.1f} (p = {ml.lrt_pvalue:.1e}), "
        f"NLL = {ml.nll:.2f}"
    )
    rows = []
    for loss in RE_LOSSES:
        for m in GRID:
            start = time.perf_counter()
            fit = fit_renn(data, RennSpec(loss=loss, m=m, intercept_only=True, seeds=seeds))
            for s, seed in enumerate(seeds):
                rows.append(
                    {
                        "loss": loss,
                        "m": label(m),
                        "seed": seed,
                        "mu": fit.mu[s],
                        "sigma2_b": fit.sigma2_b[s],
                        "sigma2_e": fit.sigma2_e[s],
                    }
                )
            print(f"  {loss} m={label(m)}: {time.perf_counter() - start:.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["loss", "m"], sort=False).agg(
        mu=("mu", "mean"),
        sigma2_b=("sigma2_b", "mean"),
        sigma2_b_sd=("sigma2_b", "std"),
        sigma2_e=("sigma2_e", "mean"),
        sigma2_e_sd=("sigma2_e", "std"),
    )
    print(
        "\n### Real data, intercept-only, default profile (mean over seeds; ML: "
        f"sigma2_b = {ml.sigma2_b:.4f}, sigma2_e = {ml.sigma2_e:.4f})\n"
    )
    print(summary.round(4).to_markdown())
    nll_u = frame[frame["loss"] == "NLL_U"].copy()
    nll_u["dev_b"] = (nll_u["sigma2_b"] / ml.sigma2_b - 1).abs()
    nll_u["dev_e"] = (nll_u["sigma2_e"] / ml.sigma2_e - 1).abs()
    nll_u["dev_mu"] = (nll_u["mu"] / ml.mu - 1).abs()
    print("\nNLL_U seed-to-seed relative deviation from ML (max over seeds):\n")
    print(nll_u.groupby("m", sort=False)[["dev_mu", "dev_b", "dev_e"]].max().round(4).to_markdown())
    return frame


def part_reference(table: pd.DataFrame, seeds: tuple[int, ...]) -> pd.DataFrame:
    sizes = table["tss_code"].value_counts().to_numpy()
    data, _ = simulate_cohort(sizes, sigma2_b=0.3, sigma2_e=0.5, p=64, seed=11, split=False)
    rows = []
    for loss in ("NLL", "NLL_cor_1"):
        for m in GRID[:-1]:
            start = time.perf_counter()
            fit = fit_renn(data, RennSpec(loss=loss, m=m, profile="reference", seeds=seeds))
            last = fit.history[fit.history["epoch"] == fit.epochs]
            for s, seed in enumerate(seeds):
                rows.append(
                    {
                        "loss": loss,
                        "m": label(m),
                        "seed": seed,
                        "sigma2_b_best": fit.sigma2_b[s],
                        "sigma2_e_best": fit.sigma2_e[s],
                        "sigma2_b_last": float(last["sigma2_b_est"].iloc[s]),
                        "steps_per_epoch": None,
                    }
                )
            print(
                f"  reference {loss} m={label(m)}: {time.perf_counter() - start:.1f} s", flush=True
            )
    frame = pd.DataFrame(rows)
    print("\n### Reference profile on simulated data (truth sigma2_b = 0.3, sigma2_e = 0.5)\n")
    print(
        frame.groupby(["loss", "m"], sort=False)[
            ["sigma2_b_best", "sigma2_b_last", "sigma2_e_best"]
        ]
        .mean()
        .round(3)
        .to_markdown()
    )
    return frame


def _baselines(data: RennData, f_true: np.ndarray) -> list[dict]:
    train, test = data.rows("train"), data.rows("test")
    out = []
    for name, design in (
        ("LMM intercept", np.ones((data.num_rows, 1))),
        ("LMM PCA-4", pca_design(data.x, train, 4)),
    ):
        fit = fit_lmm(data.y[train], data.site[train], design[train])
        rows = score_predictions(
            model=name,
            loss="ML",
            m="-",
            seed=0,
            y=data.y,
            site=data.site,
            num_sites=data.num_sites,
            fixed=design @ fit.beta,
            train_rows=train,
            test_rows=test,
            s2e=fit.sigma2_e,
            s2b=fit.sigma2_b,
        )
        out.extend(r.as_record() for r in rows)
    oracle = fit_lmm(data.y[train] - f_true[train], data.site[train])
    rows = score_predictions(
        model="oracle f",
        loss="ML",
        m="-",
        seed=0,
        y=data.y,
        site=data.site,
        num_sites=data.num_sites,
        fixed=f_true + oracle.mu,
        train_rows=train,
        test_rows=test,
        s2e=oracle.sigma2_e,
        s2b=oracle.sigma2_b,
    )
    out.extend(r.as_record() for r in rows)
    return out


def part_sim(table: pd.DataFrame, seeds: tuple[int, ...], replicates: int) -> pd.DataFrame:
    sizes = table["tss_code"].value_counts().to_numpy()
    metrics = []
    for rep in range(replicates):
        data, f_true = simulate_cohort(sizes, sigma2_b=0.3, sigma2_e=0.5, seed=100 + rep)
        train = data.rows("train")
        oracle = fit_lmm(data.y[train] - f_true[train], data.site[train])
        print(
            f"  replicate {rep}: oracle ML on true residuals sigma2_b = {oracle.sigma2_b:.3f}, "
            f"sigma2_e = {oracle.sigma2_e:.3f}",
            flush=True,
        )
        for row in _baselines(data, f_true):
            metrics.append({**row, "replicate": rep})
        for loss in ("NLL", "NLL_cor_det", "NLL_cor_1", "NLL_U", "NLL_no_RE"):
            for m in (2, 8, 32, None):
                if loss == "NLL_no_RE" and m is not None:
                    continue
                start = time.perf_counter()
                spec = RennSpec(loss=loss, m=m, seeds=seeds, hidden=(64, 32), step_budget=1000)
                fit = fit_renn(data, spec)
                for row in evaluate_fit(fit, data):
                    metrics.append(
                        {
                            **row.as_record(),
                            "replicate": rep,
                            "oracle_sigma2_b": oracle.sigma2_b,
                            "oracle_sigma2_e": oracle.sigma2_e,
                        }
                    )
                print(f"    {loss} m={label(m)}: {time.perf_counter() - start:.1f} s", flush=True)
    frame = pd.DataFrame(metrics)
    seen = frame[frame["subset"] == "seen"]
    print("\n### Simulation (truth sigma2_b = 0.3, sigma2_e = 0.5), variance estimates\n")
    print(
        seen[seen["loss"] != "ML"]
        .groupby(["model", "m"], sort=False)[
            ["sigma2_b", "sigma2_e", "oracle_sigma2_b", "oracle_sigma2_e"]
        ]
        .mean()
        .round(3)
        .to_markdown()
    )
    print("\n### Simulation, held-out metrics (mean over seeds and replicates)\n")
    summary = (
        frame.groupby(["model", "m", "subset"], sort=False)[["mse", "nll", "pearson", "spearman"]]
        .mean()
        .round(3)
    )
    print(summary.to_markdown())
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--reference-seeds", type=int, default=3)
    parser.add_argument("--sim-seeds", type=int, default=3)
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--parts", default="anchor,reference,sim")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = real_table(Path(args.shared))
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    results = {}
    if "anchor" in parts:
        results["anchor"] = part_anchor(table, REFERENCE_SEEDS[: args.seeds])
    if "reference" in parts:
        results["reference"] = part_reference(table, REFERENCE_SEEDS[: args.reference_seeds])
    if "sim" in parts:
        results["sim"] = part_sim(table, REFERENCE_SEEDS[: args.sim_seeds], args.replicates)
    if out:
        for name, frame in results.items():
            frame.to_csv(out / f"renn_study_{name}.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
