"""Flat result tables: every ``renn_model`` partition's files concatenated, deterministically.

Each partition ``<lake>/models/m=<m>/`` holds ``history.parquet``, ``models.parquet``,
``predictions.parquet`` and ``config.json``. The three tables are checked against the file
contract (required columns, known loss names, m matching the folder), cast to fixed dtypes,
concatenated and sorted by (m, loss in canonical order, run, epoch / unit), so the same inputs
always give the same rows in the same order and byte-identical Parquet files.

A partition whose folder or files are absent is reported as missing, not an error: the results
can be looked at while the model backfill runs. A file that exists but breaks the contract is an
error (ResultsError naming it).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from histo_renn_dagster.core.atomic import atomic_path
from histo_renn_dagster.core.errors import ResultsError
from histo_renn_dagster.core.layout import LakeLayout
from histo_renn_dagster.core.renn.likelihood import DISPLAY_NAMES, LOSSES

BASELINE_NAMES: dict[str, str] = {
    "LMM_intercept": "LMM (intercept)",
    "LMM_pca": "LMM (PCA features)",
}
"""The two classical baselines fitted by exact ML, as they appear in ``models.parquet``."""

MODEL_NAMES: dict[str, str] = {**DISPLAY_NAMES, **BASELINE_NAMES}
MODEL_ORDER: tuple[str, ...] = (*LOSSES, *BASELINE_NAMES)
"""Canonical order of models in every table and figure: the five losses, then the baselines."""

NO_RANDOM_EFFECT: frozenset[str] = frozenset({"NLL_no_RE"})
"""Models without a site variance: their sigma2_b (0 or NaN) is left out of variance figures."""

_F, _I, _S, _B = pa.float64(), pa.int64(), pa.string(), pa.bool_()

HISTORY_SCHEMA = pa.schema(
    [
        ("loss_func", _S),
        ("loss_func_disp", _S),
        ("m", _I),
        ("run", _I),
        ("epoch", _I),
        ("train_loss", _F),
        ("val_loss", _F),
        ("sigma2_b_est", _F),
        ("sigma2_e_est", _F),
        ("exact_nll_train", _F),
        ("exact_nll_val", _F),
    ]
)
_METRICS = ("mse", "pearson", "spearman", "pred_nll")
MODELS_SCHEMA = pa.schema(
    [
        ("loss_func", _S),
        ("loss_func_disp", _S),
        ("m", _I),
        ("run", _I),
        ("best_epoch", _I),
        ("sigma2_b", _F),
        ("sigma2_e", _F),
        ("sigma2_b_ci_low", _F),
        ("sigma2_b_ci_high", _F),
        ("icc", _F),
        ("exact_nll_val", _F),
        *[(f"seen_{k}", _F) for k in _METRICS],
        ("seen_n", _I),
        *[(f"unseen_{k}", _F) for k in _METRICS],
        ("unseen_n", _I),
        ("wall_s", _F),
        ("device", _S),
        ("profile", _S),
        ("split", _S),
    ]
)
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("loss_func", _S),
        ("loss_func_disp", _S),
        ("m", _I),
        ("run", _I),
        ("unit_id", _S),
        ("site_code", _S),
        ("split", _S),
        ("y", _F),
        ("f_x", _F),
        ("blup", _F),
        ("y_hat", _F),
        ("residual", _F),
        ("seen_site", _B),
    ]
)

KINDS: tuple[str, ...] = ("history", "models", "predictions")
SCHEMAS: dict[str, pa.Schema] = {
    "history": HISTORY_SCHEMA,
    "models": MODELS_SCHEMA,
    "predictions": PREDICTIONS_SCHEMA,
}
_SORT_KEYS: dict[str, tuple[str, ...]] = {
    "history": ("m", "_order", "run", "epoch"),
    "models": ("m", "_order", "run"),
    "predictions": ("m", "_order", "run", "unit_id"),
}
CONFIG_FILE = "config.json"


def table_name(kind: str) -> str:
    """The lake table name of one result kind: ``renn_results_<kind>``."""
    if kind not in KINDS:
        raise ResultsError(f"unknown result kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"renn_results_{kind}"


@dataclass(frozen=True)
class PartitionIssue:
    """A minibatch size whose model files are not (all) there yet."""

    m: str
    detail: str


@dataclass(frozen=True)
class ResultTables:
    """The three flat tables, the partitions they came from and the ones that were missing."""

    history: pd.DataFrame
    models: pd.DataFrame
    predictions: pd.DataFrame
    partitions: tuple[str, ...] = ()
    missing: tuple[PartitionIssue, ...] = ()
    configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def table(self, kind: str) -> pd.DataFrame:
        return {"history": self.history, "models": self.models, "predictions": self.predictions}[
            kind
        ]

    def row_counts(self) -> dict[str, int]:
        return {kind: len(self.table(kind)) for kind in KINDS}


def empty_table(kind: str) -> pd.DataFrame:
    return SCHEMAS[kind].empty_table().to_pandas()


def conform_table(
    frame: pd.DataFrame, kind: str, *, source: str, m: int | None = None
) -> pd.DataFrame:
    """``frame`` with the contract's columns first, in their fixed dtypes; extra columns follow,
    sorted by name. Raises ResultsError naming ``source`` when the contract is broken."""
    schema = SCHEMAS[kind]
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ResultsError(f"{source}: missing columns {missing} (file contract of {kind})")
    unknown = sorted(set(frame["loss_func"].astype(str)) - set(MODEL_NAMES))
    if unknown:
        raise ResultsError(
            f"{source}: unknown loss_func {unknown}; expected one of {', '.join(MODEL_ORDER)}"
        )
    wrong_disp = frame["loss_func_disp"].astype(str) != frame["loss_func"].astype(str).map(
        MODEL_NAMES
    )
    if wrong_disp.any():
        row = frame[wrong_disp].iloc[0]
        raise ResultsError(
            f"{source}: loss_func_disp {row['loss_func_disp']!r} for {row['loss_func']!r}, "
            f"expected {MODEL_NAMES[str(row['loss_func'])]!r}"
        )
    if m is not None and len(frame) and not (frame["m"] == m).all():
        found = sorted(set(frame["m"].tolist()))
        raise ResultsError(f"{source}: column m holds {found}, expected {m} (its folder)")
    out = pd.DataFrame(index=range(len(frame)))
    for f in schema:
        column = frame[f.name].reset_index(drop=True)
        try:
            out[f.name] = _cast(column, f.type)
        except (ValueError, TypeError) as exc:
            raise ResultsError(f"{source}: column {f.name} is not {f.type}: {exc}") from None
    for name in sorted(set(frame.columns) - set(schema.names)):
        out[name] = frame[name].reset_index(drop=True)
    return out


def _cast(column: pd.Series, dtype: pa.DataType) -> pd.Series:
    if dtype != pa.float64() and column.isna().any():
        raise ValueError(f"{int(column.isna().sum())} missing values")
    if dtype == pa.string():
        return column.astype(str).astype(object)
    if dtype == pa.bool_():
        return column.astype(bool)
    as_float = pd.Series(pd.to_numeric(column), index=column.index).astype("float64")
    if dtype == pa.int64():
        if ((as_float % 1) != 0).any():
            raise ValueError("non-integer values")
        return as_float.astype("int64")
    return as_float


def sort_table(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows in canonical order (m, model order, run, epoch/unit); a stable, unique order."""
    rank = {name: i for i, name in enumerate(MODEL_ORDER)}
    keyed = frame.assign(_order=frame["loss_func"].map(rank))
    keyed = keyed.sort_values(list(_SORT_KEYS[kind]), kind="mergesort")
    return keyed.drop(columns="_order").reset_index(drop=True)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ResultsError(f"{path}: unreadable Parquet file: {exc}") from None


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of one model folder ({} when absent)."""
    config_path = folder / CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{config_path}: unreadable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ResultsError(f"{config_path}: expected a JSON object, found {type(config).__name__}")
    return config


def read_configs(
    layout: LakeLayout, minibatch_sizes: Sequence[str | int]
) -> dict[str, dict[str, Any]]:
    """The config of every listed minibatch size that has a model folder, keyed by m."""
    return {
        str(m): read_config(layout.models_dir(m))
        for m in sorted({str(x) for x in minibatch_sizes}, key=int)
        if layout.models_dir(m).is_dir()
    }


def read_partition(folder: Path, m: int) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The three conformed tables and the config of one ``models/m=<m>`` folder."""
    tables = {}
    for kind in KINDS:
        path = folder / f"{kind}.parquet"
        tables[kind] = conform_table(_read_parquet(path), kind, source=str(path), m=m)
    return tables, read_config(folder)


