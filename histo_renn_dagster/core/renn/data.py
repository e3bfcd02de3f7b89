"""The rows a RENN is fitted on, their splits, and reading them from a CSV/Parquet table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from histo_renn_dagster.core.errors import RennDataError

SPLIT_LABELS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class RennData:
    """Outcome, site index, optional features and optional split labels of N rows.

    ``site`` holds indices into ``site_names``; ``split`` (when given) holds train/val/test.
    ``x`` is None for intercept-only fits.
    """

    y: np.ndarray
    site: np.ndarray
    site_names: tuple[str, ...]
    x: np.ndarray | None = None
    split: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def num_sites(self) -> int:
        return len(self.site_names)

    def rows(self, label: str) -> np.ndarray:
        """Row indices with split ``label``; without split labels every row is ``train``."""
        if self.split is None:
            return np.arange(self.num_rows) if label == "train" else np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.split == label)


def make_renn_data(
    y: np.ndarray,
    groups: np.ndarray,
    x: np.ndarray | None = None,
    split: np.ndarray | None = None,
) -> RennData:
    """Validate and index the inputs; site names are the sorted distinct group values."""
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    n = y.shape[0]
    if y.ndim != 1 or n < 2:
        raise RennDataError(f"y must be a vector of at least 2 rows, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise RennDataError(f"y has {int((~np.isfinite(y)).sum())} non-finite values")
    if groups.shape != (n,):
        raise RennDataError(f"group column has shape {groups.shape}, expected ({n},)")
    if pd.isna(groups).any():
        raise RennDataError(f"group column has {int(pd.isna(groups).sum())} missing values")
    names, site = np.unique(groups.astype(str), return_inverse=True)
    if x is not None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != n:
            raise RennDataError(f"features must be ({n}, p), got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise RennDataError(f"features have {int((~np.isfinite(x)).sum())} non-finite values")
    if split is not None:
        split = np.asarray(split).astype(str)
        bad = sorted(set(split.tolist()) - set(SPLIT_LABELS))
        if bad:
            raise RennDataError(f"split labels must be train/val/test, found {bad[:5]}")
        if not (split == "train").any():
            raise RennDataError("the split has no train rows")
    return RennData(
        y=y, site=site.astype(np.int64), site_names=tuple(names.tolist()), x=x, split=split
    )


def reference_site_split(
    site: np.ndarray, rows: np.ndarray, rng: np.random.Generator, train_frac: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's split: shuffle the sites of ``rows``, the first int(J * frac) train."""
    sites = np.unique(site[rows])
    shuffled = sites[rng.permutation(len(sites))]
    train_sites = shuffled[: int(len(sites) * train_frac)]
    in_train = np.isin(site[rows], train_sites)
    return rows[in_train], rows[~in_train]


def assign_split(
    site: np.ndarray,
    *,
    seed: int,
    unseen_site_frac: float = 0.15,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
) -> np.ndarray:
    """Labels train/val/test: whole held-out sites go to test (unseen sites); the other sites'
    rows are split at random into train/val/test (held-out patients of seen sites)."""
    if not 0 <= unseen_site_frac < 1 or val_frac < 0 or test_frac < 0 or val_frac + test_frac >= 1:
        raise RennDataError(
            f"split fractions out of range: unseen_site_frac={unseen_site_frac}, "
            f"val_frac={val_frac}, test_frac={test_frac}"
        )
    rng = np.random.default_rng(seed)
    sites = np.unique(site)
    unseen = sites[rng.permutation(len(sites))[: round(len(sites) * unseen_site_frac)]]
    labels = np.full(site.shape, "train", dtype=object)
    labels[np.isin(site, unseen)] = "test"
    seen_rows = np.flatnonzero(~np.isin(site, unseen))
    draw = rng.random(seen_rows.size)
    labels[seen_rows[draw < test_frac]] = "test"
    labels[seen_rows[(draw >= test_frac) & (draw < test_frac + val_frac)]] = "val"
    return labels.astype(str)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table (by suffix; .csv.gz etc. read as CSV)."""
    if not path.is_file():
        raise RennDataError(f"table {path} does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise RennDataError(f"cannot read table {path}: {exc}") from exc


def data_from_table(
    table: pd.DataFrame,
    *,
    y: str,
    group: str,
    features: str | None = None,
    transform: str = "none",
    split: str | None = None,
) -> RennData:
    """Rows of ``table`` as RennData; ``features`` is a column-name prefix (None: intercept-only).

    Rows with a missing outcome or group are dropped (a fit cannot use them); anything else
    unusable raises RennDataError naming the column.
    """
    for name in (y, group, *([split] if split else [])):
        if name not in table.columns:
            raise RennDataError(
                f"column {name!r} not in table (columns: {list(table.columns)[:20]})"
            )
    table = table.dropna(subset=[y, group])
    values = np.asarray(pd.to_numeric(table[y], errors="coerce"), dtype=np.float64)
    if np.isnan(values).any():
        raise RennDataError(f"column {y!r} has {int(np.isnan(values).sum())} non-numeric values")
    if transform == "log":
        if (values <= 0).any():
            raise RennDataError(
                f"--transform log needs {y!r} > 0; {int((values <= 0).sum())} rows are <= 0"
            )
        values = np.log(values)
    elif transform != "none":
        raise RennDataError(f"unknown transform {transform!r}; expected none or log")
    x = None
    if features is not None:
        cols = [c for c in table.columns if str(c).startswith(features) and c not in (y, group)]
        if not cols:
            raise RennDataError(f"no feature columns start with {features!r}")
        x = table[cols].to_numpy(dtype=np.float64)
    labels = table[split].astype(str).to_numpy() if split else None
    return make_renn_data(values, table[group].astype(str).to_numpy(), x, labels)
