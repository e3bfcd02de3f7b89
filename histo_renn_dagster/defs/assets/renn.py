"""The minibatch-size study: one ``renn_model`` partition per minibatch size m, in the ``gpu`` pool.

Each partition trains every loss x seed on ``cohort_table`` (``core.renn.study.run_study``), adds
the exact-ML baselines and writes ``lake/models/m=<m>/`` (``core.renn.study_io``). Three
partitioned checks read those files back: finite losses, variances in a sane range, every seed
finished. A backfill of all six keys trains the whole study; loss is not a partition dimension
because every loss of one m shares the cohort read, the split and the baselines, and the report
needs them together.
"""

# No `from __future__ import annotations` here: Dagster reads the config and context annotations
# of asset functions at definition time.

import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from histo_renn_dagster.core.errors import RennError
from histo_renn_dagster.defs.assets.features import GPU_POOL
from histo_renn_dagster.defs.automation import settled_refresh
from histo_renn_dagster.defs.executors import GPU_STEP_TAGS
from histo_renn_dagster.defs.partitions import minibatch_partitions
from histo_renn_dagster.defs.resources import ComputeResource, LayoutResource

# Literal copies of core.renn's LOSSES and REFERENCE_SEEDS[:3] (a test keeps them equal): the
# core modules import torch, which loading the definitions must not do.
ALL_LOSSES = ("NLL", "NLL_cor_det", "NLL_cor_1", "NLL_no_RE", "NLL_U")
DEFAULT_SEEDS = (17, 41, 92)


class RennModelConfig(dg.Config):
    """Defaults finish all six partitions of the demo cohort (~37 rows, 2048 features) in a few
    minutes on 2 CPU cores: 3 seeds, the default profile's 300-step budget, the reference
    profile's 60 epochs (cheap on a few dozen rows)."""

    profile: str = Field(
        default="default", description="default (the fixed study) | reference (as it ran)"
    )
    seeds: list[int] = Field(
        default_factory=lambda: list(DEFAULT_SEEDS),
        description="Training seeds; the reference used 17, 41, 92, 14, 68, 31, 89, 15, 21, 60",
    )
    losses: list[str] = Field(
        default_factory=lambda: list(ALL_LOSSES),
        description="Subset of NLL, NLL_cor_det, NLL_cor_1, NLL_no_RE, NLL_U",
    )
    split: str = Field(
        default="split_patient",
        description="Cohort split column: split_patient (held-out patients of seen sites) | "
        "split_site (held-out sites)",
    )
    epochs: int | None = Field(
        default=None, description="Epochs; null = the profile's (reference 60, default: budget)"
    )
    step_budget: int = Field(
        default=300, ge=1, description="Default profile: optimiser steps per seed"
    )
    hidden: list[int] = Field(default_factory=lambda: [256, 64], description="MLP hidden widths")
    features: str = Field(
        default="auto",
        description="auto (emb_ columns if any, else intercept-only) | none | a column prefix",
    )
    pca_components: int = Field(default=10, ge=1, description="LMM_pca baseline components")
    threads: int | None = Field(
        default=1,
        description="torch CPU threads (null = torch's default). One is fastest: a step is a few "
        "small matmuls, and more threads on a shared machine mostly wait for each other",
    )

    def spec(self, m: int):
        """The core ``StudySpec`` of partition m (raises RennSpecError on a bad config)."""
        from histo_renn_dagster.core.renn.study import StudySpec

        return StudySpec(
            m=m,
            profile=self.profile,
            seeds=tuple(self.seeds),
            losses=tuple(self.losses),
            split=self.split,
            epochs=self.epochs,
            step_budget=self.step_budget,
            hidden=tuple(self.hidden),
            features=self.features,
            pca_components=self.pca_components,
            threads=self.threads,
        )