def collect_results(layout: LakeLayout, minibatch_sizes: Sequence[str | int]) -> ResultTables:
    """Concatenate the model files of every minibatch size that has them; report the others."""
    parts: dict[str, list[pd.DataFrame]] = {kind: [] for kind in KINDS}
    found: list[str] = []
    missing: list[PartitionIssue] = []
    configs: dict[str, Mapping[str, Any]] = {}
    for key in sorted({str(m) for m in minibatch_sizes}, key=int):
        folder = layout.models_dir(key)
        absent = [f"{kind}.parquet" for kind in KINDS if not (folder / f"{kind}.parquet").is_file()]
        if absent:
            what = "folder absent" if not folder.is_dir() else f"no {', '.join(absent)}"
            missing.append(PartitionIssue(m=key, detail=f"{folder}: {what}"))
            continue
        tables, config = read_partition(folder, int(key))
        for kind in KINDS:
            parts[kind].append(tables[kind])
        found.append(key)
        configs[key] = config
    frames = {
        kind: sort_table(pd.concat(parts[kind], ignore_index=True), kind)
        if parts[kind]
        else empty_table(kind)
        for kind in KINDS
    }
    return ResultTables(
        frames["history"],
        frames["models"],
        frames["predictions"],
        partitions=tuple(found),
        missing=tuple(missing),
        configs=configs,
    )


