"""`histo-renn fit`: fit the random-effects network (or intercept-only model) to any table.

One JSON line per loss: loss, m, sigma2_b, sigma2_e, exact_nll (training rows), mu (intercept-only
fits) and, with --split, test_mse (y_hat = f(x) + BLUP), test_mse_no_re (the same fit's f(x)
alone, b = 0) and test_spearman, all averaged over the seeds (per-seed values under "per_seed").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from histo_renn_dagster.commands.output import emit
from histo_renn_dagster.core.atomic import atomic_path, atomic_write_bytes
from histo_renn_dagster.core.errors import RennSpecError


def _parse_m(text: str) -> int | None:
    if text == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise RennSpecError(f"--m must be a positive integer or 'full', got {text!r}") from None
    if value < 1:
        raise RennSpecError(f"--m must be a positive integer or 'full', got {text!r}")
    return value


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise RennSpecError(f"--hidden must be comma-separated integers, got {text!r}") from None
    if not widths or any(w < 1 for w in widths):
        raise RennSpecError(f"--hidden must be positive widths such as 256,64, got {text!r}")
    return widths


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _write_parquet(frame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from histo_renn_dagster.core.renn.data import data_from_table, read_table
    from histo_renn_dagster.core.renn.evaluate import (
        evaluate_fit,
        summarise_test,
        training_exact_nll,
    )
    from histo_renn_dagster.core.renn.likelihood import LOSSES, check_loss
    from histo_renn_dagster.core.renn.spec import REFERENCE_SEEDS, RennSpec
    from histo_renn_dagster.core.renn.train import fit_renn, torch_threads

    m = _parse_m(args.m)
    hidden = _parse_hidden(args.hidden)
    losses = LOSSES if args.loss == "all" else (check_loss(args.loss),)
    if not 1 <= args.seeds <= len(REFERENCE_SEEDS):
        raise RennSpecError(f"--seeds must be 1..{len(REFERENCE_SEEDS)}, got {args.seeds}")
    features = None if args.features == "none" else args.features
    table = read_table(Path(args.table))
    data = data_from_table(
        table,
        y=args.y,
        group=args.group,
        features=features,
        transform=args.transform,
        split=args.split,
    )
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    histories, metrics, records = [], [], []
    for loss in losses:
        if loss == "NLL_U" and m == 1:
            raise RennSpecError("NLL_U needs --m >= 2 or full")
        spec = RennSpec(
            loss=loss,
            m=m,
            profile=args.profile,
            seeds=REFERENCE_SEEDS[: args.seeds],
            hidden=hidden,
            intercept_only=features is None,
            step_budget=args.steps,
        )
        with torch_threads(args.threads):
            fit = fit_renn(
                data, spec, checkpoint_dir=None if out is None else out / "models" / loss
            )
        exact = training_exact_nll(fit, data)
        record: dict[str, object] = {
            "loss": loss,
            "m": spec.m_label,
            "profile": args.profile,
            "seeds": len(spec.seeds),
            "sigma2_b": float(np.mean(fit.sigma2_b)),
            "sigma2_e": float(np.mean(fit.sigma2_e)),
            "exact_nll": float(np.mean(exact)),
            "best_epoch": list(fit.best_epoch),
            "epochs": fit.epochs,
        }
        per_seed: dict[str, list] = {
            "sigma2_b": fit.sigma2_b.tolist(),
            "sigma2_e": fit.sigma2_e.tolist(),
            "exact_nll": exact.tolist(),
        }
        if fit.mu is not None:
            record["mu"] = float(np.mean(fit.mu))
            per_seed["mu"] = fit.mu.tolist()
        if args.split:
            if data.rows("test").size == 0:
                raise RennSpecError(f"--split {args.split}: no rows are labelled test")
            metrics.extend(r.as_record() for r in evaluate_fit(fit, data))
            summary = summarise_test(fit, data)
            for key in ("mse", "mse_no_re", "spearman"):
                values = [row[key] for row in summary]
                record[f"test_{key}"] = _mean(values)
                per_seed[f"test_{key}"] = values
        record["per_seed"] = per_seed
        records.append(record)
        histories.append(fit.history)
        emit(record)
    if out is not None:
        _write_parquet(pd.concat(histories, ignore_index=True), out / "history.parquet")
        if metrics:
            _write_parquet(pd.DataFrame(metrics), out / "metrics.parquet")
        _write_text(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a random-effects network / mixed model to a CSV or Parquet table",
        description="Fit y = f(x) + b_group + e with the chosen loss(es) and print one JSON line "
        "per loss. --features none fits the intercept-only mixed model (f = mu).",
    )
    p.add_argument("table", help="CSV or Parquet file")
    p.add_argument("--y", required=True, help="outcome column")
    p.add_argument("--group", required=True, help="random-effect group column (e.g. site)")
    p.add_argument("--features", default="none", help="feature column prefix, or none")
    p.add_argument("--transform", default="none", choices=("none", "log"))
    p.add_argument(
        "--loss",
        default="NLL_U",
        help="NLL, NLL_cor_det, NLL_cor_1, NLL_no_RE, NLL_U or all (default NLL_U)",
    )
    p.add_argument("--m", default="full", help="minibatch (block) size, or full (default)")
    p.add_argument("--profile", default="default", choices=("default", "reference"))
    p.add_argument("--seeds", type=int, default=1, help="the first N reference seeds")
    p.add_argument("--split", default=None, help="column with train/val/test labels")
    p.add_argument("--hidden", default="256,64", help="hidden widths (default 256,64)")
    p.add_argument("--steps", type=int, default=2000, help="default profile's step budget")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=None, help="folder for history, metrics and checkpoints")
    p.set_defaults(handler=run)