@dg.asset(
    partitions_def=minibatch_partitions,
    op_tags=GPU_STEP_TAGS,
    group_name="renn",
    kinds={"pytorch", "parquet"},
    ins={"cohort_table": dg.AssetIn()},
    pool=GPU_POOL,
    automation_condition=settled_refresh(),
)
def renn_model(
    context: dg.AssetExecutionContext,
    config: RennModelConfig,
    cohort_table: pd.DataFrame,
    layout: LayoutResource,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """Every loss x seed trained at minibatch size m, plus exact-ML baselines, with per-epoch
    history, predictions and checkpoints in ``lake/models/m=<m>/``."""
    from histo_renn_dagster.core.renn.study import run_study
    from histo_renn_dagster.core.renn.study_io import study_summary, write_study

    m = int(context.partition_key)
    try:
        spec = config.spec(m)
    except RennError as exc:
        raise dg.Failure(f"renn_model config: {exc}") from exc
    device = str(compute.resolve().device)
    context.log.info(
        f"m={m}: {len(spec.losses)} losses x {len(spec.seeds)} seeds, profile {spec.profile}, "
        f"{spec.split}, {len(cohort_table)} cohort rows, on {device}"
    )

    def progress(loss: str, fit, wall_s: float) -> None:
        context.log.info(f"m={m} {loss}: {fit.epochs} epochs in {wall_s:.1f} s")

    started = time.perf_counter()
    result = run_study(cohort_table, spec, device=device, on_fit=progress)
    out = write_study(result, layout.lake().models_dir(m))
    cfg = result.config
    summary = study_summary(result.models)
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(out)),
        "profile": spec.profile,
        "split": spec.split,
        "seeds": dg.MetadataValue.json(list(spec.seeds)),
        "epochs": int(cfg["epochs"]),  # type: ignore[arg-type]
        "rows": int(cfg["rows"]),  # type: ignore[arg-type]
        "intercept_only": bool(cfg["intercept_only"]),
        "device": str(cfg["device"]),
        "wall_s": round(time.perf_counter() - started, 3),
        "per_loss": dg.MetadataValue.json(summary),
    }
    # flat numbers per loss as well, so the UI plots them across partitions
    for loss, entry in summary.items():
        for key in ("sigma2_b_mean", "sigma2_e_mean", "best_val_nll", "seen_mse"):
            value = entry.get(key)
            if value is not None:
                metadata[f"{loss}/{key}"] = dg.MetadataValue.float(float(value))
    return dg.MaterializeResult(metadata=metadata)


_CHECK_DESCRIPTIONS = {
    "losses_finite": "Every epoch's losses, exact NLLs and variance estimates are finite "
    "(validation columns may be NaN only for a run without validation rows)",
    "variances_in_range": "Selected sigma2_e in (1e-6, 10) x var(y), sigma2_b in [0, 10) x var(y)",
    "all_seeds_finished": "Every loss has a model for every seed and a history of every epoch",
}


def study_check_result(name: str, folder: Path) -> dg.AssetCheckResult:
    """Check ``name`` on the study written in ``folder``; an unreadable study fails it."""
    from histo_renn_dagster.core.renn.study_io import read_study, study_problems

    try:
        problems = study_problems(read_study(folder))[name]
    except (RennError, KeyError, ValueError) as exc:
        problems = [f"cannot read the study in {folder}: {exc}"]
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"problems": "\n".join(problems[:50]) or "none", "count": len(problems)},
    )


def _study_check(name: str, blocking: bool) -> dg.AssetChecksDefinition:
    """A check on one partition's files; partitioned checks are a preview API in Dagster 1.13,
    silenced here only (without it every m would share one check status)."""

    def _check(context: dg.AssetCheckExecutionContext, layout: LayoutResource):
        return study_check_result(name, layout.lake().models_dir(context.partition_key))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.asset_check(
            asset=renn_model,
            name=f"renn_model_{name}",
            description=_CHECK_DESCRIPTIONS[name],
            partitions_def=minibatch_partitions,
            blocking=blocking,
        )(_check)


renn_model_checks: list[dg.AssetChecksDefinition] = [
    _study_check("losses_finite", blocking=True),
    _study_check("variances_in_range", blocking=False),
    _study_check("all_seeds_finished", blocking=True),
]