def _to_arrow(frame: pd.DataFrame, kind: str) -> pa.Table:
    schema = SCHEMAS[kind]
    extra = [c for c in frame.columns if c not in schema.names]
    table = pa.Table.from_pandas(frame[list(schema.names)], schema=schema, preserve_index=False)
    for name in extra:
        table = table.append_column(name, pa.array(frame[name].tolist()))
    return table


def write_results(tables: ResultTables, layout: LakeLayout) -> dict[str, Path]:
    """Write ``renn_results_<kind>.parquet`` for each kind atomically; returns their paths."""
    paths: dict[str, Path] = {}
    for kind in KINDS:
        path = layout.table_path(table_name(kind))
        _atomic_parquet(_to_arrow(tables.table(kind), kind), path)
        paths[kind] = path
    return paths


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_results(
    layout: LakeLayout, minibatch_sizes: Sequence[str | int] | None = None
) -> ResultTables:
    """The three tables written by :func:`write_results` (ResultsError when one is absent).

    With ``minibatch_sizes`` the model configs are read too, and sizes without rows are listed
    as missing.
    """
    frames: dict[str, pd.DataFrame] = {}
    for kind in KINDS:
        path = layout.table_path(table_name(kind))
        if not path.is_file():
            raise ResultsError(f"{path} does not exist: materialize renn_results first")
        frames[kind] = conform_table(_read_parquet(path), kind, source=str(path))
    present = {str(m) for m in frames["models"]["m"].tolist()}
    partitions = tuple(sorted(present, key=int))
    if minibatch_sizes is None:
        return ResultTables(
            frames["history"], frames["models"], frames["predictions"], partitions=partitions
        )
    missing = tuple(
        PartitionIssue(m=str(m), detail="no rows in renn_results")
        for m in sorted({str(x) for x in minibatch_sizes} - present, key=int)
    )
    return ResultTables(
        frames["history"],
        frames["models"],
        frames["predictions"],
        partitions=partitions,
        missing=missing,
        configs=read_configs(layout, partitions),
    )


def results_version(tables: ResultTables) -> str:
    """A content hash of the three tables as they are written (rows, order, types, values), for
    a Dagster DataVersion: equal tables give equal versions."""
    digest = hashlib.sha256()
    for kind in KINDS:
        buffer = io.BytesIO()
        pq.write_table(_to_arrow(tables.table(kind), kind), buffer, compression="zstd")
        digest.update(kind.encode() + buffer.getvalue())
    return digest.hexdigest()[:32]
